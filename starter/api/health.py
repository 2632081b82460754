"""Health: ``/healthz`` (the process is up) and ``/readyz`` (Temporal and the database answer)."""

from __future__ import annotations

from datetime import timedelta

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from starter.api.auth import ServicesDep
from starter.api.errors import ERRORS
from starter.api_models import Health

log = structlog.get_logger(__name__)

HEALTH_TIMEOUT = timedelta(seconds=2)

router = APIRouter(responses=ERRORS)


@router.get("/healthz", tags=["health"], response_model_exclude_none=True)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", tags=["health"], responses={503: {"model": Health}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Temporal and the database both answer."""
    checks: dict[str, str] = {}
    try:
        healthy = await services.client.service_client.check_health(timeout=HEALTH_TIMEOUT)
        checks["temporal"] = "ok" if healthy else "unhealthy"
    except Exception as err:  # any failure to answer means not ready
        log.warning("readiness_temporal_failed", error=str(err))
        checks["temporal"] = "unreachable"
    try:
        await run_in_threadpool(services.store.ping)
        checks["database"] = "ok"
    except Exception as err:
        log.warning("readiness_database_failed", error=type(err).__name__)
        checks["database"] = "unreachable"
    failing = [f"{name} {state}" for name, state in checks.items() if state != "ok"]
    if failing:
        body = Health(
            status="unavailable", checks=checks, error="not_ready", detail=", ".join(failing)
        )
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503)
    return JSONResponse(Health(status="ok", checks=checks).model_dump(exclude_none=True))

"""``/v1/me``: who a token belongs to and what it may do."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from starter.api.auth import ServicesDep, StaffDep
from starter.api.errors import ERRORS
from starter.api_models import Me

router = APIRouter(responses=ERRORS)


@router.get("/v1/me", tags=["staff"])
async def me(staff: StaffDep, services: ServicesDep) -> Me:
    """Who the token belongs to and what it may do."""
    acting_for = await run_in_threadpool(services.store.acting_for, staff.id, datetime.now(UTC))
    return Me(
        id=staff.id,
        name=staff.name,
        role=staff.role,
        approval_limit=staff.approval_limit,
        acting_for=acting_for,
        may_start_cases=staff.role == "backend",
        may_decide=staff.role in services.settings.approver_roles or bool(acting_for),
    )

"""The app factories: ``create_app`` over a connected client (tests, the dev runner, any
embedding process), and ``create_production_app`` for uvicorn, which connects on start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.routing import Mount
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]
from temporalio.client import Client

from infra.db import Database
from infra.logs import configure_logging
from registry import EVENTS, PROCEDURES, Event
from settings import Settings, get_settings
from starter import connect
from starter.api import (
    approvals,
    cases,
    codec,
    decision_links,
    errors,
    health,
    metrics,
    pages,
    staff,
    starts,
    work,
)
from starter.api.auth import Services
from starter.api.bodies import JSON_TYPES, BodyLimits
from starter.api.request_log import RequestLog
from starter.api.store import Store
from starter.api_models import CloudEvent

REF_TEMPLATE = "#/components/schemas/{model}"


def create_app(
    client: Client, *, database_url: str | None = None, settings: Settings | None = None
) -> FastAPI:
    """The API and the staff pages over ``client``; the caller owns the client."""
    settings = settings or get_settings()
    db = Database(database_url or settings.database_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        db.dispose()

    app = FastAPI(
        title="casework",
        version="1",
        summary="Customer-service procedures as durable cases",
        description=(
            "Backends open cases and send events; managers decide approvals. Money is a "
            'decimal string ("750.00"). Errors are `{"error", "detail"}`.'
        ),
        lifespan=lifespan,
        # /docs is served below from packaged assets (the default loads them from a CDN and
        # is blank offline); ReDoc has no packaged build, so it is left out.
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = Services(client=client, store=Store(db), settings=settings)
    starts.add_start_routes(app)
    for module in (health, staff, starts, cases, approvals):
        app.include_router(module.router)
    # The approval email's Approve / Reject links; their tokens are kept out of access logs.
    app.include_router(decision_links.router)
    decision_links.mask_access_log()
    app.include_router(codec.router)  # the Temporal Web UI's codec endpoint (CORS below)
    app.include_router(work.router)  # My work and the case page
    app.include_router(pages.router)  # / and the retired /approvals lead to My work
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )

    errors.install(app)
    app.add_middleware(BodyLimits)
    app.add_middleware(RequestLog)
    app.add_middleware(codec.CodecCors, settings=settings)
    # Request metrics (GET /metrics): outermost, so that every final status is counted.
    app.state.metrics = metrics.ApiMetrics()
    app.include_router(metrics.router)
    app.add_middleware(metrics.RequestMetrics, metrics=app.state.metrics)

    def openapi() -> dict[str, Any]:
        # Start bodies are read by hand (to hash them and to keep Decimals exact), so their
        # schemas are added here for /docs.
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            models: list[type[BaseModel]] = [CloudEvent, *(p.request for p in PROCEDURES)]
            for model in models:
                model_schema = model.model_json_schema(ref_template=REF_TEMPLATE)
                components.update(model_schema.pop("$defs", {}))
                components[model.__name__] = model_schema
            events = schema["paths"]["/v1/cases/{case_id}/events"]["post"]["requestBody"]
            events["content"][JSON_TYPES[0]]["schema"]["oneOf"] = [
                _event_body(event, components) for _, event in sorted(EVENTS.items())
            ]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _event_body(event: Event, components: dict[str, Any]) -> dict[str, Any]:
    """An event's body as callers send it: its ``type``, and its model's fields but the actor,
    which the API fills from the caller's token (a body naming it is refused)."""
    body = event.model.model_json_schema(ref_template=REF_TEMPLATE)
    components.update(body.pop("$defs", {}))
    body["title"] = event.name
    body["properties"] = {
        "type": {"const": event.name, "type": "string"},
        **{name: field for name, field in body["properties"].items() if name != event.actor},
    }
    body["required"] = ["type", *(name for name in body.get("required", []) if name != event.actor)]
    body["description"] = (
        f"Sent by: {', '.join(event.roles)}. {body.get('description', '')}".strip()
    )
    return body


def create_production_app() -> Starlette:
    """For ``uvicorn --factory starter.api:create_production_app``: logging as configured,
    and Temporal (``TEMPORAL_*`` environment) connected when the server starts."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)

    @asynccontextmanager
    async def connect_then_serve(outer: Starlette) -> AsyncIterator[None]:
        api = create_app(await connect(), settings=settings)
        outer.router.routes.append(Mount("/", app=api))
        async with api.router.lifespan_context(api):
            yield

    return Starlette(lifespan=connect_then_serve)

"""The API's request metrics: a count and a latency histogram per route and status, served in
Prometheus' text format at ``GET /metrics``.

A request is labelled with the route it matched as written (``/v1/cases/{case_id}``), never
its raw path, so case ids do not make a series each; a request no route matched is labelled
``unmatched``. Each app has its own registry (tests build many apps in one process).
``/metrics`` asks for no token, like ``/healthz``: it holds counts per route and status, no
case or customer data (docs/metrics.md).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = "casework_api_requests"
LATENCY = "casework_api_request_seconds"
UNMATCHED = "unmatched"

router = APIRouter()


class ApiMetrics:
    """The registry of one app and its two metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            REQUESTS,
            "HTTP requests answered, per method, route (as declared) and status code",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            LATENCY,
            "Time to answer an HTTP request, per method and route (as declared)",
            ("method", "route"),
            registry=self.registry,
        )


class RequestMetrics:
    """ASGI middleware: counts and times every HTTP request with its final status code.

    Installed outermost, so that it sees the status of the answers the inner middleware
    makes up (a 500 for an unexpected error, a 413 for a body too large)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # nothing answered: the server will close the connection

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # The router writes the route it matched into the (shared) scope.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)


@router.get("/metrics", tags=["health"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Request counts and latencies per route, in Prometheus' text format (no token)."""
    registry: CollectorRegistry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

"""Helpers the HTTP specifications share (tests/test_api*.py, tests/test_e2e_http.py, the
pages): the app served on a real port, the app in process signed in as a named caller, the
bodies the API takes, and the clean-up of the cases it opened."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from registry import PROCEDURES
from tests.conftest import Cases

BASE_URL = "http://casework.test"
CLOUDEVENTS_JSON = {"Content-Type": "application/cloudevents+json"}


@asynccontextmanager
async def serve(app: ASGIApp, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn on a free local port (or on ``sock``, bound by the caller
    when the address must be known before the app is built); yields its base URL."""
    sock = sock or bound_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # surfaces why it could not start
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def bound_socket() -> socket.socket:
    """A socket on a free local port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


async def terminate_if_running(client: Client, case_id: str) -> None:
    """A case must not outlive its test (see ``tests.conftest.Cases``)."""
    try:
        handle = client.get_workflow_handle(case_id)
        if (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
            await handle.terminate(reason="test finished")
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:  # never started, or closed meanwhile
            raise


def refund_body(amount: str = "750.00", **fields: str) -> dict[str, Any]:
    return {
        "request_id": f"req-{uuid.uuid4().hex[:10]}",
        "order_id": "ORD-1001",
        "customer_id": "C-100",
        "amount": amount,
        "reason": "thawed on arrival",
        "requested_by": "agent-amy",
        **fields,
    }


def cloud_event(data: dict[str, Any], **attributes: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"evt-{uuid.uuid4().hex[:10]}",
        "source": "/shop/orders",
        "type": "refund.requested",
        "data": data,
        **attributes,
    }


@dataclass
class Api:
    """The app over HTTP, signed in as whoever a call names."""

    http: httpx.AsyncClient
    tokens: dict[str, str]
    cases: Cases | None = None
    opened: set[str] = field(default_factory=set)

    async def call(
        self,
        method: str,
        path: str,
        *,
        as_: str | None = "backend",
        json: Any = None,
        content: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = dict(headers or {})
        if as_ is not None:
            headers["Authorization"] = f"Bearer {self.tokens[as_]}"
        response = await self.http.request(
            method, path, json=json, content=content, headers=headers
        )
        self._track(method, path, response)
        return response

    def _track(self, method: str, path: str, response: httpx.Response) -> None:
        """Every case the API opened must be terminated when the test ends."""
        opens_cases = path in {"/v1/events", *(f"/v1/{p.path}" for p in PROCEDURES)}
        if method == "POST" and opens_cases and response.status_code in (200, 202):
            case_id = response.json()["case_id"]
            if self.cases is not None and case_id not in self.opened:
                self.cases.handles.append(self.cases.client.get_workflow_handle(case_id))
            self.opened.add(case_id)

    async def refund(self, amount: str = "750.00", **fields: str) -> httpx.Response:
        return await self.call("POST", "/v1/refunds", json=refund_body(amount, **fields))

    async def case(self, case_id: str, *, as_: str = "agent-amy") -> dict[str, Any]:
        response = await self.call("GET", f"/v1/cases/{case_id}", as_=as_)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def case_when(
        self, case_id: str, ready: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        for _ in range(200):
            case = await self.case(case_id)
            if ready(case):
                return case
            await asyncio.sleep(0.05)
        raise AssertionError(f"{case_id} never got there; last: {case['status']}")

    async def awaiting_approval(self, amount: str = "750.00", **fields: str) -> str:
        """A refund case waiting for a manager; its id."""
        response = await self.refund(amount, **fields)
        assert response.status_code == 202, response.text
        case_id: str = response.json()["case_id"]
        await self.case_when(case_id, lambda c: c["status"] == "awaiting_approval")
        await self.approvals_row(case_id)
        return case_id

    async def approvals_row(self, case_id: str) -> None:
        """Wait until the approvals list (the database's view) has caught up with the case."""
        for _ in range(100):
            listed = await self.call("GET", "/v1/approvals", as_="mgr-max")
            if any(item["case_id"] == case_id for item in listed.json()["items"]):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{case_id} never appeared in the approvals list")

    async def decide(
        self, case_id: str, decision: str, *, as_: str, note: str = "", **extra: Any
    ) -> httpx.Response:
        body = {"decision": decision, "note": note, **extra}
        return await self.call("POST", f"/v1/cases/{case_id}/decision", as_=as_, json=body)

"""Errors as the API answers them: ``{"error", "detail"}`` with the right status, no trace.

Routes raise ``ApiError``; everything else a route may meet (Temporal, the database, a case
not answering, a timeout) is turned into the same shape by the handlers ``install`` adds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from starter import CaseNotAnswering, case_exists
from starter.api_models import ErrorBody, FieldError

log = structlog.get_logger(__name__)

UNAVAILABLE = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
}

# The errors every route may answer, for OpenAPI.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (401, "Missing or invalid token"),
        (403, "The caller's role or authority does not allow it"),
        (422, "Invalid input; `fields` names each problem"),
        (503, "Temporal or the database is unreachable"),
    )
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        fields: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.body = ErrorBody(error=error, detail=detail, fields=fields)
        self.headers = headers


def error_response(
    status: int, error: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=error, detail=detail)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def invalid(err: ValidationError | RequestValidationError, *, prefix: str = "") -> ApiError:
    """A 422 naming every bad field; the rejected values are not echoed (they may be PII)."""
    fields = []
    for problem in err.errors():
        location = [str(part) for part in problem["loc"]]
        if isinstance(err, RequestValidationError) and location:
            location = location[1:]  # "body", "query", "path" or "header"
        name = ".".join([prefix, *location] if prefix else location) or prefix or "body"
        fields.append(FieldError(field=name, message=str(problem["msg"])))
    detail = "; ".join(f"{f.field}: {f.message}" for f in fields)
    return ApiError(422, "validation_error", detail, fields=fields)


def temporal_connect_failure(err: Exception) -> bool:
    # The SDK reports an unreachable server on a lazy or dropped connection this way.
    return isinstance(err, RuntimeError) and str(err).startswith("Failed client connect")


async def not_running(client: Client, case_id: str) -> NoReturn:
    """The answer for a message to a case Temporal reports NOT_FOUND: closed, or unknown."""
    if await case_exists(client, case_id):
        raise ApiError(409, "case_closed", f"case {case_id} is closed and takes no more messages")
    raise ApiError(404, "not_found", f"no case {case_id}")


def snake(kind: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", kind).lower()  # UnknownRA -> unknown_ra


# ---- exception handlers ----------------------------------------------------------------------


async def _api_error(_: Request, err: Exception) -> Response:
    assert isinstance(err, ApiError)
    return JSONResponse(
        err.body.model_dump(exclude_none=True), status_code=err.status, headers=err.headers
    )


async def _request_invalid(_: Request, err: Exception) -> Response:
    assert isinstance(err, RequestValidationError)
    return await _api_error(_, invalid(err))


_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


async def _http_error(_: Request, err: Exception) -> Response:
    assert isinstance(err, StarletteHTTPException)
    error = _HTTP_ERRORS.get(err.status_code, "http_error")
    return error_response(err.status_code, error, str(err.detail), headers=err.headers)


async def _temporal_error(_: Request, err: Exception) -> Response:
    assert isinstance(err, RPCError)
    if err.status is RPCStatusCode.UNIMPLEMENTED:
        return error_response(501, "not_implemented", f"Temporal cannot do this: {err.message}")
    if err.status in UNAVAILABLE:
        log.warning("temporal_unavailable", status=err.status.name, error=err.message)
        return error_response(503, "temporal_unavailable", "Temporal is not answering; retry")
    log.error("temporal_error", status=err.status.name, error=err.message)
    return error_response(502, "temporal_error", f"Temporal refused the call ({err.status.name})")


async def _case_not_answering(_: Request, err: Exception) -> Response:
    assert isinstance(err, CaseNotAnswering)
    log.warning("case_not_answering", case_id=err.case_id)
    return error_response(
        503,
        "case_not_answering",
        f"{err}: check the case before sending anything new; a retry with the same "
        "Idempotency-Key (decisions) or event_id (events) cannot apply twice",
    )


async def _database_error(_: Request, err: Exception) -> Response:
    log.warning("database_unavailable", error=type(err).__name__)
    return error_response(503, "database_unavailable", "the database is not answering; retry")


async def _timeout(_: Request, err: Exception) -> Response:
    return error_response(503, "timeout", "a dependency did not answer in time; retry")


def install(app: FastAPI) -> None:
    """Answer every failure a route can meet as JSON."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RPCError, _temporal_error)
    app.add_exception_handler(CaseNotAnswering, _case_not_answering)
    for failure in (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError):
        app.add_exception_handler(failure, _database_error)
    app.add_exception_handler(TimeoutError, _timeout)

"""Who is calling: the bearer token resolved to a staff member, and the role rules.

Routes name what they need as a dependency (``StaffDep``, ``BackendDep``, ``ApproverDep``)
and FastAPI answers 401/403 before the route runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from settings import Settings
from starter.api.errors import ApiError
from starter.api.store import Store
from workflows.models import StaffMember


@dataclass(frozen=True)
class Services:
    """What every route works with; one per app, on ``app.state.services``."""

    client: Client
    store: Store
    settings: Settings


def services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(services)]
_bearer = HTTPBearer(auto_error=False, description="A staff API token")


async def current_staff(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> StaffMember:
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or not credentials.credentials.strip():
        raise ApiError(
            401, "unauthenticated", "send Authorization: Bearer <token>", headers=challenge
        )
    staff = await run_in_threadpool(services.store.authenticate, credentials.credentials.strip())
    if staff is None:
        raise ApiError(401, "unauthenticated", "the token is not valid", headers=challenge)
    request.state.staff_id = staff.id  # for the request log line
    return staff


StaffDep = Annotated[StaffMember, Depends(current_staff)]


async def backend_staff(staff: StaffDep) -> StaffMember:
    if staff.role != "backend":
        raise ApiError(403, "forbidden", f"role {staff.role!r} may not start cases")
    return staff


async def approver_staff(staff: StaffDep, services: ServicesDep) -> StaffMember:
    """An approver role, or anyone standing in for someone today (delegation)."""
    if staff.role in services.settings.approver_roles:
        return staff
    if await run_in_threadpool(services.store.acting_for, staff.id, datetime.now(UTC)):
        return staff
    raise ApiError(403, "forbidden", f"role {staff.role!r} may not decide approvals")


BackendDep = Annotated[StaffMember, Depends(backend_staff)]
ApproverDep = Annotated[StaffMember, Depends(approver_staff)]

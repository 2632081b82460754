"""Starting cases and deciding approvals: the typed client every caller uses.

``DATA_CONVERTER`` is the one converter of every client and worker (pydantic v2 models,
Decimal and datetime round-trip exactly). A case id derives from the caller's request id, so
the same business event sent twice finds the first case instead of opening a second.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar, overload

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

import registry
from infra.temporal import DATA_CONVERTER, connect, register_search_attributes, temporal_address
from registry import EVENTS, Event, Procedure
from settings import get_settings
from workflows import visibility
from workflows.models import (
    ApprovalState,
    ApprovalStatus,
    CaseState,
    CaseType,
    Decision,
    RefundRequest,
    StaffMember,
    StoreCreditChoice,
)
from workflows.return_models import (
    InspectionResult,
    PackageReceived,
    RaState,
    ReturnRequest,
    ReturnState,
)

# How long a caller waits for a case to take an update (a decision, a warehouse event). With
# no worker polling, the server holds the update until one comes back: it may still apply.
UPDATE_TIMEOUT = 15.0

__all__ = [
    "DATA_CONVERTER",
    "EVENTS",
    "ActorNamed",
    "CaseEvent",
    "CaseNotAnswering",
    "DecisionRefused",
    "EventForbidden",
    "EventRefused",
    "StartedCase",
    "UnknownEvent",
    "case_exists",
    "case_id_for",
    "case_state",
    "choose_store_credit",
    "connect",
    "decide",
    "deliver",
    "ensure_search_attributes",
    "parse_event",
    "read_state",
    "receive_package",
    "report_inspection",
    "send_event",
    "start_case",
    "start_refund",
    "start_return",
    "temporal_address",
]


@dataclass(frozen=True)
class StartedCase:
    """A start's answer. ``existing``: the request id had already opened this case (running
    or closed), and ``status`` is where that case stands; a new case is ``received``."""

    case_id: str
    workflow_id: str
    run_id: str | None
    handle: WorkflowHandle[Any, Any] = field(repr=False, compare=False)
    existing: bool = False
    status: str = "received"


class DecisionRefused(Exception):
    """The workflow refused a decision; ``kind`` is NotAuthorized or NoDecisionPending."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class CaseNotAnswering(Exception):
    """No worker took the update in time. The server keeps it: it may still apply when a
    worker returns, so a retry must carry the same event id (Idempotency-Key)."""

    def __init__(self, case_id: str, seconds: float) -> None:
        super().__init__(
            f"case {case_id} did not answer within {seconds:.0f}s (is a worker running?); "
            "the message may still apply when it does"
        )
        self.case_id = case_id


T = TypeVar("T")


async def answered(case_id: str, update: Awaitable[T]) -> T:
    """``update``'s answer, or CaseNotAnswering after UPDATE_TIMEOUT seconds."""
    seconds = UPDATE_TIMEOUT
    try:
        async with asyncio.timeout(seconds):
            return await update
    # Cancelled by the timeout, the SDK raises its own error instead of CancelledError.
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
        raise CaseNotAnswering(case_id, seconds) from err


async def case_exists(client: Client, case_id: str) -> bool:
    """True for a case Temporal knows, running or closed."""
    try:
        await client.get_workflow_handle(case_id).describe(rpc_timeout=timedelta(seconds=5))
        return True
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return False
        raise


def case_id_for(case_type: CaseType, request_id: str) -> str:
    return f"{case_type.value.replace('_', '-')}-{request_id}"


async def start_case(
    client: Client, request: BaseModel, *, task_queue: str | None = None
) -> StartedCase:
    """Open the case ``request`` asks for (its procedure is the registry's entry for the
    request's type); the same ``request_id`` twice returns the first case."""
    procedure: Procedure[Any] = registry.for_request(request)
    # Every request names its request id (the registry checks), order and customer.
    fields = dict(request)
    amount = fields.get("amount")
    return await _start(
        client,
        procedure,
        request,
        case_id=case_id_for(procedure.case_type, str(fields["request_id"])),
        order_id=str(fields["order_id"]),
        customer_id=str(fields["customer_id"]),
        amount=amount if isinstance(amount, Decimal) else None,
        task_queue=task_queue,
    )


# The procedures of the first release, typed for callers that know which one they open.
async def start_refund(
    client: Client, request: RefundRequest, *, task_queue: str | None = None
) -> StartedCase:
    return await start_case(client, request, task_queue=task_queue)


async def start_return(
    client: Client, request: ReturnRequest, *, task_queue: str | None = None
) -> StartedCase:
    return await start_case(client, request, task_queue=task_queue)


async def _start(
    client: Client,
    procedure: Procedure[Any],
    request: BaseModel,
    *,
    case_id: str,
    order_id: str,
    customer_id: str,
    amount: Decimal | None,
    task_queue: str | None,
) -> StartedCase:
    attributes: list[SearchAttributePair[Any]] = [
        SearchAttributePair(visibility.CASE_TYPE, procedure.case_type.value),
        SearchAttributePair(visibility.CASE_STATUS, "received"),
        SearchAttributePair(visibility.ORDER_ID, order_id),
        SearchAttributePair(visibility.CUSTOMER_ID, customer_id),
    ]
    if amount is not None:
        attributes.append(SearchAttributePair(visibility.AMOUNT, float(amount)))
    attributes.extend(procedure.search_attributes(request))
    try:
        handle: WorkflowHandle[object, object] = await client.start_workflow(
            procedure.workflow.run,  # type: ignore[attr-defined]
            request,
            id=case_id,
            task_queue=task_queue or get_settings().task_queue,
            # A case with this id, running or closed, is the same business event: the error
            # below returns it, saying that it already existed (USE_EXISTING would not say).
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(attributes),
            static_summary=procedure.summary(request),
            priority=procedure.priority,
        )
        return StartedCase(case_id, case_id, handle.result_run_id, handle)
    except WorkflowAlreadyStartedError as err:
        existing = client.get_workflow_handle(case_id)
        description = await existing.describe()
        status = description.typed_search_attributes.get(visibility.CASE_STATUS)
        return StartedCase(
            case_id, case_id, err.run_id, existing, existing=True, status=status or "unknown"
        )


S = TypeVar("S", bound=CaseState)


@overload
async def case_state(
    client: Client, case_id: str, *, rpc_timeout: timedelta | None = None
) -> CaseState: ...
@overload
async def case_state(
    client: Client, case_id: str, model: type[S], *, rpc_timeout: timedelta | None = None
) -> S: ...
async def case_state(
    client: Client,
    case_id: str,
    model: type[CaseState] = CaseState,
    *,
    rpc_timeout: timedelta | None = None,
) -> CaseState:
    """The case as its workflow holds it, as its procedure's state model (``ReturnState``
    for a return). Pass ``model`` to get that type checked: TypeError for another's case."""
    raw: Any = await client.get_workflow_handle(case_id).query(
        "state", result_type=None, rpc_timeout=rpc_timeout
    )
    state = read_state(raw)
    if not isinstance(state, model):
        raise TypeError(f"{case_id} is a {state.type} case, not a {model.__name__}")
    return state


def read_state(raw: Any) -> CaseState:
    """A ``state`` answer (JSON) as the state model of its case's procedure."""
    if isinstance(raw, CaseState):
        return raw
    case_type = str(raw.get("type", "")) if isinstance(raw, dict) else ""
    return registry.state_model(case_type).model_validate(raw)


async def decide(
    client: Client, case_id: str, decision: Decision, *, update: str = "decide"
) -> ApprovalState:
    """Send a decision as an update: the answer is the workflow's own, or DecisionRefused.
    ``update="decide_with_code"`` for one that proves itself with the decision code."""
    handle = client.get_workflow_handle(case_id)
    try:
        approval: ApprovalState = await answered(
            case_id,
            handle.execute_update(
                update, decision, result_type=ApprovalState, id=decision.event_id
            ),
        )
        return approval
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type:
            raise DecisionRefused(cause.type, cause.message) from err
        raise
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            await _refuse_if_decided(client, case_id, err)
        raise


async def _refuse_if_decided(client: Client, case_id: str, closed: RPCError) -> None:
    """A case that closed after its decision refuses a late one as it did while running: a
    second decision racing the case's last step gets the same answer either side of it."""
    try:
        approval = (await case_state(client, case_id)).approval
    except (RPCError, WorkflowQueryFailedError):
        return  # unknown, or nobody answers for it: the caller sees the original error
    if approval is not None and approval.status is not ApprovalStatus.PENDING:
        message = f"no decision is pending on this case (already {approval.status})"
        raise DecisionRefused("NoDecisionPending", message) from closed


class UnknownEvent(ValueError):
    pass


class EventForbidden(Exception):
    """The sender's role may not send this event (HTTP 403)."""


class ActorNamed(ValueError):
    """The payload names who acted; only the authenticated sender may be recorded."""

    def __init__(self, field: str) -> None:
        super().__init__(
            f"{field}: set from your credentials; a relaying service names the person it "
            "acts for in on_behalf_of"
        )
        self.field = field


def parse_event(event_type: str, payload: dict[str, Any], sender: StaffMember) -> BaseModel:
    """Validate an event for a case, sent by ``sender``: UnknownEvent, EventForbidden,
    ActorNamed, or ValidationError naming the bad field."""
    if event_type not in EVENTS:
        known = ", ".join(sorted(EVENTS))
        raise UnknownEvent(f"unknown event type {event_type!r} (known: {known})")
    event = EVENTS[event_type]
    if sender.role not in event.roles:
        raise EventForbidden(
            f"role {sender.role!r} may not send {event_type} (only {', '.join(event.roles)})"
        )
    if event.actor in payload:
        raise ActorNamed(event.actor)
    return event.model.model_validate({**payload, event.actor: sender.id}, extra="forbid")


async def send_event(
    client: Client,
    case_id: str,
    event_type: str,
    payload: dict[str, Any],
    *,
    sender: StaffMember,
) -> None:
    """Deliver a human or system event to a running case, as ``sender``.

    Events with an update are answered by the case: a refusal raises EventRefused with the
    case's reason. The others are signals, recorded (or recorded as ignored) by the case.
    """
    message = parse_event(event_type, payload, sender)
    await deliver(client, case_id, EVENTS[event_type], message)


async def deliver(client: Client, case_id: str, event: Event, message: BaseModel) -> Any:
    """Send a validated ``message`` as ``event``: by its update (the case's answer, or
    EventRefused), else by its signal (no answer: the case records or ignores it)."""
    if event.update is not None:
        return await _event_update(client, case_id, event.update, message, event.result)
    await client.get_workflow_handle(case_id).signal(event.signal, message)
    return None


async def choose_store_credit(client: Client, case_id: str, choice: StoreCreditChoice) -> None:
    await deliver(client, case_id, registry.STORE_CREDIT_CHOSEN, choice)


async def ensure_search_attributes(client: Client) -> None:
    """Register the case search attributes on the namespace; existing ones are kept."""
    await register_search_attributes(client, visibility.ALL_KEYS)


# ---- the warehouse's answers on a return (updates: the caller learns at once if refused) ----


class EventRefused(Exception):
    """A case refused an event; ``kind`` says why (UnknownRA, RaExpired, AlreadyReceived,
    NotInspecting, AlreadyInspected, InvalidAmount or CaseClosed)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


async def receive_package(client: Client, case_id: str, received: PackageReceived) -> RaState:
    """Tell a return case its package arrived; the answer is its RA, or EventRefused."""
    ra: RaState = await deliver(client, case_id, registry.PACKAGE_RECEIVED, received)
    return ra


async def report_inspection(client: Client, case_id: str, result: InspectionResult) -> ReturnState:
    """Report the inspection of a return's items; the answer is the case, or EventRefused."""
    state: ReturnState = await deliver(client, case_id, registry.INSPECTION_COMPLETED, result)
    return state


async def _event_update(
    client: Client,
    case_id: str,
    update: str,
    message: BaseModel,
    result_type: type[Any] | None,
) -> Any:
    handle = client.get_workflow_handle(case_id)
    try:
        return await answered(
            case_id,
            handle.execute_update(
                update,
                message,
                result_type=result_type,
                id=f"{update}-{getattr(message, 'event_id', None) or uuid.uuid4().hex}",
            ),
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type:
            raise EventRefused(cause.type, cause.message) from err
        raise
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        # A closed case takes no updates; say why in the case's own words.
        state = await case_state(client, case_id)
        refusal = state.refusal_once_closed(message)
        if refusal is not None:
            raise EventRefused(*refusal) from err
        raise EventRefused("CaseClosed", f"case {case_id} is closed ({state.status})") from err

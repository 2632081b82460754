"""What a procedure declaration is: the procedure, the events its cases accept, and how the
CLI reads a field. Each checks itself when declared, so a wrong declaration fails at import
(a request without ``request_id``, a state model the workflow does not answer, an event whose
actor field its model lacks)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel
from temporalio.common import Priority, SearchAttributePair

from settings import Settings
from workflows.models import CaseState, CaseStatus, CaseType

R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class Event:
    """A message a running case accepts, by the name callers use (HTTP ``type``, CLI).

    ``roles`` may send it. ``actor`` is the payload field the entry point fills with the
    authenticated sender (a body may not name it); a relaying service names the person it
    acts for in ``on_behalf_of``, which the case records as such, never as the actor.
    ``signal`` is the workflow's signal handler (fire-and-forget, e.g. from the Web UI);
    ``update``, when set, is the handler callers use instead because the sender needs the
    answer (a wrong RA number is refused to its face), and ``result`` is what it answers.
    """

    name: str
    model: type[BaseModel]
    roles: tuple[str, ...]  # of activities.staff.ROLES
    actor: str
    signal: str
    update: str | None = None
    result: type[BaseModel] | None = None
    # The case statuses in which a case waits for this event: "My work" lists the case then
    # to whoever may send it. Empty for an event nothing waits for (the customer may choose
    # store credit at any time). What a status cannot tell: ``awaited_after`` an audit line
    # (a supervisor acts once the case was escalated to one), and ``awaited_once``: no
    # longer once the trail records the event itself (QA's findings).
    awaited_in: tuple[CaseStatus, ...] = ()
    awaited_after: str | None = None
    awaited_once: bool = False

    def __post_init__(self) -> None:
        final = [status.value for status in self.awaited_in if status.is_final]
        if final:
            raise TypeError(f"event {self.name!r} awaited in final statuses {final}")
        if (self.awaited_after or self.awaited_once) and not self.awaited_in:
            raise TypeError(f"event {self.name!r} narrows a wait it does not declare")
        if self.actor not in self.model.model_fields:
            raise TypeError(f"{self.model.__name__} has no actor field {self.actor!r}")
        if not self.roles:
            raise TypeError(f"event {self.name!r} names no role that may send it")
        if (self.update is None) != (self.result is None):
            raise TypeError(f"event {self.name!r}: an update needs a result type, a signal none")

    @property
    def kind(self) -> Literal["update", "signal"]:
        return "signal" if self.update is None else "update"


@dataclass(frozen=True)
class CliField:
    """How the CLI reads a request field that is not a plain string (e.g. SKU=QUANTITY)."""

    parse: Callable[[str], object]
    metavar: str
    help: str = ""


@dataclass(frozen=True)
class Procedure(Generic[R]):
    """One procedure. ``path`` is its HTTP start (``POST /v1/{path}``), ``event_type`` the
    CloudEvents type that starts it too, ``summary`` the line the Temporal Web UI shows for a
    case. The CLI command is the case type (``refund``), one option per request field; the
    ``Amount`` search attribute is set when the request has an ``amount``; ``search_attributes``
    adds the procedure's own, set when the case starts so that it is listed by them at once.
    ``priority`` is the case's Temporal task priority (1 first, 5 last; 3 by default): when
    the workers are busy, a procedure whose customer is waiting on the clock goes first.
    ``check`` judges a valid request against the settings in force (a reason from a list
    that is a setting): a sentence refusing it, which the entry points answer as bad input
    on ``check_field`` (HTTP 422, CLI exit 2) before anything starts; None to go on.
    ``handed_over`` are request fields only a case handing work over sets (the case it came
    from): the entry points refuse a caller's value (HTTP 422) and the CLI has no option
    for them, so a link between cases is never a caller's word."""

    case_type: CaseType
    workflow: type
    request: type[R]
    state: type[CaseState]
    path: str
    event_type: str
    title: str  # "start a refund case": CLI help and the OpenAPI summary
    summary: Callable[[R], str]
    events: tuple[Event, ...] = ()
    cli: Mapping[str, CliField] = field(default_factory=dict)
    search_attributes: Callable[[R], Sequence[SearchAttributePair[Any]]] = lambda _: ()
    priority: Priority = Priority.default
    check: Callable[[R, Settings], str | None] = lambda request, settings: None
    check_field: str = "body"
    handed_over: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The idempotency key and the case id both derive from it.
        if "request_id" not in self.request.model_fields:
            raise TypeError(f"{self.request.__name__} has no request_id field")
        declared = getattr(self.workflow, "state_model", CaseState)
        if declared is not self.state:
            raise TypeError(
                f"{self.workflow.__name__}.state_model is {declared.__name__}, "
                f"the registry says {self.state.__name__}"
            )
        unknown = set(self.cli) - set(self.request.model_fields)
        if unknown:
            raise TypeError(f"cli options for unknown fields {sorted(unknown)}")
        unknown = set(self.handed_over) - set(self.request.model_fields)
        if unknown:
            raise TypeError(f"handed-over fields unknown to the request {sorted(unknown)}")

    @property
    def command(self) -> str:
        """The CLI command, and the prefix of every case id (``refund-<request_id>``)."""
        return self.case_type.value.replace("_", "-")

    @property
    def name(self) -> str:
        return self.case_type.value

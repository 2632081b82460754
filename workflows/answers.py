"""A customer's yes or no to an offer open until a deadline: a rush quote, an order change's
quote, the return offered instead of a cancellation.

Every procedure that waits for one holds a ``Reply`` and keeps its rules once: one answer
stands (the same answer again is a retry, answered as before); none is taken after the
deadline. An update's validator raises the refusal to the sender's face (HTTP 409); a signal
(the Temporal UI) with a refused answer is recorded and ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.sla import SlaClocks

with workflow.unsafe.imports_passed_through():
    from workflows.sla_models import Clock, Owner, RunningClock


class Answer(Protocol):
    """What an answer carries: its id (a retry repeats it) and the caller who gave it."""

    @property
    def event_id(self) -> str: ...

    @property
    def answered_by(self) -> str: ...


M = TypeVar("M", bound=Answer)


class AnsweringCase(Protocol):
    """What a ``Reply`` needs of its case for a signal: parse it, and record a refusal."""

    async def parse_signal(self, name: str, model: type[Any], payload: Any) -> Any: ...

    async def record(
        self, event: str, *, actor: str = ..., detail: dict[str, str] | None = ...
    ) -> None: ...


class Reply(Generic[M]):
    """The customer's answer to ``offer``, open until ``until`` (set when it is made)."""

    def __init__(
        self,
        *,
        offer: str,
        expired: str,
        pending: str,
        show: Callable[[datetime], str],
        consequence: str = "",
        clock: Clock | None = None,
    ) -> None:
        self.offer = offer  # "quote", "return offer": how the refusals name it
        self._expired_kind = expired  # the refusal's type after the deadline ("QuoteExpired")
        self._pending_kind = pending  # before the offer is made, or once it is over
        self._show = show  # the deadline as the customer reads it
        self._consequence = consequence  # what an expired offer leaves ("the order ...")
        self._clock = clock  # the customer's deadline on the SLA clocks (it merely expires)
        self.clock: RunningClock | None = None
        self.until: datetime | None = None
        self.answer: M | None = None
        self.yes: bool | None = None
        self.at: datetime | None = None

    def open(self, until: datetime, clocks: SlaClocks) -> None:
        """The offer stands until ``until``, its clock started (before the email that makes
        the offer, so that the clock's row is written with it)."""
        self.until = until
        if self._clock is not None:
            self.clock = clocks.start(self._clock, due=until, owner=Owner.CUSTOMER)

    def given(self) -> bool:
        """Whether an answer stands (a condition the case waits on)."""
        return self.answer is not None

    def refusal(self, answer: M, yes: bool, *, waiting: bool) -> tuple[str, str] | None:
        """Why ``answer`` cannot apply now (kind, message), or None. ``waiting``: the case
        is waiting for this answer (its status says so)."""
        if self.answer is not None:
            if self.answer.event_id == answer.event_id and self.yes is yes:
                return None  # the same answer again: a retry
            return ("AlreadyAnswered", f"the customer already answered the {self.offer}")
        if self.until is None or not waiting:
            return (self._pending_kind, f"no {self.offer} is waiting for an answer")
        if workflow.now() >= self.until:
            after = f"; {self._consequence}" if self._consequence else ""
            return (
                self._expired_kind,
                f"the {self.offer} expired at {self._show(self.until)}{after}",
            )
        return None

    def refuse(self, answer: M, yes: bool, *, waiting: bool) -> None:
        """For an update's validator: raise the refusal, if any, before history is written."""
        refusal = self.refusal(answer, yes, waiting=waiting)
        if refusal is not None:
            raise ApplicationError(refusal[1], type=refusal[0], non_retryable=True)

    def take(self, answer: M, yes: bool) -> None:
        """The answer stands (a retry of it changes nothing)."""
        if self.answer is None:
            self.answer, self.yes, self.at = answer, yes, workflow.now()

    async def by_signal(
        self,
        case: AnsweringCase,
        name: str,
        model: type[M],
        payload: Any,
        yes: bool,
        *,
        waiting: Callable[[], bool],
    ) -> None:
        """The answer as a signal: a malformed or repeated one is dropped by the case, a
        refused one recorded (``<name>_ignored``) and ignored."""
        answer: M | None = await case.parse_signal(name, model, payload)
        if answer is None:
            return
        refusal = self.refusal(answer, yes, waiting=waiting())
        if refusal is not None:
            await case.record(
                f"{name}_ignored", actor=answer.answered_by, detail={"reason": refusal[1]}
            )
            return
        self.take(answer, yes)

    def said(self, yes: str, no: str) -> str | None:
        """The answer as a caller reads it (``yes`` or ``no``), None before one."""
        return None if self.yes is None else (yes if self.yes else no)

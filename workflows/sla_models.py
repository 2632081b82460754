"""SLA clocks as data: their names, who owns them and the mark a case writes of one.

Pure data (passed through the sandbox, workflows/sandbox.py), the record of a running clock
included: a dataclass in a re-imported module would be built again for every case. What a
clock does while it runs is workflows/sla.py; docs/sla-clocks.md lists every clock with its
budget and owner.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Clock(StrEnum):
    """Every deadline a case waits on, by a stable name (the ``sla_clocks.clock`` column)."""

    # The company's own service levels: they warn their owner at 75% and count a breach.
    APPROVAL_ESCALATION = "approval_escalation"
    APPROVAL_EXPIRY = "approval_expiry"
    COMPLAINT_FOLLOW_UP = "complaint_follow_up"
    CALLBACK = "callback"
    EMAIL_RESPONSE = "email_response"
    ACCOUNTING_ANSWER = "accounting_answer"
    CARRIER_FOLLOW_UP = "carrier_follow_up"
    # The customer's deadlines: recorded (the inbox shows them), they merely expire.
    SATISFACTION_WAIT = "satisfaction_wait"
    RA_EXPIRY = "ra_expiry"
    RUSH_FEE_ACCEPTANCE = "rush_fee_acceptance"
    ORDER_CHANGE_QUOTE = "order_change_quote"
    CANCELLATION_RETURN_OFFER = "cancellation_return_offer"

    @property
    def is_service_level(self) -> bool:
        """Whether the company owes it: it warns at 75% and a late finish is a breach. A
        customer's deadline reaching its end is the designed outcome, not a breach."""
        return self not in _CUSTOMER_DEADLINES


_CUSTOMER_DEADLINES = frozenset(
    {
        Clock.SATISFACTION_WAIT,
        Clock.RA_EXPIRY,
        Clock.RUSH_FEE_ACCEPTANCE,
        Clock.ORDER_CHANGE_QUOTE,
        Clock.CANCELLATION_RETURN_OFFER,
    }
)

# The share of a clock's business-time budget after which its owner is warned.
WARN_AT_SHARE = 0.75


class Owner(StrEnum):
    """Who a clock warns, when it is a role rather than a staff id or a department name."""

    APPROVERS = "approvers"  # the eligible approvers of the case's pending approval
    CS_MANAGER = "cs_manager"
    CUSTOMER = "customer"  # a customer's deadline: nobody in the company is warned


class SlaRules(BaseModel):
    """The response standards (Customer Communication): business time a customer's email
    and a callback may wait. Recorded with the case like every rule."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    email_response_within: timedelta = timedelta(hours=2)
    callback_within: timedelta = timedelta(hours=4)


class ClockMark(BaseModel):
    """A clock as it stands, written to ``sla_clocks`` with the audit line it rides on.

    Each mark is the whole clock so far: writing marks in any order, or one twice, leaves
    the row with every instant any of them knew (an instant, once set, stays).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    key: str  # case id / clock / run number
    case_id: str
    procedure: str
    clock: Clock
    owner: str
    budget_seconds: int
    started_at: datetime
    warn_at: datetime
    due_at: datetime
    warned_at: datetime | None = None
    breached_at: datetime | None = None
    stopped_at: datetime | None = None

    def merged(self, later: ClockMark) -> ClockMark:
        """This mark and a later one of the same clock: every instant either knew."""
        return later.model_copy(
            update={
                "warned_at": later.warned_at or self.warned_at,
                "breached_at": later.breached_at or self.breached_at,
                "stopped_at": later.stopped_at or self.stopped_at,
            }
        )


@dataclass
class RunningClock:
    """One run of a clock: its mark as it stands, whom to warn, and its watcher."""

    mark: ClockMark
    staff_ids: tuple[str, ...] = ()
    department: str | None = None
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)
    busy: bool = False  # its watcher is warning or breaching (an activity in flight)
    ends_at_due: bool = False  # its wait's end judges the breach (``SlaClocks.start``)

    @property
    def clock(self) -> Clock:
        return self.mark.clock

    @property
    def stopped(self) -> bool:
        return self.mark.stopped_at is not None

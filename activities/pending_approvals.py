"""Approvals waiting for a decision, as gauges on the worker's metrics endpoint.

How many approval requests are pending per procedure, and how long the oldest has waited,
are read from the ``approvals`` table (what approvers' My work lists) and set on the worker's
meter every APPROVALS_GAUGE_EVERY. The database is the one place that knows every open case,
whichever worker runs it, so every worker reports the same values: aggregate them with
``max``, not ``sum`` (docs/metrics.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import func, select
from temporalio.common import MetricMeter

from infra.db import Approval, Case, Database
from workflows.models import ApprovalStatus, CaseType

log = structlog.get_logger(__name__)

APPROVALS_PENDING = "casework_approvals_pending"
OLDEST_PENDING_SECONDS = "casework_approvals_oldest_pending_seconds"


@dataclass(frozen=True)
class Pending:
    """The pending approvals of one procedure."""

    count: int
    oldest_seconds: float


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PendingApprovalsGauge:
    def __init__(
        self,
        db: Database,
        meter: MetricMeter,
        *,
        procedures: Iterable[str] = tuple(CaseType),
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._db = db
        # Every procedure is reported, 0 when none waits: a series that vanished would leave
        # a dashboard showing its last value.
        self._procedures = tuple(procedures)
        self._clock = clock
        self._count = meter.create_gauge(
            APPROVALS_PENDING, "Approval requests waiting for a decision, per procedure"
        )
        self._oldest = meter.create_gauge_float(
            OLDEST_PENDING_SECONDS,
            "How long the oldest pending approval request has waited, per procedure (0: none)",
            "s",
        )

    def read(self) -> dict[str, Pending]:
        """The pending approvals per procedure, as of now."""
        now = self._clock()
        with self._db.read() as session:
            rows = session.execute(
                select(Case.type, func.count(), func.min(Approval.requested_at))
                .join(Case, Case.id == Approval.case_id)
                .where(Approval.status == ApprovalStatus.PENDING.value)
                .group_by(Case.type)
            ).all()
        found = {
            procedure: Pending(
                count=int(count),
                # A request stamped ahead of this clock (workflow time) has waited 0 s.
                oldest_seconds=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
            )
            for procedure, count, oldest in rows
        }
        return {
            procedure: found.get(procedure, Pending(0, 0.0))
            for procedure in dict.fromkeys([*self._procedures, *found])
        }

    def refresh(self) -> dict[str, Pending]:
        """Read the table and set the gauges; what was set."""
        pending = self.read()
        for procedure, now in pending.items():
            self._count.set(now.count, {"procedure": procedure})
            self._oldest.set(now.oldest_seconds, {"procedure": procedure})
        return pending

    async def run(self, stop: asyncio.Event, every: timedelta) -> None:
        """Refresh every ``every`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as err:  # a database hiccup: keep the last values, try again
                log.warning("approvals_gauge_failed", error_type=type(err).__name__)
            with contextlib.suppress(TimeoutError):  # the interval passed; read again
                await asyncio.wait_for(stop.wait(), timeout=every.total_seconds())

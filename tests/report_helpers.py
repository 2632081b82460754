"""Known cases for the report's specifications, written straight into the database: what the
workflows would have left there (case rows, approvals, SLA clocks, audit lines).

Times are UTC; the business timezone (America/New_York) is UTC-5 in November 2026, so a case
opened at 03:00Z on 4 November counts on the business day of 3 November.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from infra.db import Approval, AuditRecord, Case, Database, SlaClock


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in November 2026, UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def add_case(
    db: Database,
    case_id: str,
    kind: str,
    status: str,
    opened: datetime,
    closed: datetime | None = None,
    *,
    customer_id: str = "C-100",
    amount: str | None = None,
    request: dict[str, Any] | None = None,
    rules: dict[str, Any] | None = None,
) -> None:
    with db.transaction() as session:
        session.add(
            Case(
                id=case_id,
                type=kind,
                status=status,
                step=status,
                order_id="ORD-1001",
                customer_id=customer_id,
                amount=None if amount is None else Decimal(amount),
                requested_by="agent-amy",
                request=request or {},
                rules=rules or {},
                opened_at=opened,
                updated_at=closed or opened,
            )
        )


def add_approval(
    db: Database,
    case_id: str,
    status: str,
    requested: datetime,
    decided: datetime | None = None,
    *,
    decided_by: str | None = None,
    kind: str = "authorization",
    rule: str | None = None,
    amount: str = "750.00",
) -> None:
    with db.transaction() as session:
        session.add(
            Approval(
                case_id=case_id,
                status=status,
                amount=Decimal(amount),
                reason="over the limit",
                requested_by="agent-amy",
                requested_at=requested,
                remind_at=requested + timedelta(days=1),
                escalate_at=requested + timedelta(days=2),
                due_at=requested + timedelta(days=3),
                eligible_approvers=["mgr-mia", "mgr-max"],
                decided_by=decided_by,
                decided_at=decided,
                kind=kind,
                rule=rule,
            )
        )


def add_clock(
    db: Database,
    case_id: str,
    procedure: str,
    clock: str,
    started: datetime,
    *,
    hours: int,
    stopped: datetime | None = None,
    breached: bool = False,
) -> None:
    due = started + timedelta(hours=hours)
    with db.transaction() as session:
        session.add(
            SlaClock(
                key=f"{case_id}/{clock}/1",
                case_id=case_id,
                procedure=procedure,
                clock=clock,
                owner="cs_manager",
                budget_seconds=hours * 3600,
                started_at=started,
                warn_at=started + timedelta(hours=hours * 3 / 4),
                due_at=due,
                warned_at=None,
                breached_at=due if breached else None,
                stopped_at=stopped,
            )
        )


def add_audit(db: Database, case_id: str, seq: int, event: str, when: datetime) -> None:
    with db.transaction() as session:
        session.add(
            AuditRecord(case_id=case_id, seq=seq, at=when, event=event, actor="system", detail={})
        )


def seed_known_cases(db: Database) -> None:
    """Thirteen cases from 2 to 5 November 2026, and one from October (before --since).

    refunds: decided in 1h and 3h, closed after 6h and 24h, one still waiting;
    returns: two RETURN_WINDOW exceptions (granted by mgr-mia, refused by mgr-max);
    complaints: follow-ups on time and late by clock and by audit trail, one pending;
    cancellations: two ordered_by_mistake, one found_cheaper; VIP C-200 has two cases.
    """
    add_case(db, "refund-old", "refund", "completed", datetime(2026, 10, 1, 14, tzinfo=UTC),
             datetime(2026, 10, 1, 15, tzinfo=UTC), amount="50.00")  # fmt: skip

    add_case(db, "refund-r1", "refund", "completed", at(2, 14), at(2, 20), amount="750.00")
    add_approval(db, "refund-r1", "approved", at(2, 14), at(2, 15), decided_by="mgr-mia")
    add_clock(db, "refund-r1", "refund", "approval_escalation", at(2, 14), hours=8,
              stopped=at(2, 15))  # fmt: skip
    add_case(db, "refund-r2", "refund", "rejected", at(2, 15), at(3, 15), customer_id="C-200",
             amount="900.00")  # fmt: skip
    add_approval(db, "refund-r2", "rejected", at(2, 15), at(2, 18), decided_by="mgr-max",
                 amount="900.00")  # fmt: skip
    add_case(db, "refund-r3", "refund", "awaiting_approval", at(3, 14), amount="600.00")
    add_approval(db, "refund-r3", "pending", at(3, 14))
    add_clock(db, "refund-r3", "refund", "approval_escalation", at(3, 14), hours=8, breached=True)

    thawed = {"reason": "Arrived thawed"}
    add_case(db, "return-t1", "return", "completed", at(3, 16), at(4, 16), request=thawed)
    add_approval(db, "return-t1", "approved", at(3, 16), at(3, 21), decided_by="mgr-mia",
                 kind="policy_exception", rule="RETURN_WINDOW", amount="120.00")  # fmt: skip
    add_case(db, "return-t2", "return", "rejected", at(4, 14), at(5, 0),
             request={"reason": "arrived   THAWED "})  # fmt: skip
    add_approval(db, "return-t2", "rejected", at(4, 14), at(5, 0), decided_by="mgr-max",
                 kind="policy_exception", rule="RETURN_WINDOW", amount="80.50")  # fmt: skip

    def complaint(case_id: str, status: str, opened: datetime, category: str, **kw: Any) -> None:
        add_case(db, case_id, "complaint", status, opened, request={"category": category}, **kw)

    follow_up = "complaint_follow_up"
    complaint("complaint-k1", "closed", at(2, 14), "quality", closed=at(4, 14))
    add_clock(db, "complaint-k1", "complaint", follow_up, at(2, 14), hours=24, stopped=at(3, 13))
    complaint("complaint-k2", "closed", at(3, 14), "food_safety", closed=at(5, 14),
              customer_id="C-200")  # fmt: skip
    add_clock(db, "complaint-k2", "complaint", follow_up, at(3, 14), hours=24, breached=True)
    # Older complaints, without clocks: judged by their follow_up_sent audit line.
    complaint("complaint-k3", "closed", at(4, 14), "quality", closed=at(6, 14))
    add_audit(db, "complaint-k3", 1, "complaint_received", at(4, 14))
    add_audit(db, "complaint-k3", 2, "follow_up_sent", at(5, 14))  # 24 h: on time
    complaint("complaint-k4", "closed_no_response", at(4, 15), "quality", closed=at(8, 15))
    add_audit(db, "complaint-k4", 1, "follow_up_sent", at(5, 16))  # 25 h: late
    add_audit(db, "complaint-k4", 2, "follow_up_sent", at(6, 16))
    complaint("complaint-k5", "resolving", at(5, 14), "medical")
    add_clock(db, "complaint-k5", "complaint", follow_up, at(5, 14), hours=24)  # running

    mistake = {"reason": "ordered_by_mistake"}
    # 03:00Z on the 4th is 22:00 on the 3rd in New York: the 3rd's business day.
    add_case(db, "cancellation-c1", "cancellation", "cancelled", at(4, 3), at(4, 4),
             request=mistake)  # fmt: skip
    add_case(db, "cancellation-c2", "cancellation", "cancelled", at(4, 15), at(4, 16),
             request=mistake)  # fmt: skip
    add_case(db, "cancellation-c3", "cancellation", "converted_to_return", at(5, 15), at(5, 18),
             request={"reason": "found_cheaper"})  # fmt: skip

"""The case page's queries: a case's surroundings (order, customer, related cases, emails,
deadlines, what the reader may do) and finding cases by id, order, customer or RA number.

Synchronous, as SQLAlchemy sessions are: routes call it on a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import String, case, cast, func, or_, select

from infra.db import Approval, Case, Customer, Order, OrderLine, OutboxEmail, ReturnAuthorization
from infra.logs import mask
from starter.api.business_time import clock
from starter.api.work_store import (
    AWAITING_APPROVAL,
    AWAITING_RETURN,
    PENDING,
    RELATED_CASES,
    WorkStore,
    clock_name,
    open_clocks,
    recorded_events,
)
from starter.api.work_views import (
    CaseContext,
    CaseLine,
    CustomerFacts,
    EmailLine,
    OrderFacts,
    OrderLineView,
)
from workflows.models import StaffMember


class CaseStore(WorkStore):
    def context(
        self, case_id: str, staff: StaffMember, now: datetime, temporal_url: str
    ) -> CaseContext | None:
        """The case's surroundings, and what ``staff`` may do on it; None for no such case."""
        with self.db.read() as session:
            found = session.execute(
                select(Case, Approval, ReturnAuthorization.expires_at)
                .outerjoin(Approval, Approval.case_id == Case.id)
                .outerjoin(ReturnAuthorization, ReturnAuthorization.case_id == Case.id)
                .where(Case.id == case_id)
            ).first()
            if found is None:
                return None
            case_row, approval, ra_expires = found
            order = session.get(Order, case_row.order_id)
            lines = session.scalars(
                select(OrderLine)
                .where(OrderLine.order_id == case_row.order_id)
                .order_by(OrderLine.sku)
            ).all()
            customer = session.get(Customer, case_row.customer_id)
            earlier = session.scalars(
                select(Case)
                .where(Case.customer_id == case_row.customer_id, Case.id != case_id)
                .order_by(Case.opened_at.desc())
                .limit(RELATED_CASES)
            ).all()
            linked_id = case_row.request.get("linked_case_id")
            linked = session.scalars(
                select(Case)
                .where(
                    or_(
                        Case.id == (linked_id if isinstance(linked_id, str) else None),
                        cast(Case.request, String).contains(f'"{case_id}"', autoescape=True),
                    ),
                    Case.id != case_id,
                )
                .order_by(Case.opened_at)
                .limit(RELATED_CASES)
            ).all()
            emails = session.scalars(
                select(OutboxEmail)
                .where(OutboxEmail.case_id == case_id)
                .order_by(OutboxEmail.created_at, OutboxEmail.id)
            ).all()
            clocks = open_clocks(session, [case_id])[case_id]
            recorded = recorded_events(session, [case_id], staff.role)[case_id]
        calendar = self.calendar_for(case_row)
        pending = (
            approval is not None
            and approval.status == PENDING
            and case_row.status == AWAITING_APPROVAL
        )
        shown_clocks = []
        if pending:
            assert approval is not None
            shown_clocks += [
                clock(calendar, "escalates", approval.escalate_at, now, approval.remind_at),
                clock(calendar, "expires", approval.due_at, now),
            ]
        shown_clocks += [
            clock(calendar, clock_name(c.clock), c.due_at, now, c.warn_at) for c in clocks
        ]
        if ra_expires is not None and case_row.status == AWAITING_RETURN:
            shown_clocks.append(clock(calendar, "RA expires", ra_expires, now))
        photos = case_row.request.get("photos") or []
        return CaseContext(
            case_id=case_row.id,
            type=case_row.type,
            status=case_row.status,
            order=None if order is None else _order_facts(order, lines),
            customer=(
                None
                if customer is None
                else CustomerFacts(id=customer.id, name=customer.name, vip=customer.vip)
            ),
            earlier_cases=[_case_line(c) for c in earlier],
            linked_cases=[_case_line(c) for c in linked],
            photos=[str(p) for p in photos if isinstance(p, str)],
            emails=[
                EmailLine(
                    template=e.template,
                    subject=e.subject,
                    to=mask(e.to_address),
                    status=e.status,
                    created_at=e.created_at,
                    sent_at=e.sent_at,
                )
                for e in emails
            ],
            clocks=shown_clocks,
            actions=self.actions_for(case_row, approval, staff, recorded),
            temporal_url=temporal_url,
            currency=self.settings.currency,
            timezone=self.settings.business_timezone,
        )

    def find(self, term: str, limit: int = RELATED_CASES) -> list[CaseLine]:
        """Cases, open or closed, whose id, order, customer or RA number is ``term`` (any
        case), or contains it; exact matches first, newest first."""
        needle = term.strip().lower()
        columns = (Case.id, Case.order_id, Case.customer_id, ReturnAuthorization.ra_number)
        exact = or_(*(func.lower(c) == needle for c in columns))
        with self.db.read() as session:
            rows = session.scalars(
                select(Case)
                .outerjoin(ReturnAuthorization, ReturnAuthorization.case_id == Case.id)
                .where(or_(*(func.lower(c).contains(needle, autoescape=True) for c in columns)))
                .order_by(case((exact, 0), else_=1), Case.opened_at.desc(), Case.id)
                .limit(limit)
            ).all()
        return [_case_line(c) for c in rows]


def _order_facts(order: Order, lines: Sequence[OrderLine]) -> OrderFacts:
    reserved = order.reserved or Decimal("0")
    return OrderFacts(
        order_id=order.id,
        status=order.status,
        total=order.total,
        refunded=order.refunded,
        reserved=reserved,
        refundable=max(order.total - order.refunded - reserved, Decimal("0")),
        lines=[
            OrderLineView(
                sku=line.sku,
                description=line.description,
                quantity=line.quantity,
                unit_price=line.unit_price,
            )
            for line in lines
        ],
    )


def _case_line(row: Case) -> CaseLine:
    return CaseLine(
        case_id=row.id, type=row.type, status=row.status, amount=row.amount, opened_at=row.opened_at
    )

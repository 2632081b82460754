"""A return holds the refund it promises from the moment its RA is issued.

The items' value is reserved on the order (the refund mechanism's reservation, keyed like the
refund's payment) before the RA is minted: an order that cannot cover it is refused up front,
so no customer ships goods back for a refund the order can no longer pay. The hold lasts
while the package is awaited, shrinks if inspection refunds less, is paid by the refund, and
is released when the RA expires or the case is rejected.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from infra.db import Order, RefundReservation
from starter import case_state, decide, report_inspection
from tests.case_helpers import events, outbox, wait_for_status
from tests.conftest import Cases, Shop
from tests.refund_helpers import ledger, refund
from tests.return_helpers import (
    awaiting_return,
    delivered_order,
    inspection,
    ra_rows,
    received,
    return_of,
    start,
)
from workflows.models import CaseStatus, Decision, DecisionKind, Outcome

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


def order_money(shop: Shop, order_id: str) -> tuple[Decimal, Decimal]:
    """(refunded, reserved) on the order."""
    with shop.db.transaction() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return order.refunded, order.reserved


def holds(shop: Shop) -> list[tuple[str, Decimal, str]]:
    with shop.db.transaction() as session:
        rows = session.scalars(select(RefundReservation).order_by(RefundReservation.created_at))
        return [(r.idempotency_key, r.amount, r.status) for r in rows]


def partly_refunded(shop: Shop, order_id: str, amount: str) -> None:
    """An earlier refund of ``amount`` on the order (what the ledger left behind)."""
    with shop.db.transaction() as session:
        order = session.get(Order, order_id)
        assert order is not None
        order.refunded = Decimal(amount)


async def test_a_return_the_order_can_no_longer_cover_is_refused_before_any_ra(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = await delivered_order(env, shop)
    partly_refunded(shop, order_id, "450.00")  # 150.00 left; the ribeyes are worth 300.00
    handle = await start(cases, return_of(order_id))
    outcome: Outcome = await handle.result()

    assert outcome.status is CaseStatus.REJECTED
    assert "only 150.00" in outcome.reason and "still refundable" in outcome.reason
    assert ra_rows(shop) == []
    assert holds(shop) == []
    assert order_money(shop, order_id) == (Decimal("450.00"), Decimal("0.00"))
    [told] = outbox(shop, "return_rejected")
    assert told.to_address == "ada@example.com" and "only 150.00" in told.body
    assert outbox(shop, "return_instructions") == []
    assert "ra_issued" not in events(shop, handle.id)


async def test_the_items_value_is_held_while_the_package_is_awaited_and_freed_at_expiry(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = await delivered_order(env, shop)
    handle = await start(cases, return_of(order_id))
    await awaiting_return(client, handle)
    assert holds(shop) == [(f"{handle.id}/refund", Decimal("300.00"), "held")]
    assert order_money(shop, order_id) == (Decimal("0.00"), Decimal("300.00"))

    outcome: Outcome = await handle.result()  # nobody ships: the RA expires at day 30

    assert outcome.status is CaseStatus.EXPIRED
    assert holds(shop) == [(f"{handle.id}/refund", Decimal("300.00"), "released")]
    assert order_money(shop, order_id) == (Decimal("0.00"), Decimal("0.00"))


async def test_a_refund_cannot_take_what_an_open_return_holds(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = await delivered_order(env, shop)  # 600.00
    returning = await start(cases, return_of(order_id))  # holds 300.00
    await awaiting_return(client, returning)

    refunding = await cases.refund(refund("400.00", order_id=order_id))
    outcome: Outcome = await refunding.result()

    assert outcome.status is CaseStatus.REJECTED
    assert "only 300.00" in outcome.reason
    assert ledger(shop) == []


async def test_inspection_refunding_less_shrinks_the_hold_and_the_refund_pays_from_it(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = await delivered_order(env, shop)
    handle = await start(cases, return_of(order_id))
    await received(client, handle, await awaiting_return(client, handle))
    await report_inspection(client, handle.id, inspection(True, refund_amount=Decimal("250.00")))
    outcome: Outcome = await handle.result()

    assert outcome.status is CaseStatus.COMPLETED
    [entry] = ledger(shop)
    assert entry.idempotency_key == f"{handle.id}/refund" and entry.amount == Decimal("250.00")
    assert holds(shop) == [(f"{handle.id}/refund", Decimal("250.00"), "paid")]
    assert order_money(shop, order_id) == (Decimal("250.00"), Decimal("0.00"))


async def test_a_failed_inspection_releases_the_hold(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = await delivered_order(env, shop)
    handle = await start(cases, return_of(order_id))
    await received(client, handle, await awaiting_return(client, handle))
    await report_inspection(client, handle.id, inspection(False, notes="opened, thawed"))
    outcome: Outcome = await handle.result()

    assert outcome.status is CaseStatus.REJECTED
    assert holds(shop) == [(f"{handle.id}/refund", Decimal("300.00"), "released")]
    assert order_money(shop, order_id) == (Decimal("0.00"), Decimal("0.00"))
    state = await case_state(client, handle.id)
    assert "refund_released" in [e.event for e in state.timeline]


async def test_a_window_exception_refused_by_a_manager_releases_the_hold(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = await delivered_order(env, shop, days_ago=60)
    handle = await start(cases, return_of(order_id))
    await wait_for_status(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    # Held before the manager is asked: an order that cannot cover it asks nobody.
    assert holds(shop) == [(f"{handle.id}/refund", Decimal("300.00"), "held")]
    await decide(client, handle.id, Decision(approver_id="sup-sam", decision=DecisionKind.REJECT))
    outcome: Outcome = await handle.result()

    assert outcome.status is CaseStatus.REJECTED
    assert ra_rows(shop) == []
    assert holds(shop) == [(f"{handle.id}/refund", Decimal("300.00"), "released")]
    assert order_money(shop, order_id) == (Decimal("0.00"), Decimal("0.00"))

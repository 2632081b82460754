"""Return eligibility: pure rules over the order, the RAs already issued and the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from workflows import policy
from workflows.return_models import (
    OrderedLine,
    ReturnableOrder,
    ReturnItem,
    ReturnRequest,
    ReturnVerdict,
)

DELIVERED = datetime(2026, 10, 1, 15, 0, tzinfo=UTC)
WINDOW = timedelta(days=30)


def order(**fields: object) -> ReturnableOrder:
    values: dict[str, object] = {
        "order_id": "ORD-1",
        "customer_id": "C-100",
        "status": "delivered",
        "delivered_at": DELIVERED,
        "lines": (
            OrderedLine(sku="BISON-RIBEYE", quantity=2, unit_price=Decimal("150.00")),
            OrderedLine(sku="ELK-JERKY", quantity=3, unit_price=Decimal("19.99")),
        ),
        **fields,
    }
    return ReturnableOrder.model_validate(values)


def check(
    *items: tuple[str, int],
    at: datetime = DELIVERED + timedelta(days=3),
    order_fields: dict[str, object] | None = None,
) -> tuple[ReturnVerdict, str, Decimal]:
    result = policy.return_eligibility(
        [ReturnItem(sku=sku, quantity=quantity) for sku, quantity in items],
        order(**(order_fields or {})),
        order_id="ORD-1",
        customer_id="C-100",
        at=at,
        window=WINDOW,
    )
    return result.verdict, result.reason, result.value


def test_value_is_the_items_price_exactly() -> None:
    assert check(("BISON-RIBEYE", 1), ("ELK-JERKY", 3)) == (
        ReturnVerdict.ELIGIBLE,
        "",
        Decimal("209.97"),
    )


def test_last_instant_of_the_window_is_inside_it() -> None:
    verdict, _, _ = check(("ELK-JERKY", 1), at=DELIVERED + WINDOW)
    assert verdict is ReturnVerdict.ELIGIBLE


def test_after_the_window_is_a_policy_exception_not_a_refusal() -> None:
    verdict, reason, value = check(("ELK-JERKY", 1), at=DELIVERED + WINDOW + timedelta(seconds=1))
    assert verdict is ReturnVerdict.OUTSIDE_WINDOW
    assert reason == "delivered 2026-10-01, outside the 30-day return window"
    assert value == Decimal("19.99")


def test_wrong_items_are_refused_even_outside_the_window() -> None:
    late = DELIVERED + timedelta(days=90)
    assert check(("BISON-TONGUE", 1), at=late)[:2] == (
        ReturnVerdict.INELIGIBLE,
        "BISON-TONGUE is not on this order",
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"customer_id": "C-200"}, "order ORD-1 is not this customer's"),
        ({"status": "shipped", "delivered_at": None}, "order ORD-1 has not been delivered"),
        ({"returned": {"ELK-JERKY": 3}}, "every ELK-JERKY on this order is already being returned"),
        ({"returned": {"ELK-JERKY": 2}}, "only 1 of ELK-JERKY can still be returned, not 2"),
    ],
)
def test_ineligible_orders_and_items(fields: dict[str, object], reason: str) -> None:
    assert check(("ELK-JERKY", 2), order_fields=fields)[:2] == (ReturnVerdict.INELIGIBLE, reason)


def test_unknown_order_is_ineligible() -> None:
    result = policy.return_eligibility(
        [ReturnItem(sku="ELK-JERKY", quantity=1)],
        None,
        order_id="ORD-9",
        customer_id="C-100",
        at=DELIVERED,
        window=WINDOW,
    )
    assert (result.verdict, result.reason) == (
        ReturnVerdict.INELIGIBLE,
        "order ORD-9 does not exist",
    )


def test_a_request_lists_each_sku_once() -> None:
    with pytest.raises(ValueError, match="list each sku once"):
        ReturnRequest.model_validate(
            {
                "request_id": "r-1",
                "order_id": "ORD-1",
                "customer_id": "C-100",
                "items": [{"sku": "ELK-JERKY", "quantity": 1}, {"sku": "ELK-JERKY", "quantity": 1}],
                "reason": "wrong cut",
                "requested_by": "agent-amy",
            }
        )

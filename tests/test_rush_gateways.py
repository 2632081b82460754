"""The external systems a rush order talks to, as the local defaults implement them.

The order system's stock and priority flag, the payment gateway's fee charge and the charge
ledger, and the carrier: each is idempotent on its key, so a retried activity (or two
attempts racing) does its effect once. Specified on SQLite and on PostgreSQL, races included.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from activities.carrier import LocalCarrier
from activities.cases import CaseActivities
from activities.orders import LocalOrderSystem, StockInfo
from activities.payments import (
    ChargeLedger,
    Held,
    LocalPaymentGateway,
    PaymentDeclined,
    RefundLedger,
)
from infra.db import AuditRecord, Base, CarrierRequestRecord, Database, Order, OrderCharge
from tests.conftest import Shop
from tests.races import at_once
from workflows.models import AuditEntry, CaseOpening, CaseType
from workflows.rush_models import (
    CarrierRequestKind,
    ChargeReceipt,
    DeliveryState,
    FeeCharge,
    Tracking,
)

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
CASE = "rush-req-1"


def open_rush_case(activities: CaseActivities, order_id: str = "ORD-1001") -> str:
    activities.open_case(
        CaseOpening(
            case_id=CASE,
            case_type=CaseType.RUSH,
            order_id=order_id,
            customer_id="C-100",
            amount=None,
            requested_by="agent-amy",
            request={"request_id": "req-1"},
            opened_at=NOW,
        )
    )
    return CASE


def fee_charge(
    order_id: str = "ORD-1001", amount: str = "25.00", seqs: range = range(0)
) -> FeeCharge:
    return FeeCharge(
        case_id=CASE,
        idempotency_key=f"{CASE}/rush-fee",
        order_id=order_id,
        customer_id="C-100",
        amount=Decimal(amount),
        charged_at=NOW,
        audit=tuple(
            AuditEntry(case_id=CASE, seq=seq, at=NOW, event=f"line {seq}", actor="system")
            for seq in seqs
        ),
    )


def order_total(db: Database, order_id: str) -> Decimal:
    with db.read() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return order.total


def count(db: Database, table: type[Base]) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def audit_seqs(db: Database) -> list[int]:
    with db.read() as session:
        return list(
            session.scalars(
                select(AuditRecord.seq).where(AuditRecord.case_id == CASE).order_by(AuditRecord.seq)
            )
        )


# ---- the order system: stock and the priority flag --------------------------------------------


def test_skus_never_stocked_are_out_of_stock_with_no_restock_in_sight(shop: Shop) -> None:
    shop.set_stock("BISON-RIBEYE", 4, restock_on=date(2026, 12, 3))
    shop.set_stock("ELK-LOIN", 0)

    stock = LocalOrderSystem(shop.db).get_stock(
        ["BISON-RIBEYE", "ELK-LOIN", "KANGAROO", "ELK-LOIN"]
    )

    assert stock == {
        "BISON-RIBEYE": StockInfo(sku="BISON-RIBEYE", on_hand=4, restock_on=date(2026, 12, 3)),
        "ELK-LOIN": StockInfo(sku="ELK-LOIN", on_hand=0, restock_on=None),
        "KANGAROO": StockInfo(sku="KANGAROO", on_hand=0, restock_on=None),
    }
    assert LocalOrderSystem(shop.db).get_stock([]) == {}


def test_setting_stock_again_replaces_what_the_warehouse_held(shop: Shop) -> None:
    shop.set_stock("ELK-LOIN", 0, restock_on=date(2026, 12, 1))
    shop.set_stock("ELK-LOIN", 7)

    assert LocalOrderSystem(shop.db).get_stock(["ELK-LOIN"])["ELK-LOIN"] == StockInfo(
        sku="ELK-LOIN", on_hand=7, restock_on=None
    )


def test_an_order_is_flagged_for_priority_once_by_its_case(shop: Shop) -> None:
    orders = LocalOrderSystem(shop.db)

    assert orders.flag_priority("ORD-1001", case_id=CASE, promised_on=date(2026, 11, 27), at=NOW)
    # The retry (even with another promise or instant) changes nothing.
    assert not orders.flag_priority(
        "ORD-1001", case_id=CASE, promised_on=date(2026, 11, 30), at=NOW + timedelta(minutes=5)
    )

    with shop.db.read() as session:
        order = session.get(Order, "ORD-1001")
        assert order is not None
        assert (order.priority_case_id, order.promised_on, order.priority_flagged_at) == (
            CASE,
            date(2026, 11, 27),
            NOW,
        )
        other = session.get(Order, "ORD-1002")
        assert other is not None and other.priority_case_id is None


def test_flagging_an_unknown_order_is_refused(shop: Shop) -> None:
    with pytest.raises(LookupError, match="ORD-404"):
        LocalOrderSystem(shop.db).flag_priority(
            "ORD-404", case_id=CASE, promised_on=date(2026, 11, 27), at=NOW
        )


# ---- the fee: the gateway and the charge ledger ----------------------------------------------


def test_the_local_gateway_gives_a_retried_charge_its_first_reference(shop: Shop) -> None:
    gateway = LocalPaymentGateway(shop.db)

    first = gateway.charge(fee_charge())

    assert first.startswith("CH-") and len(first) == 13 and first == first.upper()
    assert gateway.charge(fee_charge()) == first
    assert gateway.charge(fee_charge().model_copy(update={"idempotency_key": "other"})) != first


def test_the_local_gateway_declines_a_closed_account_and_an_unknown_order(shop: Shop) -> None:
    gateway = LocalPaymentGateway(shop.db)

    with pytest.raises(PaymentDeclined, match="closed"):
        gateway.charge(fee_charge(order_id="ORD-2001"))
    with pytest.raises(PaymentDeclined, match="ORD-404"):
        gateway.charge(fee_charge(order_id="ORD-404"))


def test_a_retried_fee_charge_records_one_charge_and_raises_the_total_once(
    shop: Shop, activities: CaseActivities
) -> None:
    open_rush_case(activities)
    ledger = ChargeLedger(shop.db)
    assert ledger.find(fee_charge().idempotency_key) is None

    first = ledger.record(fee_charge(amount="37.45", seqs=range(2, 4)), "CH-0123456789")
    again = ledger.record(fee_charge(amount="37.45", seqs=range(2, 5)), "CH-SOMETHINGELSE")

    receipt = ChargeReceipt(reference="CH-0123456789", amount=Decimal("37.45"), charged_at=NOW)
    assert first == again == receipt
    assert ledger.find(fee_charge().idempotency_key) == receipt
    assert count(shop.db, OrderCharge) == 1
    assert order_total(shop.db, "ORD-1001") == Decimal("1237.45")
    # The retry's lines are kept too, each once: line 4 was recorded after the first attempt.
    assert audit_seqs(shop.db) == [2, 3, 4]


def test_concurrent_records_of_one_charge_write_one_row_and_raise_the_total_once(
    shop: Shop, activities: CaseActivities
) -> None:
    open_rush_case(activities)
    ledger = ChargeLedger(shop.db)

    results = at_once(
        [lambda: ledger.record(fee_charge(seqs=range(2, 4)), "CH-RACE") for _ in range(8)]
    )

    assert (
        results == [ChargeReceipt(reference="CH-RACE", amount=Decimal("25.00"), charged_at=NOW)] * 8
    )
    assert count(shop.db, OrderCharge) == 1
    assert order_total(shop.db, "ORD-1001") == Decimal("1225.00")
    assert audit_seqs(shop.db) == [2, 3]


def test_a_charged_fee_can_be_paid_back_with_the_rest_of_the_order(
    shop: Shop, activities: CaseActivities
) -> None:
    shop.add_order("ORD-RUSH", "100.00")
    open_rush_case(activities, "ORD-RUSH")
    ChargeLedger(shop.db).record(fee_charge(order_id="ORD-RUSH", amount="15.00"), "CH-1")
    refunds = RefundLedger(shop.db)

    def hold(key: str, amount: str) -> Held:
        return refunds.hold(key, case_id=CASE, order_id="ORD-RUSH", amount=Decimal(amount))

    assert hold("everything", "115.00") is Held.HELD
    assert hold("one cent more", "0.01") is Held.REFUSED


def test_a_charge_on_an_unknown_order_records_nothing(
    shop: Shop, activities: CaseActivities
) -> None:
    open_rush_case(activities)

    with pytest.raises(LookupError, match="ORD-404"):
        ChargeLedger(shop.db).record(fee_charge(order_id="ORD-404", seqs=range(2, 3)), "CH-1")

    assert count(shop.db, OrderCharge) == 0
    assert audit_seqs(shop.db) == []


# ---- the carrier -------------------------------------------------------------------------------


def test_an_order_the_carrier_knows_nothing_of_is_in_transit_without_a_number(shop: Shop) -> None:
    assert LocalCarrier(shop.db).track("ORD-1001") == Tracking(
        state=DeliveryState.IN_TRANSIT, tracking_number=None, delivered_at=None, attempts=0
    )


def test_tracking_reports_what_the_carrier_said_last(shop: Shop) -> None:
    carrier = LocalCarrier(shop.db)
    shop.set_shipment("ORD-1001", "attempted", attempts=1)
    assert carrier.track("ORD-1001") == Tracking(
        state=DeliveryState.ATTEMPTED, tracking_number="1Z999", attempts=1
    )

    shop.set_shipment("ORD-1001", "delivered", attempts=1, delivered_at=NOW)
    assert carrier.track("ORD-1001") == Tracking(
        state=DeliveryState.DELIVERED, tracking_number="1Z999", delivered_at=NOW, attempts=1
    )
    assert carrier.track("ORD-1002") == Tracking()


def test_a_repeated_carrier_request_returns_its_first_reference_and_writes_once(
    shop: Shop,
) -> None:
    carrier = LocalCarrier(shop.db)

    def ask(key: str, kind: CarrierRequestKind) -> str:
        return carrier.request(key, case_id=CASE, order_id="ORD-1001", kind=kind, at=NOW)

    investigation = ask(f"{CASE}/investigate", CarrierRequestKind.INVESTIGATION)
    redelivery = ask(f"{CASE}/redeliver-1", CarrierRequestKind.REDELIVERY)

    assert investigation.startswith("INV-") and redelivery.startswith("RDL-")
    assert ask(f"{CASE}/investigate", CarrierRequestKind.INVESTIGATION) == investigation
    # The key decides: a repeat gets the first request's reference whatever it asks.
    assert ask(f"{CASE}/redeliver-1", CarrierRequestKind.INVESTIGATION) == redelivery
    assert count(shop.db, CarrierRequestRecord) == 2


def test_concurrent_carrier_requests_with_one_key_write_one_row(shop: Shop) -> None:
    carrier = LocalCarrier(shop.db)

    results = at_once(
        [
            lambda: carrier.request(
                f"{CASE}/redeliver-2",
                case_id=CASE,
                order_id="ORD-1001",
                kind=CarrierRequestKind.REDELIVERY,
                at=NOW,
            )
            for _ in range(8)
        ]
    )

    assert len(set(results)) == 1 and str(results[0]).startswith("RDL-"), results
    assert count(shop.db, CarrierRequestRecord) == 1


def test_the_worker_wires_the_carrier_named_in_the_settings(activities: CaseActivities) -> None:
    assert isinstance(activities.carrier, LocalCarrier)
    assert isinstance(activities.charges, ChargeLedger)

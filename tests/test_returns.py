"""ReturnWorkflow, specified against the time-skipping server and the real worker."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from infra.db import Approval
from starter import (
    EventRefused,
    case_state,
    choose_store_credit,
    decide,
    receive_package,
    report_inspection,
    send_event,
)
from tests.case_helpers import events, eventually, outbox, wait_for_status
from tests.conftest import Cases, Shop
from tests.refund_helpers import ledger
from tests.return_helpers import (
    EVERYTHING,
    RIBEYES,
    awaiting_return,
    delivered_order,
    inspection,
    package,
    ra_rows,
    received,
    return_of,
    start,
)
from workflows import visibility
from workflows.models import (
    ApprovalKind,
    ApprovalStatus,
    CaseStatus,
    Decision,
    DecisionKind,
    StaffMember,
    StoreCreditChoice,
)
from workflows.return_models import RaStatus, ReturnState

# ---- issuing the RA ------------------------------------------------------------------------


async def test_eligible_return_gets_an_ra_number_and_shipping_instructions(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop)))
    ra_number = await awaiting_return(client, handle)

    [row] = ra_rows(shop)
    assert row.ra_number == ra_number == f"RA-{row.issued_at.year}-{row.id:06d}"
    assert row.status == "issued" and row.case_id == handle.id
    assert row.items == [{"sku": "BISON-RIBEYE", "quantity": 2}]
    assert row.expires_at - row.issued_at == timedelta(days=30)
    [email] = await eventually(lambda: outbox(shop, "return_instructions"))
    assert email.to_address == "ada@example.com"
    assert ra_number in email.subject and ra_number in email.body
    assert "100 Warehouse Way, Austin" in email.body and "2 x BISON-RIBEYE" in email.body
    description = await handle.describe()
    assert description.typed_search_attributes.get(visibility.RA_NUMBER) == ra_number
    state = await case_state(client, handle.id)
    assert state.amount == Decimal("300.00")


@pytest.mark.parametrize(
    ("items", "status", "reason"),
    [
        ((("BISON-TONGUE", 1),), "delivered", "BISON-TONGUE is not on this order"),
        ((("ELK-JERKY", 4),), "delivered", "only 3 of ELK-JERKY can still be returned, not 4"),
        (RIBEYES, "shipped", "has not been delivered"),
    ],
)
async def test_ineligible_return_is_rejected_with_the_reason(
    env: WorkflowEnvironment,
    client: Client,
    cases: Cases,
    shop: Shop,
    items: tuple[tuple[str, int], ...],
    status: str,
    reason: str,
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop, status=status), items))
    await handle.result()
    state = await case_state(client, handle.id)
    assert state.status is CaseStatus.REJECTED
    assert state.outcome is not None and reason in state.outcome.reason
    assert ra_rows(shop) == []
    [email] = outbox(shop, "return_rejected")
    assert reason in email.body


async def test_items_already_under_another_ra_cannot_be_returned_again(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = await delivered_order(env, shop)
    await awaiting_return(client, await start(cases, return_of(order_id)))
    second = await start(cases, return_of(order_id, (("BISON-RIBEYE", 1), ("ELK-JERKY", 1))))
    await second.result()
    state = await case_state(client, second.id)
    assert state.status is CaseStatus.REJECTED
    assert state.outcome is not None
    assert state.outcome.reason == "every BISON-RIBEYE on this order is already being returned"
    assert len(ra_rows(shop)) == 1


# ---- waiting for the package ---------------------------------------------------------------


async def test_customer_is_reminded_at_day_14_without_a_package(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop)))
    ra_number = await awaiting_return(client, handle)
    await env.sleep(timedelta(days=13, hours=23))
    assert outbox(shop, "return_reminder") == []

    await env.sleep(timedelta(hours=1))
    [reminder] = await eventually(lambda: outbox(shop, "return_reminder"))
    assert reminder.to_address == "ada@example.com" and ra_number in reminder.body
    assert (await case_state(client, handle.id)).status is CaseStatus.AWAITING_RETURN


async def test_ra_expires_at_day_30_and_can_no_longer_be_received(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop)))
    ra_number = await awaiting_return(client, handle)
    started = await env.get_current_time()
    await handle.result()  # time skips through the reminder to the expiry

    assert await env.get_current_time() - started >= timedelta(days=30)
    state = await case_state(client, handle.id, ReturnState)
    assert state.status is CaseStatus.EXPIRED
    assert state.ra_status is RaStatus.EXPIRED
    [row] = ra_rows(shop)
    assert row.status == "expired" and row.received_at is None
    assert len(outbox(shop, "return_reminder")) == 1
    [told] = outbox(shop, "return_expired")
    assert told.to_address == "ada@example.com" and ra_number in told.body
    assert ledger(shop) == []

    with pytest.raises(EventRefused) as refused:
        await receive_package(client, handle.id, package(ra_number))
    assert refused.value.kind == "RaExpired"
    assert f"{ra_number} expired on" in refused.value.message


async def test_package_received_on_day_29_is_accepted(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop)))
    ra_number = await awaiting_return(client, handle)
    await env.sleep(timedelta(days=29))

    ra = await receive_package(client, handle.id, package(ra_number))
    assert ra.status is RaStatus.RECEIVED and ra.received_at is not None
    await wait_for_status(client, handle.id, CaseStatus.INSPECTING)
    [row] = await eventually(lambda: [r for r in ra_rows(shop) if r.status == "received"])
    assert row.received_at == ra.received_at
    assert len(outbox(shop, "return_reminder")) == 1


async def test_package_for_another_ra_number_is_refused_and_the_case_keeps_waiting(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop)))
    ra_number = await awaiting_return(client, handle)
    with pytest.raises(EventRefused) as refused:
        await receive_package(client, handle.id, package("RA-2020-999999"))
    assert refused.value.kind == "UnknownRA"
    assert refused.value.message == f"RA-2020-999999 is not this case's RA ({ra_number})"
    assert (await case_state(client, handle.id)).status is CaseStatus.AWAITING_RETURN


async def test_package_is_received_once_and_a_repeat_is_answered_the_same(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop)))
    ra_number = await awaiting_return(client, handle)
    scan = package(ra_number)
    first = await receive_package(client, handle.id, scan)
    again = await receive_package(client, handle.id, scan)
    assert again == first
    with pytest.raises(EventRefused) as refused:
        await receive_package(client, handle.id, package(ra_number))
    assert refused.value.kind == "AlreadyReceived"
    await wait_for_status(client, handle.id, CaseStatus.INSPECTING)
    # Written with the case's next write: wait for the line, then count it.
    await eventually(lambda: [e for e in events(shop, handle.id) if e == "package_received"])
    assert events(shop, handle.id).count("package_received") == 1


async def test_bad_package_event_is_recorded_and_ignored(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop)))
    ra_number = await awaiting_return(client, handle)
    await client.get_workflow_handle(handle.id).signal("package_received", {"ra_number": 7})
    await client.get_workflow_handle(handle.id).signal(
        "package_received", {"event_id": "e-1", "ra_number": "RA-2020-000001"}
    )
    await eventually(lambda: [e for e in events(shop, handle.id) if e.endswith("_ignored")][1:])
    assert (await case_state(client, handle.id)).status is CaseStatus.AWAITING_RETURN

    warehouse = StaffMember(
        id="warehouse-wes", name="Wes", role="warehouse", approval_limit=Decimal(0)
    )
    await send_event(
        client,
        handle.id,
        "package_received",
        {"event_id": "e-2", "ra_number": ra_number},
        sender=warehouse,
    )
    await wait_for_status(client, handle.id, CaseStatus.INSPECTING)

    def package_lines() -> list[str]:
        return [e for e in events(shop, handle.id) if e.startswith("package_received")]

    # The state answers at once; the line reaches the database with the case's next write.
    await eventually(lambda: package_lines()[2:])
    assert package_lines() == [
        "package_received_ignored",
        "package_received_ignored",
        "package_received",
    ]


# ---- inspection and refund -----------------------------------------------------------------


async def test_passed_inspection_refunds_the_items(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop)))
    await received(client, handle, await awaiting_return(client, handle))
    await report_inspection(client, handle.id, inspection(True, notes="sealed, frozen"))
    await handle.result()

    state = await case_state(client, handle.id)
    assert state.status is CaseStatus.COMPLETED
    [entry] = ledger(shop)
    assert entry.amount == Decimal("300.00") and entry.method == "original_payment"
    [email] = outbox(shop, "refund_confirmed")
    assert "300.00 USD" in email.body


async def test_inspection_may_refund_less_than_the_price(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop)))
    await received(client, handle, await awaiting_return(client, handle))
    with pytest.raises(EventRefused) as refused:
        await report_inspection(
            client, handle.id, inspection(True, refund_amount=Decimal("300.01"))
        )
    assert refused.value.kind == "InvalidAmount"
    await report_inspection(client, handle.id, inspection(True, refund_amount=Decimal("250.00")))
    await handle.result()
    [entry] = ledger(shop)
    assert entry.amount == Decimal("250.00")


async def test_inspection_before_the_package_arrives_is_refused(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop)))
    await awaiting_return(client, handle)
    with pytest.raises(EventRefused) as refused:
        await report_inspection(client, handle.id, inspection(True))
    assert refused.value.kind == "NotInspecting"
    assert (await case_state(client, handle.id)).status is CaseStatus.AWAITING_RETURN


async def test_failed_inspection_rejects_and_tells_the_customer_why(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop)))
    await received(client, handle, await awaiting_return(client, handle))
    await report_inspection(client, handle.id, inspection(False, notes="vacuum seal broken"))
    await handle.result()

    state = await case_state(client, handle.id)
    assert state.status is CaseStatus.REJECTED
    assert state.approval is None
    assert ledger(shop) == []
    [email] = outbox(shop, "return_rejected")
    assert "did not pass inspection: vacuum seal broken" in email.body


async def test_failed_inspection_refunded_when_a_manager_grants_an_exception(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop)))
    await received(client, handle, await awaiting_return(client, handle))
    await report_inspection(
        client,
        handle.id,
        inspection(False, notes="thawed in transit", request_exception=True, inspected_by="wh-1"),
    )
    state = await wait_for_status(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    assert state.approval is not None and "thawed in transit" in state.approval.reason
    await decide(client, handle.id, Decision(approver_id="sup-sam", decision=DecisionKind.APPROVE))
    await handle.result()
    assert (await case_state(client, handle.id)).status is CaseStatus.COMPLETED
    [entry] = ledger(shop)
    assert entry.amount == Decimal("300.00")


async def test_refund_over_500_waits_for_a_manager(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop), EVERYTHING))
    await received(client, handle, await awaiting_return(client, handle))
    await report_inspection(client, handle.id, inspection(True))
    state = await wait_for_status(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    assert state.approval is not None and state.approval.amount == Decimal("600.00")
    assert ledger(shop) == []

    await decide(client, handle.id, Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE))
    await handle.result()
    [entry] = ledger(shop)
    assert entry.amount == Decimal("600.00")


async def test_store_credit_chosen_while_waiting_is_used(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop)))
    ra_number = await awaiting_return(client, handle)
    await choose_store_credit(client, handle.id, StoreCreditChoice(event_id="evt-credit"))
    await received(client, handle, ra_number)
    await report_inspection(client, handle.id, inspection(True))
    await handle.result()
    [entry] = ledger(shop)
    assert entry.method == "store_credit"


# ---- outside the return window: a policy exception -----------------------------------------


def approval_kind(shop: Shop, case_id: str) -> list[tuple[str, str | None]]:
    """The case's approval row as the exceptions report reads it (none yet: [])."""
    with shop.db.read() as session:
        row = session.get(Approval, case_id)
        return [] if row is None else [(row.kind, row.rule)]


async def test_return_outside_the_window_approved_by_a_manager_gets_an_ra(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = await delivered_order(env, shop, days_ago=45)
    handle = await start(cases, return_of(order_id, EVERYTHING))
    state = await wait_for_status(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    assert state.approval is not None
    assert "outside the 30-day return window" in state.approval.reason
    assert state.approval.amount == Decimal("600.00")
    assert ra_rows(shop) == []
    # An exception to a named rule, kept as such for the exceptions report.
    assert state.approval.kind is ApprovalKind.POLICY_EXCEPTION
    assert state.approval.rule == "RETURN_WINDOW"
    # The state answers at once; the row is written with the approval request's email.
    assert await eventually(lambda: approval_kind(shop, handle.id)) == [
        ("policy_exception", "RETURN_WINDOW")
    ]

    await decide(client, handle.id, Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE))
    ra_number = await awaiting_return(client, handle)
    await received(client, handle, ra_number)
    await report_inspection(client, handle.id, inspection(True))
    await handle.result()
    # The exception's approver had authority for 600.00: the refund is not asked again.
    state = await case_state(client, handle.id)
    assert state.status is CaseStatus.COMPLETED
    assert state.approval is not None and state.approval.status is ApprovalStatus.APPROVED
    assert len(outbox(shop, "approval_requested")) == 4  # one request, to each approver
    [entry] = ledger(shop)
    assert entry.amount == Decimal("600.00")


async def test_return_outside_the_window_rejected_by_a_manager_is_rejected(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop, days_ago=45)))
    await wait_for_status(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    await decide(
        client,
        handle.id,
        Decision(approver_id="sup-sam", decision=DecisionKind.REJECT, note="opened and used"),
    )
    await handle.result()

    state = await case_state(client, handle.id)
    assert state.status is CaseStatus.REJECTED
    assert ra_rows(shop) == []
    [email] = outbox(shop, "return_rejected")
    assert "outside the 30-day return window" in email.body
    assert "a manager did not grant an exception (opened and used)" in email.body


async def test_return_inside_the_window_needs_no_manager(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop, days_ago=29)))
    await awaiting_return(client, handle)
    state = await case_state(client, handle.id, ReturnState)
    assert state.approval is None
    assert re.fullmatch(r"RA-\d{4}-\d{6}", state.ra_number or "")

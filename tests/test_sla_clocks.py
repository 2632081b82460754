"""SLA clocks: every wait's deadline on business time, warned at 75% of its budget and
breached at 100%, specified against the time-skipping server, the real worker and both
databases."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment

from activities.cases import CaseActivities
from infra.db import Case
from settings import Settings, public_holidays
from starter import (
    DATA_CONVERTER,
    case_state,
    decide,
    ensure_search_attributes,
    start_case,
    start_refund,
)
from tests.billing_dispute_helpers import (
    dispute,
    dispute_state,
    disputed_order,
    invoiced,
    resolution,
    resolve,
)
from tests.case_helpers import (
    EASTERN,
    FRIDAY,
    MONDAY,
    audit,
    emails,
    eventually,
    move_to,
    sleep_until,
)
from tests.complaint_helpers import complaint, status_of
from tests.conftest import BIN, Cases, Shop
from tests.freight_claim_helpers import claim, shipped_order
from tests.freight_claim_helpers import status_of as claim_status
from tests.rush_helpers import rush, stocked_order
from tests.rush_helpers import status_of as rush_status
from tests.sla_helpers import clock_row, clock_rows, wait_for_status
from worker import build_worker
from workflows.metrics import SLA_BREACHES as BREACHES
from workflows.metrics import SLA_WARNINGS as WARNINGS
from workflows.models import CaseRules, CaseStatus, Decision, DecisionKind, RefundRequest

BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


def eastern(day: str, clock: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=EASTERN).astimezone(UTC)


def refund(amount: str) -> RefundRequest:
    return RefundRequest(
        request_id=f"req-{uuid.uuid4().hex[:10]}",
        order_id="ORD-1001",
        customer_id="C-100",
        amount=Decimal(amount),
        reason="thawed on arrival",
        requested_by="agent-amy",
    )


async def friday_afternoon(env: WorkflowEnvironment) -> datetime:
    """Friday 16:00 Eastern: four business hours left before the weekend."""
    return (await move_to(env, FRIDAY, 16)).astimezone(UTC)


@BOTH
async def test_approval_escalation_warns_on_monday_at_75_percent_of_business_time(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    friday_at_four = await friday_afternoon(env)
    handle = await cases.refund(refund("750.00"))
    state = await wait_for_status(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    assert state.approval is not None
    requested_at = state.approval.requested_at
    await eventually(lambda: clock_rows(shop, handle.id))  # written with the request's email
    late = requested_at - friday_at_four  # the moments the case took to open

    # Requested at Friday 16:00 with an 8-business-hour escalation budget: 4 hours on
    # Friday, 2 more on Monday from 08:00 make the 75% (6 hours); the weekend does not count.
    row = clock_row(shop, handle.id, "approval_escalation")
    monday = friday_at_four.astimezone(EASTERN).date() + timedelta(days=3)
    warn_at = eastern(monday.isoformat(), "10:00") + late
    due_at = eastern(monday.isoformat(), "12:00") + late
    assert due_at == state.approval.escalate_at
    assert (row.procedure, row.owner, row.budget_seconds) == ("refund", "approvers", 8 * 3600)
    assert (row.started_at, row.warn_at, row.due_at) == (requested_at, warn_at, due_at)
    assert row.warned_at is None and row.stopped_at is None

    await sleep_until(env, warn_at + timedelta(minutes=1))
    warnings = await eventually(lambda: emails(shop, handle.id, "sla_warning"))
    # To the request's eligible approvers (sup-low's limit is under 750).
    assert {e.to_address for e in warnings} == {
        "sup-sam@exoticmeats.com",
        "mgr-mia@exoticmeats.com",
        "mgr-max@exoticmeats.com",
    }
    assert "approval escalation" in warnings[0].subject
    [line] = [entry for entry in audit(shop, handle.id) if entry.event == "sla_warning"]
    # Recorded by the timer at the warning instant (its workflow task takes milliseconds).
    assert warn_at <= line.at < warn_at + timedelta(seconds=1)
    assert line.detail["clock"] == "approval_escalation"
    assert clock_row(shop, handle.id, "approval_escalation").warned_at == warn_at
    assert clock_row(shop, handle.id, "approval_escalation").breached_at is None

    await sleep_until(env, due_at + timedelta(minutes=1))
    breached = await eventually(
        lambda: [e for e in audit(shop, handle.id) if e.event == "sla_breached"]
    )
    assert [e.detail["clock"] for e in breached] == ["approval_escalation"]
    assert due_at <= breached[0].at < due_at + timedelta(seconds=1)
    row = clock_row(shop, handle.id, "approval_escalation")
    assert row.breached_at == due_at
    assert row.stopped_at is not None and due_at <= row.stopped_at < due_at + timedelta(seconds=1)
    # Its breach is the escalation the gate makes at that instant.
    assert len(emails(shop, handle.id, "approval_escalated")) == 1


@BOTH
async def test_a_decision_before_the_warning_stops_the_clock_without_warning(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await friday_afternoon(env)
    handle = await cases.refund(refund("750.00"))
    await wait_for_status(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    await eventually(lambda: clock_rows(shop, handle.id))
    decided_at = (await env.get_current_time()).astimezone(UTC)

    await decide(client, handle.id, Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE))
    await handle.result()

    rows = clock_rows(shop, handle.id)
    assert {row.clock for row in rows} == {"approval_escalation", "approval_expiry"}
    for row in rows:
        assert row.stopped_at is not None and row.stopped_at >= decided_at
        assert row.stopped_at < row.warn_at
        assert (row.warned_at, row.breached_at) == (None, None)
    assert emails(shop, handle.id, "sla_warning") == []
    events = [entry.event for entry in audit(shop, handle.id)]
    assert "sla_warning" not in events and "sla_breached" not in events


@BOTH
async def test_an_unanswered_approval_breaches_both_clocks_and_each_warned_its_owner(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await friday_afternoon(env)
    handle = await cases.refund(refund("750.00"))
    await handle.result()  # time skips through every timer to the expiry

    rows = {row.clock: row for row in clock_rows(shop, handle.id)}
    expiry = rows["approval_expiry"]
    assert expiry.owner == "cs_manager"
    assert expiry.budget_seconds == 3 * 12 * 3600  # three business days of 12 hours
    assert expiry.warned_at == expiry.warn_at
    assert expiry.breached_at == expiry.due_at
    assert expiry.stopped_at is not None
    assert expiry.due_at <= expiry.stopped_at < expiry.due_at + timedelta(seconds=1)
    warnings = emails(shop, handle.id, "sla_warning")
    assert "csmanager@exoticmeats.com" in {e.to_address for e in warnings}
    assert all(row.stopped_at is not None for row in rows.values())


@BOTH
async def test_complaint_follow_up_warns_its_agent_and_the_follow_up_stops_it_in_time(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    friday_seven_pm = (await move_to(env, FRIDAY, 19)).astimezone(UTC)
    handle = await cases.start(start_case, complaint("quality"))
    await eventually(lambda: clock_rows(shop, handle.id))

    # Promised within 24 hours of the opening (Saturday 19:00); of those, only the hour to
    # Friday's closing is business time, so the agent is warned at Friday 19:45.
    row = clock_row(shop, handle.id, "complaint_follow_up")
    opened = row.started_at
    friday_close = friday_seven_pm + timedelta(hours=1)
    assert (row.procedure, row.owner) == ("complaint", "agent-amy")
    assert row.due_at == opened + timedelta(hours=24)
    assert row.budget_seconds == int((friday_close - opened).total_seconds())
    assert row.warn_at == opened + (friday_close - opened) * 0.75

    await sleep_until(env, row.warn_at + timedelta(minutes=1))
    [warning] = await eventually(lambda: emails(shop, handle.id, "sla_warning"))
    assert warning.to_address == "agent-amy@exoticmeats.com"
    assert clock_row(shop, handle.id, "complaint_follow_up").warned_at == row.warn_at

    await sleep_until(env, row.due_at + timedelta(minutes=1))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    follow_up = await eventually(
        lambda: [r for r in clock_rows(shop, handle.id) if r.clock == "callback"]
    )
    row = clock_row(shop, handle.id, "complaint_follow_up")
    assert row.stopped_at is not None and row.breached_at is None  # followed up in time
    # The agent's callback: 4 business hours from the follow-up, Monday 08:00-12:00.
    [callback] = follow_up
    monday = friday_seven_pm.astimezone(EASTERN).date() + timedelta(days=3)
    assert callback.due_at == eastern(monday.isoformat(), "12:00")
    assert callback.warn_at == eastern(monday.isoformat(), "11:00")
    answer = clock_row(shop, handle.id, "satisfaction_wait")
    assert answer.owner == "customer" and answer.stopped_at is None

    await move_to(env, MONDAY, 9)
    await handle.signal(
        "customer_response", {"event_id": "r-1", "satisfied": True, "recorded_by": "agent-amy"}
    )
    await handle.result()
    rows = clock_rows(shop, handle.id)
    assert all(r.stopped_at is not None and r.breached_at is None for r in rows)
    assert [r.clock for r in rows if r.warned_at is not None] == ["complaint_follow_up"]
    assert "sla_breached" not in [line.event for line in audit(shop, handle.id)]


@BOTH
async def test_a_settlement_awaiting_a_manager_past_24_hours_breaches_the_follow_up_promise(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, MONDAY, 10)
    handle = await cases.start(start_case, complaint("quality", "refund", "1100.00"))
    await status_of(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    [row] = await eventually(
        lambda: [r for r in clock_rows(shop, handle.id) if r.clock == "complaint_follow_up"]
    )

    # Nobody decides for a day: the promise is breached at 24 hours, while the case waits.
    await sleep_until(env, row.due_at + timedelta(minutes=1))
    await eventually(
        lambda: [
            e
            for e in audit(shop, handle.id)
            if e.event == "sla_breached" and e.detail["clock"] == "complaint_follow_up"
        ]
    )
    row = clock_row(shop, handle.id, "complaint_follow_up")
    assert (row.warned_at, row.breached_at, row.stopped_at) == (row.warn_at, row.due_at, None)

    await decide(client, handle.id, Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)  # followed up, late
    [row] = await eventually(
        lambda: [
            r
            for r in clock_rows(shop, handle.id)
            if r.clock == "complaint_follow_up" and r.stopped_at
        ]
    )
    assert row.breached_at == row.due_at
    breaches = [e for e in audit(shop, handle.id) if e.event == "sla_breached"]
    assert [e.detail["clock"] for e in breaches].count("complaint_follow_up") == 1


@BOTH
async def test_an_unanswered_dispute_email_breaches_at_two_business_hours_while_it_waits(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, FRIDAY, 19)
    handle = await cases.start(start_case, dispute(disputed_order(shop)))
    await dispute_state(client, handle.id, invoiced)

    # Friday 19:00 + 2 business hours: one on Friday, one from Monday 08:00; the warning
    # at 1.5 hours falls on Monday 08:30.
    [row] = await eventually(
        lambda: [r for r in clock_rows(shop, handle.id) if r.clock == "email_response"]
    )
    monday = row.started_at.astimezone(EASTERN).date() + timedelta(days=3)
    friday_close = eastern((monday - timedelta(days=3)).isoformat(), "20:00")
    left_friday = friday_close - row.started_at
    assert row.owner == "agent-amy" and row.procedure == "billing_dispute"
    assert row.due_at == eastern(monday.isoformat(), "08:00") + (timedelta(hours=2) - left_friday)
    assert row.warn_at == eastern(monday.isoformat(), "08:00") + (
        timedelta(hours=1.5) - left_friday
    )

    await sleep_until(env, row.due_at + timedelta(minutes=5))
    breached = await eventually(
        lambda: [e for e in audit(shop, handle.id) if e.event == "sla_breached"]
    )
    assert [line.detail["clock"] for line in breached] == ["email_response"]
    row = clock_row(shop, handle.id, "email_response")
    assert (row.warned_at, row.breached_at, row.stopped_at) == (row.warn_at, row.due_at, None)
    [warning] = emails(shop, handle.id, "sla_warning")
    assert warning.to_address == "agent-amy@exoticmeats.com"
    # The case still waits for its agent; the resolution stops the clock, breached.
    assert (await case_state(client, handle.id)).status is CaseStatus.REVIEWING
    await resolve(client, handle.id, resolution("no_change"))
    await handle.result()
    row = clock_row(shop, handle.id, "email_response")
    assert row.stopped_at is not None and row.breached_at == row.due_at


@BOTH
async def test_each_round_the_carrier_must_be_chased_is_a_breach_of_its_follow_up_clock(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.start(start_case, claim(shipped_order(shop), "150.00"))
    await claim_status(client, handle.id, CaseStatus.AWAITING_CARRIER)
    [first] = await eventually(lambda: clock_rows(shop, handle.id))
    assert (first.clock, first.procedure, first.owner) == (
        "carrier_follow_up",
        "freight_claim",
        "agent-amy",
    )
    assert first.due_at - first.started_at == timedelta(days=7)

    # A week without an answer: chased, and the next round starts.
    await sleep_until(env, first.due_at + timedelta(minutes=1))
    rounds = await eventually(
        lambda: [r for r in clock_rows(shop, handle.id) if r.key.endswith("/2")]
    )
    first = clock_row(shop, handle.id, "carrier_follow_up", run=1)
    assert first.breached_at == first.due_at and first.warned_at == first.warn_at
    assert rounds[0].stopped_at is None

    # The carrier settles within the second week: that round is met.
    payload = {"event_id": "cs-1", "settled_amount": "150.00", "reported_by": "backend"}
    await handle.signal("carrier_settled", payload)
    await handle.result()
    second = clock_row(shop, handle.id, "carrier_follow_up", run=2)
    assert second.stopped_at is not None and second.stopped_at < second.due_at
    assert second.breached_at is None


@BOTH
async def test_a_customers_deadline_is_recorded_and_expires_without_warning_or_breach(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, FRIDAY, 19)
    handle = await cases.start(start_case, rush(stocked_order(shop)))
    quoted = await rush_status(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    assert quoted.accept_by is not None

    # The row is there while the quote stands: the inbox shows when it lapses.
    [row] = await eventually(lambda: clock_rows(shop, handle.id))
    assert (row.clock, row.procedure, row.owner) == ("rush_fee_acceptance", "rush", "customer")
    assert row.due_at == quoted.accept_by
    assert row.budget_seconds == 2 * 3600 and row.stopped_at is None

    await handle.result()  # the quote lapses; the order ships as standard
    row = clock_row(shop, handle.id, "rush_fee_acceptance")
    assert row.stopped_at is not None and row.stopped_at >= row.due_at
    assert (row.warned_at, row.breached_at) == (None, None)
    assert emails(shop, handle.id, "sla_warning") == []
    assert "sla_breached" not in [line.event for line in audit(shop, handle.id)]


async def test_warnings_and_breaches_are_counted_by_procedure_and_clock(
    activities: CaseActivities, settings: Settings, shop: Shop
) -> None:
    """The counters, read from a runtime of its own that buffers metrics (the worker's
    meter is its client's runtime's)."""
    buffer = MetricBuffer(10_000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    async with (
        await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(BIN / "temporal-test-server"),
            data_converter=DATA_CONVERTER,
            runtime=runtime,
        ) as metered,
        build_worker(metered.client, activities=activities, settings=settings),
    ):
        await ensure_search_attributes(metered.client)
        started = await start_refund(
            metered.client, refund("750.00"), task_queue=settings.task_queue
        )
        await started.handle.result()  # unanswered: both clocks warn, then breach

    counted: Counter[tuple[str, str, str]] = Counter()
    for update in buffer.retrieve_updates():
        if update.metric.name in (WARNINGS, BREACHES):
            labels = update.attributes
            counted[(update.metric.name, str(labels["procedure"]), str(labels["clock"]))] += int(
                update.value
            )
    assert counted == {
        (WARNINGS, "refund", "approval_escalation"): 1,
        (WARNINGS, "refund", "approval_expiry"): 1,
        (BREACHES, "refund", "approval_escalation"): 1,
        (BREACHES, "refund", "approval_expiry"): 1,
    }


@BOTH
@pytest.mark.parametrize("settings", [{"holidays_country": "US"}], indirect=True)
async def test_the_country_holidays_are_recorded_with_the_case_when_it_opens(
    client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("20.00"))
    await handle.result()

    with shop.db.transaction() as session:
        case = session.get(Case, handle.id)
        assert case is not None
        recorded = CaseRules.model_validate(case.rules).calendar.holidays
        opened_at = case.opened_at
    # The package's holidays of the year the case opened and the next two, as it opened
    # (the shared test server's clock may have run far ahead: its year, not today's).
    year = opened_at.year
    assert set(recorded) == public_holidays("US", None, years=range(year, year + 3))
    assert Settings().case_rules(opened_at=opened_at).calendar.holidays == ()  # not by default


def test_a_subdivision_adds_its_own_holidays_to_the_listed_ones() -> None:
    listed = date(2026, 12, 24)
    texas = Settings(holidays_country="US", holidays_subdivision="TX", holidays=(listed,))
    nationwide = Settings(holidays_country="US")

    calendar = texas.case_rules().calendar
    assert listed in calendar.holidays
    assert date(2026, 3, 2) in calendar.holidays  # Texas Independence Day
    assert date(2026, 3, 2) not in nationwide.case_rules().calendar.holidays
    assert not calendar.is_business_day(date(2026, 11, 26))  # Thanksgiving


@pytest.mark.parametrize(("country", "subdivision"), [("XX", None), ("US", "ZZ"), (None, "TX")])
def test_an_unknown_country_or_subdivision_is_refused_at_start(
    country: str | None, subdivision: str | None
) -> None:
    with pytest.raises(ValidationError, match=r"(?i)holidays"):
        Settings(holidays_country=country, holidays_subdivision=subdivision)

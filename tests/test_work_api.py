"""My work over HTTP: what waits for each role, derived from the registry; filters, search
and sort; done by me; bulk approval; delegations; and the list's cost with 1,000 open cases."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from infra.db import Case, Database, SlaClock
from registry import EVENTS, Event
from settings import Settings
from starter import case_state, start_case
from starter.api import create_app
from starter.api.business_time import clock
from tests.billing_dispute_helpers import dispute, disputed_order
from tests.conftest import Cases, Shop
from tests.work_helpers import (
    add_staff,
    complaint_waiting_for_qa,
    delegate,
    recorded_status,
    refund_waiting,
    return_waiting,
    rush_waiting_for_customer,
    seed_case,
)
from workflows.models import ApprovalStatus, CaseStatus, StoreCreditChoice

ON_BOTH_DATABASES = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


async def work(http: httpx.AsyncClient, shop: Shop, staff_id: str, **query: Any) -> Any:
    response = await http.get("/v1/work", params=query, headers=shop.auth(staff_id))
    assert response.status_code == 200, response.text
    return response.json()


def ids(page: Any) -> list[str]:
    return [item["case_id"] for item in page["items"]]


# ---- the registry declares what each case waits for ---------------------------------------------


def test_every_event_a_person_sends_is_awaited_in_some_status() -> None:
    unawaited = sorted(name for name, event in EVENTS.items() if not event.awaited_in)
    # The customer may choose store credit at any time: nothing waits for it.
    assert unawaited == ["store_credit_chosen"]
    assert all(not s.is_final for e in EVENTS.values() for s in e.awaited_in)


def test_an_event_awaited_in_a_final_status_is_refused_at_import() -> None:
    with pytest.raises(TypeError, match="awaited in final statuses"):
        Event(
            "late_choice",
            StoreCreditChoice,
            roles=("agent",),
            actor="chosen_by",
            signal="choose_store_credit",
            awaited_in=(CaseStatus.COMPLETED,),
        )


# ---- each role sees its own part ---------------------------------------------------------------


async def test_the_warehouse_sees_the_return_awaiting_receipt_and_not_the_approval(
    http: httpx.AsyncClient, cases: Cases, shop: Shop, env: WorkflowEnvironment
) -> None:
    refund_id = await refund_waiting(cases, shop, "750.00")
    return_id, ra = await return_waiting(cases, shop, await env.get_current_time())

    warehouse = await work(http, shop, "warehouse-wes")
    assert ids(warehouse) == [return_id]
    item = warehouse["items"][0]
    assert item["ra_number"] == ra
    assert [a["name"] for a in item["actions"]] == ["package_received"]
    assert item["clock"]["label"].startswith("RA expires in ")
    assert item["customer_name"] == "Ada Lovelace"

    manager = await work(http, shop, "mgr-mia")
    assert ids(manager) == [refund_id]
    decision = manager["items"][0]
    assert [a["name"] for a in decision["actions"]] == ["decision"]
    assert decision["amount"] == "750.00"
    assert decision["approval"]["reason"] == "thawed on arrival"
    assert decision["clock"]["name"] == "escalates"
    # The test server's clock may run ahead of ours (timers skipped by earlier specs).
    assert re.fullmatch(
        r"escalates in \d+ business (minute|hour|day)s?", decision["clock"]["label"]
    )
    assert decision["clock"]["local"].endswith(("EST", "EDT"))


async def test_a_manager_sees_approvals_within_authority_and_a_delegate_the_ones_stood_in_for(
    http: httpx.AsyncClient, cases: Cases, shop: Shop, env: WorkflowEnvironment
) -> None:
    add_staff(shop, "agent-al", "agent", limit="3000.00")
    # Before the requests: the gate lists the delegate.
    await delegate(env, shop, "mgr-mia", "agent-al")
    small = await refund_waiting(cases, shop, "750.00")
    large = await refund_waiting(cases, shop, "1100.00")

    assert sorted(ids(await work(http, shop, "mgr-mia"))) == sorted([small, large])
    assert ids(await work(http, shop, "sup-sam")) == [small]  # limit 1000.00
    assert ids(await work(http, shop, "sup-low")) == []  # limit 600.00
    standing_in = await work(http, shop, "agent-al")
    assert sorted(ids(standing_in)) == sorted([small, large])
    assert {tuple(i["standing_in_for"]) for i in standing_in["items"]} == {("mgr-mia",)}


async def test_qa_sees_the_complaint_awaiting_findings_until_it_sends_them(
    http: httpx.AsyncClient, cases: Cases, shop: Shop
) -> None:
    case_id = await complaint_waiting_for_qa(cases, shop)
    page = await work(http, shop, "qa-quinn")
    assert ids(page) == [case_id]
    assert [a["name"] for a in page["items"][0]["actions"]] == ["qa_findings"]
    assert ids(await work(http, shop, "warehouse-wes")) == []

    sent = await http.post(
        f"/v1/cases/{case_id}/events",
        json={"type": "qa_findings", "event_id": "qa-1", "root_cause": "cold chain"},
        headers=shop.auth("qa-quinn"),
    )
    assert sent.status_code == 202, sent.text
    for _ in range(100):
        if not ids(await work(http, shop, "qa-quinn")):
            break
        await asyncio.sleep(0.05)
    assert ids(await work(http, shop, "qa-quinn")) == []


async def test_an_agent_sees_the_customers_answer_to_relay(
    http: httpx.AsyncClient, cases: Cases, shop: Shop
) -> None:
    case_id = await rush_waiting_for_customer(cases, shop)
    page = await work(http, shop, "agent-amy")
    assert ids(page) == [case_id]
    assert [a["name"] for a in page["items"][0]["actions"]] == ["fee_accepted", "fee_declined"]
    assert ids(await work(http, shop, "qa-quinn")) == []


async def test_the_forms_are_the_events_a_role_may_send_without_actor_or_event_id(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    response = await http.get("/v1/work/forms", headers=shop.auth("warehouse-wes"))
    assert response.status_code == 200
    forms = {f["name"]: f for f in response.json()["items"]}
    assert sorted(forms) == ["inspection_completed", "package_received"]
    received = forms["package_received"]["schema"]
    assert received["required"] == ["ra_number"]
    assert "received_by" not in received["properties"]
    assert "event_id" not in received["properties"]


# ---- filters, search, sort (both databases) ---------------------------------------------------


@ON_BOTH_DATABASES
async def test_the_list_filters_searches_and_sorts_in_the_database(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    shop.add_order("ORD-3001", "3000.00", customer_id="C-200")
    seed_case(shop, "refund-old", amount="750.00", eligible=("mgr-mia",), age=timedelta(hours=30))
    seed_case(
        shop,
        "refund-vip",
        order_id="ORD-3001",
        customer_id="C-200",
        amount="2500.00",
        eligible=("mgr-mia",),
        age=timedelta(hours=2),
    )
    seed_case(shop, "refund-not-mine", amount="900.00", eligible=("mgr-max",))
    seed_case(
        shop, "return-1", case_type="return", status="awaiting_return", ra_number="RA-2026-000777"
    )

    assert ids(await work(http, shop, "mgr-mia")) == ["refund-old", "refund-vip"]
    assert ids(await work(http, shop, "mgr-mia", sort="amount")) == ["refund-vip", "refund-old"]
    assert ids(await work(http, shop, "mgr-mia", min_amount="1000")) == ["refund-vip"]
    assert ids(await work(http, shop, "mgr-mia", max_amount="1000")) == ["refund-old"]
    assert ids(await work(http, shop, "mgr-mia", q="grace")) == ["refund-vip"]
    assert ids(await work(http, shop, "mgr-mia", q="ORD-3001")) == ["refund-vip"]
    assert ids(await work(http, shop, "mgr-mia", procedure="return")) == []
    assert ids(await work(http, shop, "warehouse-wes", q="000777")) == ["return-1"]
    assert ids(await work(http, shop, "warehouse-wes", status="inspecting")) == []
    vip = (await work(http, shop, "mgr-mia", q="grace"))["items"][0]
    assert (vip["customer_name"], vip["vip"], vip["amount"]) == ("Grace Hopper", True, "2500.00")
    bad = await http.get("/v1/work?sort=nearest", headers=shop.auth("mgr-mia"))
    assert bad.status_code == 422


# ---- done by me, bulk approval ----------------------------------------------------------------


async def test_bulk_approval_answers_per_case_and_one_refusal_never_blocks_the_rest(
    http: httpx.AsyncClient, cases: Cases, shop: Shop, client: Client
) -> None:
    within = await refund_waiting(cases, shop, "750.00")
    over_limit = await refund_waiting(cases, shop, "1100.00")
    response = await http.post(
        "/v1/work/approve",
        json={"case_ids": [over_limit, within, "refund-nobody"], "note": "photos checked"},
        headers=shop.auth("sup-sam"),
    )
    assert response.status_code == 200, response.text
    results = {r["case_id"]: r for r in response.json()["items"]}
    assert results[within]["ok"] and results[within]["approval"]["status"] == "approved"
    assert (results[over_limit]["status"], results[over_limit]["error"]) == (403, "not_authorized")
    assert "approval limit 1000.00 is below 1100.00" in results[over_limit]["detail"]
    assert results["refund-nobody"]["status"] == 404
    assert response.json()["approved"] == 1 and response.json()["refused"] == 2

    approved = (await case_state(client, within)).approval
    waiting = (await case_state(client, over_limit)).approval
    assert approved is not None and waiting is not None
    assert (approved.status, approved.decided_by, approved.note) == (
        ApprovalStatus.APPROVED,
        "sup-sam",
        "photos checked",
    )
    assert waiting.status is ApprovalStatus.PENDING

    for _ in range(100):
        done = (await http.get("/v1/work/done", headers=shop.auth("sup-sam"))).json()
        if done["items"]:
            break
        await asyncio.sleep(0.05)
    assert [(d["case_id"], d["event"]) for d in done["items"]] == [(within, "approval_approved")]
    assert done["items"][0]["detail"]["note"] == "photos checked"


async def test_bulk_approval_is_for_approvers(http: httpx.AsyncClient, shop: Shop) -> None:
    response = await http.post(
        "/v1/work/approve", json={"case_ids": ["refund-x"]}, headers=shop.auth("warehouse-wes")
    )
    assert response.status_code == 403


# ---- delegation --------------------------------------------------------------------------------


@ON_BOTH_DATABASES
async def test_a_manager_names_a_delegate_and_ends_it(http: httpx.AsyncClient, shop: Shop) -> None:
    now = datetime.now(UTC)
    body = {
        "delegate_id": "sup-sam",
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(days=7)).isoformat(),
    }
    named = await http.post("/v1/delegations", json=body, headers=shop.auth("mgr-mia"))
    assert named.status_code == 201, named.text
    [given] = named.json()["given"]
    assert (given["delegate_id"], given["active"]) == ("sup-sam", True)
    received = (await http.get("/v1/delegations", headers=shop.auth("sup-sam"))).json()
    assert [d["staff_id"] for d in received["received"]] == ["mgr-mia"]
    me = (await http.get("/v1/me", headers=shop.auth("sup-sam"))).json()
    assert me["acting_for"] == ["mgr-mia"]

    refused = await http.post("/v1/delegations", json=body, headers=shop.auth("sup-sam"))
    assert refused.status_code == 403
    backwards = {**body, "ends_at": (now - timedelta(days=1)).isoformat()}
    bad = await http.post("/v1/delegations", json=backwards, headers=shop.auth("mgr-mia"))
    assert bad.status_code == 422 and "ends_at" in bad.json()["detail"]
    itself = {**body, "delegate_id": "mgr-mia"}
    bad = await http.post("/v1/delegations", json=itself, headers=shop.auth("mgr-mia"))
    assert bad.status_code == 422
    unknown = {**body, "delegate_id": "nobody"}
    bad = await http.post("/v1/delegations", json=unknown, headers=shop.auth("mgr-mia"))
    assert bad.status_code == 422

    ended = await http.post(f"/v1/delegations/{given['id']}/end", headers=shop.auth("mgr-mia"))
    assert ended.status_code == 200 and ended.json()["given"] == []
    me = (await http.get("/v1/me", headers=shop.auth("sup-sam"))).json()
    assert me["acting_for"] == []


# ---- 1,000 open cases ----------------------------------------------------------------------


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


@ON_BOTH_DATABASES
async def test_with_1000_open_cases_a_page_costs_a_bounded_number_of_statements(
    env: WorkflowEnvironment, shop: Shop, database_url: str, settings: Settings
) -> None:
    for n in range(600):
        seed_case(shop, f"refund-{n:04d}", eligible=("mgr-mia", "mgr-max"), age=timedelta(hours=n))
    for n in range(400):
        seed_case(
            shop,
            f"return-{n:04d}",
            case_type="return",
            status="awaiting_return",
            ra_number=f"RA-2026-{n:06d}",
        )
    app = create_app(env.client, database_url=database_url, settings=settings)
    db: Database = app.state.services.store.db
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://casework.test") as http:
        await work(http, shop, "mgr-mia")  # warm: the token's lookup is the same each time
        counts = []
        for staff_id, page, expected in (
            ("mgr-mia", 1, 600),
            ("mgr-mia", 12, 600),
            ("warehouse-wes", 1, 400),
            ("warehouse-wes", 8, 400),
        ):
            with statements(db) as seen:
                listed = await work(http, shop, staff_id, page=page, page_size=50)
            assert listed["total"] == expected
            assert len(listed["items"]) == 50
            counts.append(sum(1 for s in seen if s.lstrip().upper().startswith("SELECT")))
        # The token, the count, the page, its SLA clocks, its audit lines, delegations: the
        # same few statements on page 1 and page 12, never one per case.
        assert max(counts) <= 6, counts
        last = await work(http, shop, "mgr-mia", page=13, page_size=50)
        assert last["items"] == [] and last["total"] == 600
        too_big = await http.get("/v1/work?page_size=500", headers=shop.auth("mgr-mia"))
        assert too_big.status_code == 422


# ---- clocks, a case's context and finding cases (both databases) -------------------------------


@ON_BOTH_DATABASES
async def test_an_open_sla_clock_is_the_items_deadline_and_orders_the_list(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    seed_case(shop, "return-later", case_type="return", status="awaiting_return", ra_number="RA-1")
    seed_case(shop, "return-sooner", case_type="return", status="awaiting_return", ra_number="RA-2")
    now = datetime.now(UTC)
    with shop.db.transaction() as session:
        for case_id, due, stopped in (
            ("return-sooner", now + timedelta(days=2), None),
            ("return-later", now + timedelta(days=1), now),  # stopped: not a deadline any more
        ):
            session.add(
                SlaClock(
                    key=f"{case_id}:receipt:1",
                    case_id=case_id,
                    procedure="return",
                    clock="package_receipt",
                    owner="warehouse",
                    budget_seconds=3600,
                    started_at=now - timedelta(hours=1),
                    warn_at=due - timedelta(days=1),
                    due_at=due,
                    stopped_at=stopped,
                )
            )
    page = await work(http, shop, "warehouse-wes")
    assert ids(page) == ["return-sooner", "return-later"]
    first, second = page["items"]
    assert first["clock"]["name"] == "package receipt due"
    assert first["clock"]["label"].startswith("package receipt due in ")
    assert first["clock"]["warning"] is False  # warns a day before: not yet
    assert second["clock"]["name"] == "RA expires"  # its SLA clock stopped


@ON_BOTH_DATABASES
async def test_a_cases_context_and_finding_it_by_order_customer_or_ra(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    shop.add_order("ORD-4001", "450.00", lines=(("BISON-RIBEYE", 3, "150.00"),))
    seed_case(shop, "cancellation-1", case_type="cancellation", status="closed", amount=None)
    seed_case(
        shop,
        "return-9",
        case_type="return",
        status="awaiting_return",
        order_id="ORD-4001",
        ra_number="RA-2026-000009",
    )
    with shop.db.transaction() as session:
        row = session.get(Case, "return-9")
        assert row is not None
        row.request = {"linked_case_id": "cancellation-1", "photos": ["https://p.example/1.jpg"]}

    response = await http.get("/v1/work/cases/return-9", headers=shop.auth("agent-amy"))
    assert response.status_code == 200, response.text
    context = response.json()
    assert context["order"]["lines"] == [
        {
            "sku": "BISON-RIBEYE",
            "description": "BISON-RIBEYE",
            "quantity": 3,
            "unit_price": "150.00",
        }
    ]
    assert (context["order"]["total"], context["order"]["refundable"]) == ("450.00", "450.00")
    assert context["customer"] == {"id": "C-100", "name": "Ada Lovelace", "vip": False}
    assert [c["case_id"] for c in context["linked_cases"]] == ["cancellation-1"]
    assert [c["case_id"] for c in context["earlier_cases"]] == ["cancellation-1"]
    assert context["photos"] == ["https://p.example/1.jpg"]
    assert context["actions"] == []  # an agent does not receive packages: read-only
    assert context["temporal_url"].endswith("/workflows/return-9")
    warehouse = await http.get("/v1/work/cases/return-9", headers=shop.auth("warehouse-wes"))
    assert [a["name"] for a in warehouse.json()["actions"]] == ["package_received"]
    linked_back = await http.get("/v1/work/cases/cancellation-1", headers=shop.auth("agent-amy"))
    assert [c["case_id"] for c in linked_back.json()["linked_cases"]] == ["return-9"]
    missing = await http.get("/v1/work/cases/refund-none", headers=shop.auth("agent-amy"))
    assert missing.status_code == 404

    for term in ("ORD-4001", "ra-2026-000009", "return-9"):
        found = await http.get(f"/v1/work/find?q={term}", headers=shop.auth("qa-quinn"))
        assert [c["case_id"] for c in found.json()["items"]] == ["return-9"], term
    both = await http.get("/v1/work/find?q=C-100", headers=shop.auth("qa-quinn"))
    assert sorted(c["case_id"] for c in both.json()["items"]) == ["cancellation-1", "return-9"]


def test_business_time_skips_nights_and_weekends() -> None:
    calendar = Settings().calendar  # 08:00-20:00 New York, Monday to Friday
    friday_6pm = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)  # 18:00 EST
    monday_10am = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # 10:00 EST
    assert calendar.business_time_between(friday_6pm, monday_10am) == timedelta(hours=4)
    label = clock(calendar, "escalates", monday_10am, friday_6pm)
    assert (label.label, label.local) == (
        "escalates in 4 business hours",
        "Mon 30 Nov 2026, 10:00 EST",
    )
    assert not label.warning
    assert clock(calendar, "escalates", monday_10am, friday_6pm, warn_at=friday_6pm).warning
    late = clock(calendar, "expires", friday_6pm, monday_10am)
    assert late.overdue and late.label == "expires: overdue by 4 business hours"
    assert not clock(calendar, "expires", friday_6pm, monday_10am, warn_at=friday_6pm).warning


async def test_a_billing_dispute_waits_for_an_agent_then_for_accounting(
    http: httpx.AsyncClient, cases: Cases, shop: Shop
) -> None:
    handle = await cases.start(start_case, dispute(disputed_order(shop, rush_fee=None)))
    await recorded_status(shop, handle.id, CaseStatus.REVIEWING)
    agent = await work(http, shop, "agent-amy")
    assert ids(agent) == [handle.id]
    assert [a["name"] for a in agent["items"][0]["actions"]] == [
        "dispute_resolved",
        "dispute_escalated",
    ]
    supervisor = await work(http, shop, "sup-sam")
    assert [a["name"] for a in supervisor["items"][0]["actions"]] == ["dispute_resolved"]
    assert ids(await work(http, shop, "acct-ana")) == []

    sent = await http.post(
        f"/v1/cases/{handle.id}/events",
        json={"type": "dispute_escalated", "event_id": "esc-1", "reason": "a ledger question"},
        headers=shop.auth("agent-amy"),
    )
    assert sent.status_code == 202, sent.text
    await recorded_status(shop, handle.id, CaseStatus.WITH_ACCOUNTING)
    accounting = await work(http, shop, "acct-ana")
    assert [a["name"] for a in accounting["items"][0]["actions"]] == ["accounting_answer"]
    assert ids(await work(http, shop, "agent-amy")) == []

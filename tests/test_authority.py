"""Every decision and every event is attributable to an authenticated person.

- Events name the roles that may send them, and the actor recorded is the caller (a relaying
  service names the person it relays for in ``on_behalf_of``, recorded as such).
- A decision by signal carries the approver's single-use decision code from the approval
  email, checked by an activity; without it the signal is recorded as refused.
- The directory is consulted as of the decision's instant, by signal and by update alike.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.cases import CaseActivities
from activities.staff import StaffDirectory
from infra.db import AuditRecord, DecisionCode, Staff
from settings import Settings
from starter import DecisionRefused, case_state, decide
from tests.approval_helpers import awaiting_approval, code_for
from tests.case_helpers import audit, sleep_until, until, wait_for_status
from tests.cli_helpers import cli
from tests.conftest import Cases, Shop
from tests.refund_helpers import payments, refund
from tests.return_helpers import awaiting_return, delivered_order, return_of, start
from worker import build_activities, build_worker
from workflows.models import (
    ApprovalStatus,
    CaseStatus,
    Decision,
    DecisionCheck,
    DecisionKind,
    Outcome,
)

ON_BOTH_DATABASES = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


def signal(approver: str, code: str | None = None, verdict: str = "approve") -> dict[str, Any]:
    payload: dict[str, Any] = {
        "approver_id": approver,
        "decision": verdict,
        "event_id": f"ui-{uuid.uuid4().hex[:8]}",
    }
    if code is not None:
        payload["code"] = code
    return payload


async def audited(shop: Shop, case_id: str, event: str) -> list[AuditRecord]:
    """The case's ``event`` lines, once written (the status moves before its line lands)."""

    async def probe() -> list[AuditRecord] | None:
        return audit(shop, case_id, event) or None

    rows: list[AuditRecord] = await until(probe, f"an audit line {event}")
    return rows


async def refused_signals(shop: Shop, case_id: str, count: int) -> list[AuditRecord]:
    async def probe() -> list[AuditRecord] | None:
        rows = audit(shop, case_id, "decision_ignored")
        return rows if len(rows) >= count else None

    rows: list[AuditRecord] = await until(probe, f"{count} refused decision signals")
    return rows


# ---- events: who may send them, and who is recorded -------------------------------------------


async def test_only_the_warehouse_reports_packages_and_inspections_and_is_recorded_as_itself(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop, http: httpx.AsyncClient
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop)))
    ra_number = await awaiting_return(client, handle)
    path = f"/v1/cases/{handle.id}/events"
    package = {"type": "package_received", "event_id": "scan-1", "ra_number": ra_number}

    by_backend = await http.post(path, json=package, headers=shop.auth("backend"))
    assert by_backend.status_code == 403, by_backend.text
    assert by_backend.json()["error"] == "forbidden"
    assert "warehouse" in by_backend.json()["detail"]
    named = await http.post(
        path, json={**package, "received_by": "mgr-mia"}, headers=shop.auth("warehouse-wes")
    )
    assert named.status_code == 422, named.text
    assert named.json()["fields"][0]["field"] == "received_by"
    assert (await case_state(client, handle.id)).status is CaseStatus.AWAITING_RETURN

    received = await http.post(path, json=package, headers=shop.auth("warehouse-wes"))
    assert received.status_code == 202, received.text
    await wait_for_status(client, handle.id, CaseStatus.INSPECTING)

    inspection = {"type": "inspection_completed", "event_id": "insp-1", "passed": True}
    for intruder in ("backend", "agent-amy", "mgr-mia"):
        forbidden = await http.post(
            path, json={**inspection, "event_id": f"insp-{intruder}"}, headers=shop.auth(intruder)
        )
        assert forbidden.status_code == 403, forbidden.text
    forged = await http.post(
        path, json={**inspection, "inspected_by": "warehouse-wes"}, headers=shop.auth("backend")
    )
    assert forged.status_code == 403, forged.text
    assert (await case_state(client, handle.id)).status is CaseStatus.INSPECTING

    inspected = await http.post(path, json=inspection, headers=shop.auth("warehouse-wes"))
    assert inspected.status_code == 202, inspected.text
    outcome: Outcome = await handle.result()

    assert outcome.status is CaseStatus.COMPLETED
    actors = {r.event: r.actor for r in audit(shop, handle.id)}
    assert actors["package_received"] == "warehouse-wes"
    assert actors["inspection_passed"] == "warehouse-wes"


async def test_a_relaying_backend_is_the_actor_and_the_customer_is_recorded_as_on_behalf_of(
    client: Client, cases: Cases, shop: Shop, http: httpx.AsyncClient
) -> None:
    handle = await cases.refund(refund("750.00"))
    await awaiting_approval(client, handle)
    path = f"/v1/cases/{handle.id}/events"
    choice = {"type": "store_credit_chosen", "event_id": "credit-1", "on_behalf_of": "C-100"}

    by_warehouse = await http.post(path, json=choice, headers=shop.auth("warehouse-wes"))
    assert by_warehouse.status_code == 403, by_warehouse.text
    forged = await http.post(
        path, json={**choice, "chosen_by": "agent-amy"}, headers=shop.auth("backend")
    )
    assert forged.status_code == 422, forged.text

    sent = await http.post(path, json=choice, headers=shop.auth("backend"))
    assert sent.status_code == 202, sent.text

    [chosen] = await until(lambda: audit(shop, handle.id, "store_credit_chosen"), "the choice")
    assert (chosen.actor, chosen.detail) == ("backend", {"on_behalf_of": "C-100"})


# ---- decisions by signal carry the approver's code ---------------------------------------------


async def test_each_approver_is_emailed_their_own_code_and_only_its_hash_is_stored(
    client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("750.00"))
    await awaiting_approval(client, handle)
    codes = {who: await code_for(shop, who) for who in ("sup-sam", "mgr-mia", "mgr-max")}

    assert len(set(codes.values())) == 3
    with shop.db.transaction() as session:
        rows = session.scalars(select(DecisionCode).where(DecisionCode.case_id == handle.id)).all()
        stored = {(r.staff_id, r.code_hash) for r in rows}
    assert {who for who, _ in stored} == set(codes)
    for code in codes.values():
        assert all(code not in code_hash for _, code_hash in stored)


async def test_a_decision_signal_without_the_approvers_own_code_is_refused_and_the_case_waits(
    client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("750.00"))
    await awaiting_approval(client, handle)
    sams_code = await code_for(shop, "sup-sam")
    mias_code = await code_for(shop, "mgr-mia")

    await handle.signal("decision", signal("mgr-mia"))
    await handle.signal("decision", signal("mgr-mia", "AAAA-BBBB-CCCC"))
    await handle.signal("decision", signal("mgr-mia", sams_code))

    refused = await refused_signals(shop, handle.id, 3)
    # Each signal is verified by its own activity, so the refusals may land in any order.
    assert sorted((r.actor, r.detail["reason"]) for r in refused) == [
        ("mgr-mia", "a decision by signal needs the decision code from the approval email"),
        ("mgr-mia", "the decision code is not valid for mgr-mia on this request"),
        ("mgr-mia", "the decision code is not valid for mgr-mia on this request"),
    ]
    state = await case_state(client, handle.id)
    assert state.approval is not None and state.approval.status is ApprovalStatus.PENDING
    assert payments(shop) == []

    await handle.signal("decision", signal("mgr-mia", mias_code.lower()))
    assert (await handle.result()).status is CaseStatus.COMPLETED
    [approved] = audit(shop, handle.id, "approval_approved")
    assert approved.actor == "mgr-mia"


async def test_a_code_is_bound_to_its_case(client: Client, cases: Cases, shop: Shop) -> None:
    first = await cases.refund(refund("750.00"))
    await awaiting_approval(client, first)
    code = await code_for(shop, "mgr-mia")
    shop.add_order("ORD-1003", "800.00")
    second = await cases.refund(refund("750.00", order_id="ORD-1003"))
    await awaiting_approval(client, second)

    await second.signal("decision", signal("mgr-mia", code))

    [refused] = await refused_signals(shop, second.id, 1)
    assert refused.detail["reason"] == "the decision code is not valid for mgr-mia on this request"
    state = await case_state(client, second.id)
    assert state.approval is not None and state.approval.status is ApprovalStatus.PENDING


@ON_BOTH_DATABASES
async def test_a_decision_code_is_used_once_even_when_presented_twice_at_the_same_instant(
    client: Client, cases: Cases, shop: Shop, activities: CaseActivities
) -> None:
    handle = await cases.refund(refund("750.00"))
    approval = await awaiting_approval(client, handle)
    code = await code_for(shop, "mgr-mia")
    state = await case_state(client, handle.id)
    rules = activities._stored_rules(handle.id)
    assert rules is not None

    def check(event_id: str) -> DecisionCheck:
        return DecisionCheck(
            case_id=handle.id,
            approver_id="mgr-mia",
            event_id=event_id,
            code=code,
            by_signal=True,
            at=approval.requested_at + timedelta(minutes=5),
            approval=approval,
            rules=rules,
        )

    barrier = threading.Barrier(6)
    verdicts: dict[str, str] = {}

    def present(event_id: str) -> None:
        barrier.wait()
        verdicts[event_id] = activities.verify_decision(check(event_id)).refusal

    await asyncio.gather(*(asyncio.to_thread(present, f"ui-{n}") for n in range(6)))

    assert sorted(verdicts.values()).count("") == 1
    # The same event presented again (an activity retry) is still the one that used it.
    [winner] = [event for event, refusal in verdicts.items() if refusal == ""]
    assert activities.verify_decision(check(winner)).refusal == ""
    assert activities.verify_decision(check("ui-late")).refusal != ""
    assert state.status is CaseStatus.AWAITING_APPROVAL


async def test_signal_decisions_can_be_turned_off(
    env: WorkflowEnvironment, shop: Shop, settings: Settings
) -> None:
    off = settings.model_copy(
        update={"decision_signals": False, "task_queue": f"{settings.task_queue}-off"}
    )
    async with build_worker(env.client, activities=build_activities(shop.db, off), settings=off):
        tracker = Cases(env.client, off.task_queue)
        try:
            handle = await tracker.refund(refund("750.00"))
            await awaiting_approval(env.client, handle)
            [body] = [
                b for b in _bodies_to(shop, "mgr-mia") if "Approval" in b or "authorization" in b
            ]
            assert "decision code" not in body

            await handle.signal("decision", signal("mgr-mia", "AAAA-BBBB-CCCC"))

            [refused] = await refused_signals(shop, handle.id, 1)
            assert refused.detail["reason"] == "decisions by signal are turned off"
            approved = await decide(
                env.client,
                handle.id,
                Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE),
            )
            assert approved.status is ApprovalStatus.APPROVED
            assert (await handle.result()).status is CaseStatus.COMPLETED
        finally:
            await tracker.close_all()


def _bodies_to(shop: Shop, staff_id: str) -> list[str]:
    from infra.db import OutboxEmail

    with shop.db.transaction() as session:
        return list(
            session.scalars(
                select(OutboxEmail.body).where(
                    OutboxEmail.to_address == f"{staff_id}@exoticmeats.com"
                )
            )
        )


# ---- the directory as of the decision's instant -------------------------------------------------


async def test_a_delegate_whose_delegation_ended_after_the_reminder_is_refused(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    directory = StaffDirectory(shop.db)
    directory.add(
        staff_id="agent-dee",
        name="Dee",
        email="agent-dee@exoticmeats.com",
        role="agent",
        approval_limit=Decimal("800.00"),
    )
    now = await env.get_current_time()
    handle = await cases.refund(refund("750.00"))
    approval = await awaiting_approval(client, handle)
    ends = approval.remind_at + timedelta(minutes=30)
    directory.delegate("mgr-max", "agent-dee", now - timedelta(days=1), ends)
    await sleep_until(env, approval.remind_at + timedelta(minutes=1))
    code = await code_for(shop, "agent-dee", "approval_reminder")
    reminded = await case_state(client, handle.id)
    assert reminded.approval is not None and "agent-dee" in reminded.approval.eligible_approvers

    await sleep_until(env, ends + timedelta(minutes=1))
    with pytest.raises(DecisionRefused) as refused:
        await decide(
            client, handle.id, Decision(approver_id="agent-dee", decision=DecisionKind.APPROVE)
        )
    await handle.signal("decision", signal("agent-dee", code))

    assert refused.value.kind == "NotAuthorized"
    assert refused.value.message == "agent-dee has role 'agent', which may not approve"
    [ignored] = await refused_signals(shop, handle.id, 1)
    assert ignored.detail["reason"] == "agent-dee has role 'agent', which may not approve"
    state = await case_state(client, handle.id)
    assert state.approval is not None and state.approval.status is ApprovalStatus.PENDING
    assert payments(shop) == []


async def test_a_manager_deactivated_while_the_case_waits_is_refused(
    client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("750.00"))
    await awaiting_approval(client, handle)
    code = await code_for(shop, "mgr-max")
    with shop.db.transaction() as session:
        staff = session.get(Staff, "mgr-max")
        assert staff is not None
        staff.active = False

    with pytest.raises(DecisionRefused) as refused:
        await decide(
            client, handle.id, Decision(approver_id="mgr-max", decision=DecisionKind.APPROVE)
        )
    await handle.signal("decision", signal("mgr-max", code))

    assert refused.value.kind == "NotAuthorized"
    assert refused.value.message == "mgr-max is no longer active in the staff directory"
    [ignored] = await refused_signals(shop, handle.id, 1)
    assert ignored.detail["reason"] == "mgr-max is no longer active in the staff directory"
    state = await case_state(client, handle.id)
    assert state.approval is not None and state.approval.status is ApprovalStatus.PENDING
    assert payments(shop) == []


# ---- the command line acts as a configured identity -------------------------------------------


def credentials(tmp_path: Path, shop: Shop, *staff_ids: str) -> dict[str, str]:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({who: shop.tokens[who] for who in staff_ids}))
    path.chmod(0o600)
    return {"CASEWORK_CREDENTIALS": str(path)}


async def test_the_cli_decides_as_the_holder_of_a_configured_token_never_a_named_person(
    env: WorkflowEnvironment,
    client: Client,
    cases: Cases,
    shop: Shop,
    settings: Settings,
    tmp_path: Path,
) -> None:
    handle = await cases.refund(refund("750.00"))
    await awaiting_approval(client, handle)
    only_amy = credentials(tmp_path, shop, "agent-amy")

    named = await cli(
        "decide", handle.id, "approve", "--as", "mgr-mia", env=env, settings=settings,
        extra_env=only_amy,
    )  # fmt: skip
    assert named.returncode == 2
    assert "no credentials for mgr-mia" in named.stderr
    as_amy = await cli(
        "decide", handle.id, "approve", env=env, settings=settings, extra_env=only_amy
    )
    assert as_amy.returncode == 2
    assert "role 'agent' may not decide approvals" in as_amy.stderr
    assert (await case_state(client, handle.id)).status is CaseStatus.AWAITING_APPROVAL

    approved = await cli(
        "decide", handle.id, "approve", env=env, settings=settings,
        extra_env={"CASEWORK_TOKEN": shop.tokens["mgr-mia"]},
    )  # fmt: skip
    assert approved.returncode == 0, approved.stderr
    assert "approved by mgr-mia" in approved.stdout
    await handle.result()


async def test_the_cli_sends_events_under_the_same_role_rules_as_the_api(
    env: WorkflowEnvironment,
    client: Client,
    cases: Cases,
    shop: Shop,
    settings: Settings,
    tmp_path: Path,
) -> None:
    handle = await start(cases, return_of(await delivered_order(env, shop)))
    ra_number = await awaiting_return(client, handle)
    data = json.dumps({"ra_number": ra_number})
    both = credentials(tmp_path, shop, "agent-amy", "warehouse-wes")

    forbidden = await cli(
        "event", handle.id, "package_received", "--data", data, "--as", "agent-amy",
        env=env, settings=settings, extra_env=both,
    )  # fmt: skip
    assert forbidden.returncode == 2
    assert "forbidden" in forbidden.stderr and "warehouse" in forbidden.stderr

    received = await cli(
        "event", handle.id, "package_received", "--data", data, "--as", "warehouse-wes",
        env=env, settings=settings, extra_env=both,
    )  # fmt: skip
    assert received.returncode == 0, received.stderr
    await wait_for_status(client, handle.id, CaseStatus.INSPECTING)
    [row] = await audited(shop, handle.id, "package_received")
    assert row.actor == "warehouse-wes"

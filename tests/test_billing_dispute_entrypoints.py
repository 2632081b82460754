"""Opening billing disputes and settling them over HTTP, CloudEvents and the CLI.

The routes derive from the registry entry; these specifications pin the dispute's own
contract: bad input refused with 422 and nothing started, roles checked (Accounting answers,
agents do not), the actor the authenticated caller, refusals 409 in the case's words, and a
signal that would move money ignored.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from starter import case_exists
from starter.cli import build_parser
from tests.billing_dispute_helpers import (
    dispute_state,
    disputed_order,
    ended,
    invoiced,
    notes,
    refunds,
    status_of,
)
from tests.case_helpers import audit, eventually
from tests.conftest import Cases, Shop
from workflows.models import CaseStatus


def body(order_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "request_id": f"req-{uuid.uuid4().hex[:10]}",
        "order_id": order_id,
        "customer_id": "C-100",
        "description": "the rush fee was charged although the order came late",
        "requested_by": "agent-amy",
        **fields,
    }


async def opened(http: httpx.AsyncClient, cases: Cases, client: Client, shop: Shop) -> str:
    """A dispute opened over HTTP by the backend; its case id, once the invoice is out."""
    response = await http.post(
        "/v1/billing-disputes",
        json=body(disputed_order(shop), disputed_amount="55.00"),
        headers=shop.auth("backend"),
    )
    assert response.status_code == 202, response.text
    case_id = str(response.json()["case_id"])
    assert case_id.startswith("billing-dispute-")
    cases.handles.append(client.get_workflow_handle(case_id))
    await dispute_state(client, case_id, invoiced)
    return case_id


async def send(
    http: httpx.AsyncClient, shop: Shop, case_id: str, staff: str, **event: Any
) -> httpx.Response:
    return await http.post(f"/v1/cases/{case_id}/events", json=event, headers=shop.auth(staff))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"description": ""}, "description"),
        ({"description": "x" * 2001}, "description"),
        ({"disputed_amount": "-5.00"}, "disputed_amount"),
        ({"refund": "10.00"}, "refund"),
    ],
    ids=["no-description", "description-too-long", "negative-amount", "unknown-field"],
)
async def test_bad_dispute_requests_are_422_and_start_nothing(
    http: httpx.AsyncClient, client: Client, shop: Shop, fields: dict[str, Any], field: str
) -> None:
    request = body("ORD-1001", **fields)
    response = await http.post("/v1/billing-disputes", json=request, headers=shop.auth("backend"))

    assert response.status_code == 422, response.text
    assert field in response.text
    assert not await case_exists(client, f"billing-dispute-{request['request_id']}")


async def test_a_billing_dispute_opened_cloud_event_opens_a_case(
    http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    event = {
        "specversion": "1.0",
        "id": f"evt-{uuid.uuid4().hex[:10]}",
        "source": "/shop/billing",
        "type": "billing.dispute_opened",
        "data": body(disputed_order(shop)),
    }
    response = await http.post(
        "/v1/events",
        content=json.dumps(event),
        headers={"Content-Type": "application/cloudevents+json", **shop.auth("backend")},
    )

    assert response.status_code == 202, response.text
    case_id = response.json()["case_id"]
    assert case_id.startswith("billing-dispute-")
    cases.handles.append(client.get_workflow_handle(case_id))
    state = await dispute_state(client, case_id, invoiced)
    assert state.description.startswith("the rush fee was charged")
    assert state.disputed_amount is None


def test_the_cli_opens_a_billing_dispute_with_its_fields() -> None:
    args = build_parser().parse_args(
        [
            "billing-dispute",
            "--request-id",
            "r-1",
            "--order-id",
            "ORD-1001",
            "--customer-id",
            "C-100",
            "--description",
            "charged twice",
            "--disputed-amount",
            "55.00",
            "--requested-by",
            "agent-amy",
        ]
    )

    assert args.description == "charged twice"
    assert Decimal(str(args.disputed_amount)) == Decimal("55.00")


async def test_an_escalation_is_answered_by_accounting_only_and_recorded_as_the_caller(
    http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    case_id = await opened(http, cases, client, shop)
    escalated = await send(
        http, shop, case_id, "agent-amy", type="dispute_escalated", event_id="esc-1",
        reason="two charges on the customer's statement",
    )  # fmt: skip
    assert escalated.status_code == 202, escalated.text
    await status_of(client, case_id, CaseStatus.WITH_ACCOUNTING)
    reply = {
        "type": "accounting_answer",
        "event_id": "acc-1",
        "outcome": "refund",
        "amount": "55.00",
        "explanation": "the rush fee is refunded: the order arrived late",
    }

    by_agent = await send(http, shop, case_id, "agent-amy", **reply)
    named = await send(http, shop, case_id, "acct-ana", **reply, resolved_by="mgr-mia")
    taken = await send(http, shop, case_id, "acct-ana", **reply)
    again = await send(http, shop, case_id, "acct-ana", **reply)

    assert by_agent.status_code == 403
    assert by_agent.json()["error"] == "forbidden"
    assert named.status_code == 422  # the actor is the caller, never the body's word
    assert taken.status_code == 202, taken.text
    assert again.status_code == 202  # the same event id again: answered as before
    outcome = await ended(client, case_id)
    assert outcome.status is CaseStatus.RESOLVED
    [paid] = refunds(shop, case_id)
    assert paid.amount == Decimal("55.00")
    [line] = [a for a in audit(shop, case_id) if a.event == "accounting_answered"]
    assert line.actor == "acct-ana"
    [escalation] = [a for a in audit(shop, case_id) if a.event == "dispute_escalated"]
    assert escalation.actor == "agent-amy"


async def test_a_resolution_the_case_cannot_take_is_409_in_its_own_words(
    http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    case_id = await opened(http, cases, client, shop)

    too_much = await send(
        http, shop, case_id, "agent-amy", type="dispute_resolved", event_id="r-1",
        outcome="credit", amount="200.01", explanation="goodwill",
    )  # fmt: skip
    no_amount = await send(
        http, shop, case_id, "agent-amy", type="dispute_resolved", event_id="r-2",
        outcome="refund", explanation="goodwill",
    )  # fmt: skip
    early_answer = await send(
        http, shop, case_id, "acct-ana", type="accounting_answer", event_id="a-1",
        outcome="no_change", explanation="the charges are right",
    )  # fmt: skip

    assert too_much.status_code == 409
    assert too_much.json()["error"] == "over_refundable"
    assert no_amount.status_code == 422
    assert early_answer.status_code == 409
    assert early_answer.json()["error"] == "not_with_accounting"
    state = await status_of(client, case_id, CaseStatus.REVIEWING)
    assert state.resolution is None and not state.escalated


async def test_a_signal_may_settle_with_no_change_but_never_move_money(
    client: Client, cases: Cases, shop: Shop, http: httpx.AsyncClient
) -> None:
    case_id = await opened(http, cases, client, shop)
    handle = client.get_workflow_handle(case_id)

    await handle.signal(
        "dispute_resolved",
        {"event_id": "sig-1", "outcome": "refund", "amount": "10.00", "explanation": "ui"},
    )
    [ignored] = await eventually(
        lambda: [a for a in audit(shop, case_id) if a.event == "dispute_resolved_ignored"]
    )
    assert "moves money" in ignored.detail["reason"]
    await handle.signal(
        "dispute_resolved",
        {"event_id": "sig-2", "outcome": "no_change", "explanation": "the charges are right"},
    )

    outcome = await ended(client, case_id)
    assert outcome.status is CaseStatus.RESOLVED
    assert refunds(shop, case_id) == []
    [note] = notes(shop, (await status_of(client, case_id, CaseStatus.RESOLVED)).order_id)
    assert "no change" in note.text

"""The command line, run as operators run it: ``python -m starter`` in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.orders import LocalOrderSystem
from activities.staff import hash_token
from infra.codec import new_key
from infra.db import Case, OutboxEmail, Staff
from settings import Settings
from starter import case_state, start_refund
from tests.cli_helpers import cli
from tests.conftest import Cases, Shop
from workflows.models import CaseStatus, RefundRequest


async def test_bad_amount_is_refused_with_the_field_named(settings: Settings) -> None:
    result = await cli(
        "refund", "--order", "ORD-1001", "--customer", "C-100", "--amount", "0",
        "--reason", "thawed", "--requested-by", "agent-amy",
        settings=settings,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "error: amount: Input should be greater than 0"


async def test_unreachable_temporal_is_a_clear_error(settings: Settings) -> None:
    result = await cli("status", "refund-x", settings=settings)
    assert result.returncode == 3
    assert "cannot reach Temporal at 127.0.0.1:1" in result.stderr


async def test_staff_add_prints_the_token_once_and_stores_its_hash(
    settings: Settings, shop: Shop
) -> None:
    result = await cli(
        "staff", "add", "mgr-new", "--name", "New Manager", "--email", "new@exoticmeats.com",
        "--role", "manager", "--limit", "2500.00",
        settings=settings,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    with shop.db.transaction() as session:
        staff = session.scalars(select(Staff).where(Staff.id == "mgr-new")).one()
    assert staff.token_hash == hash_token(token)
    assert token not in (staff.token_hash or "")
    assert str(staff.approval_limit) == "2500.00"


async def test_duplicate_staff_id_is_refused(settings: Settings, shop: Shop) -> None:
    result = await cli(
        "staff", "add", "mgr-mia", "--name", "Mia", "--email", "m@exoticmeats.com",
        "--role", "manager",
        settings=settings,
    )  # fmt: skip
    assert result.returncode == 2
    assert "already exists" in result.stderr


async def test_refund_approved_from_the_command_line(
    env: WorkflowEnvironment,
    client: Client,
    cases: Cases,
    settings: Settings,
    shop: Shop,
    tmp_path: Path,
) -> None:
    request_id = uuid.uuid4().hex[:10]
    started = await cli(
        "refund", "--order", "ORD-1001", "--customer", "C-100", "--amount", "750.00",
        "--reason", "thawed", "--requested-by", "agent-amy", "--request-id", request_id,
        env=env, settings=settings,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    case_id = f"refund-{request_id}"
    handle = client.get_workflow_handle(case_id)
    cases.handles.append(handle)
    for _ in range(100):
        if (await case_state(client, case_id)).status is CaseStatus.AWAITING_APPROVAL:
            break
        await asyncio.sleep(0.05)

    pending = await cli("pending", "--as", "sup-sam", settings=settings)
    assert case_id in pending.stdout

    tokens = tmp_path / "credentials.json"
    tokens.write_text(json.dumps({who: shop.tokens[who] for who in ("sup-low", "sup-sam")}))
    mine = {"CASEWORK_CREDENTIALS": str(tokens)}
    refused = await cli(
        "decide", case_id, "approve", "--as", "sup-low", env=env, settings=settings, extra_env=mine
    )
    assert refused.returncode == 2
    assert "approval limit 600.00 is below 750.00" in refused.stderr

    approved = await cli(
        "decide", case_id, "approve", "--as", "sup-sam", env=env, settings=settings, extra_env=mine
    )
    assert approved.returncode == 0, approved.stderr
    assert "approved by sup-sam" in approved.stdout
    await handle.result()
    status = await cli("status", case_id, env=env, settings=settings)
    assert f"{case_id}  refund  completed" in status.stdout


# ---- payload encryption: the CLI reads cases with the keys of the processes ----------------


async def test_status_reads_an_encrypted_case_and_refuses_without_its_key(
    env: WorkflowEnvironment, client: Client, cases: Cases, settings: Settings, tmp_path: Path
) -> None:
    handle = await cases.refund(
        RefundRequest(
            request_id=uuid.uuid4().hex[:10], order_id="ORD-1002", customer_id="C-100",
            amount=Decimal("20.00"), reason="late", requested_by="agent-amy",
        )
    )  # fmt: skip
    await handle.result()

    status = await cli("status", handle.id, env=env, settings=settings)
    no_key = await cli(
        "status", handle.id, env=env, settings=settings,
        extra_env={"CODEC_KEYS": "", "VAR_DIR": str(tmp_path)},
    )  # fmt: skip
    other_key = await cli(
        "status", handle.id, env=env, settings=settings,
        extra_env={"CODEC_KEYS": f"other:{new_key()}", "VAR_DIR": str(tmp_path)},
    )  # fmt: skip

    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0] == f"{handle.id}  refund  completed"
    assert no_key.returncode == 3
    assert no_key.stderr.startswith("error: no payload encryption key: set CODEC_KEYS")
    assert other_key.returncode == 3
    assert "encrypted under key 'test-1', which this process does not hold" in other_key.stderr


# ---- exit codes: the same answers as the HTTP API ------------------------------------------


async def test_status_of_an_unknown_case_exits_4_not_found(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    result = await cli("status", "refund-nope", env=env, settings=settings)
    assert (result.returncode, result.stderr.strip()) == (4, "error: no case refund-nope")


async def test_messages_to_an_unknown_case_exit_4(
    env: WorkflowEnvironment, settings: Settings, shop: Shop
) -> None:
    decided = await cli(
        "decide", "refund-nope", "approve",
        env=env, settings=settings, extra_env={"CASEWORK_TOKEN": shop.tokens["mgr-mia"]},
    )  # fmt: skip
    event = await cli(
        "event", "refund-nope", "store_credit_chosen",
        env=env, settings=settings, extra_env={"CASEWORK_TOKEN": shop.tokens["agent-amy"]},
    )  # fmt: skip
    assert (decided.returncode, decided.stderr.strip()) == (4, "error: no case refund-nope")
    assert (event.returncode, event.stderr.strip()) == (4, "error: no case refund-nope")


async def test_messages_to_a_closed_case_exit_5_case_closed(
    env: WorkflowEnvironment, client: Client, cases: Cases, settings: Settings, shop: Shop
) -> None:
    handle = await cases.refund(small_refund())
    await handle.result()
    closed = f"error: case {handle.id} is closed and takes no more messages"
    decided = await cli(
        "decide", handle.id, "approve",
        env=env, settings=settings, extra_env={"CASEWORK_TOKEN": shop.tokens["mgr-mia"]},
    )  # fmt: skip
    event = await cli(
        "event", handle.id, "store_credit_chosen",
        env=env, settings=settings, extra_env={"CASEWORK_TOKEN": shop.tokens["agent-amy"]},
    )  # fmt: skip
    assert (decided.returncode, decided.stderr.strip()) == (5, closed)
    assert (event.returncode, event.stderr.strip()) == (5, closed)


async def test_help_documents_every_exit_status(settings: Settings) -> None:
    result = await cli("--help", settings=settings)
    assert result.returncode == 0
    for line in (
        "0  done",
        "2  bad input, or refused by the case",
        "3  service unreachable",
        "4  no such case",
        "5  the case is closed",
        "6  the case did not answer",
    ):
        assert line in result.stdout


async def test_output_cut_short_by_a_pipe_exits_quietly(settings: Settings, shop: Shop) -> None:
    now = datetime.now(UTC)
    with shop.db.transaction() as session:
        session.add(
            Case(
                id="refund-piped", type="refund", status="completed", step="done",
                order_id="ORD-1001", customer_id="C-100", amount=Decimal("1.00"),
                requested_by="agent-amy", request={}, rules={}, opened_at=now, updated_at=now,
            )
        )  # fmt: skip
        session.flush()
        for n in range(2000):
            session.add(
                OutboxEmail(
                    dedup_key=f"piped-{n}", case_id="refund-piped", template="t",
                    to_address="ada@example.com", subject=f"mail {n} " + "x" * 100, body="",
                    created_at=now,
                )
            )  # fmt: skip
    command = f"{sys.executable} -m starter outbox --limit 2000 | head -1; exit ${{PIPESTATUS[0]}}"
    result = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-c", command],
        env={**os.environ, "DATABASE_URL": settings.database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.count("\n") == 1
    assert (result.returncode, result.stderr) == (0, "")


# ---- a repeated start says what it found -----------------------------------------------------


def small_refund(request_id: str | None = None) -> RefundRequest:
    return RefundRequest(
        request_id=request_id or uuid.uuid4().hex[:10],
        order_id="ORD-1001",
        customer_id="C-100",
        amount=Decimal("20.00"),
        reason="thawed",
        requested_by="agent-amy",
    )


async def test_repeating_a_finished_start_says_it_already_exists_with_its_status(
    env: WorkflowEnvironment, client: Client, cases: Cases, settings: Settings, shop: Shop
) -> None:
    request = small_refund()
    handle = await cases.refund(request)
    await handle.result()
    again = await cli(
        "refund", "--order", "ORD-1001", "--customer", "C-100", "--amount", "20.00",
        "--reason", "thawed", "--requested-by", "agent-amy", "--request-id", request.request_id,
        env=env, settings=settings,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"{handle.id}  already exists (status completed)"


async def test_started_case_tells_a_new_case_from_an_existing_one(
    client: Client, cases: Cases, settings: Settings, shop: Shop
) -> None:
    request = small_refund()
    first = await start_refund(client, request, task_queue=settings.task_queue)
    cases.handles.append(first.handle)
    running = await start_refund(client, request, task_queue=settings.task_queue)
    await first.handle.result()
    closed = await start_refund(client, request, task_queue=settings.task_queue)
    assert (first.existing, first.status) == (False, "received")
    assert running.existing and running.run_id == first.run_id
    assert (closed.existing, closed.status) == (True, "completed")


# ---- demo data: orders on demand -------------------------------------------------------------


async def test_orders_add_creates_an_order_the_order_system_sees(
    settings: Settings, shop: Shop
) -> None:
    result = await cli(
        "orders", "add", "ORD-7001", "--customer", "C-200",
        "--line", "BISON-RIBEYE=2@150.00", "--line", "ELK-BURGER=1@60.00",
        "--delivered-days-ago", "2",
        settings=settings,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "added ORD-7001 for C-200: 360.00, delivered 2 days ago"
    order = LocalOrderSystem(shop.db).get_order("ORD-7001")
    assert order is not None
    assert (order.customer_id, order.status, order.total, order.refundable) == (
        "C-200",
        "delivered",
        Decimal("360.00"),
        Decimal("360.00"),
    )
    assert [(line.sku, line.quantity, line.unit_price) for line in order.lines] == [
        ("BISON-RIBEYE", 2, Decimal("150.00")),
        ("ELK-BURGER", 1, Decimal("60.00")),
    ]


async def test_orders_add_refuses_what_the_shop_would_not_have(
    settings: Settings, shop: Shop
) -> None:
    taken = await cli("orders", "add", "ORD-1001", "--customer", "C-100", "--total", "5.00",
                      settings=settings)  # fmt: skip
    stranger = await cli("orders", "add", "ORD-7002", "--customer", "C-999", "--total", "5.00",
                         settings=settings)  # fmt: skip
    nothing = await cli("orders", "add", "ORD-7003", "--customer", "C-100", settings=settings)
    assert (taken.returncode, taken.stderr.strip()) == (2, "error: order ORD-1001 already exists")
    assert (stranger.returncode, stranger.stderr.strip()) == (2, "error: no customer C-999")
    assert nothing.returncode == 2 and "--total or --line" in nothing.stderr
    assert LocalOrderSystem(shop.db).get_order("ORD-7002") is None


async def test_orders_list_shows_what_is_left_to_refund(settings: Settings, shop: Shop) -> None:
    result = await cli("orders", "list", settings=settings)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(
        line.split()[:5] == ["ORD-1001", "C-100", "delivered", "1200.00", "1200.00"]
        for line in lines
    ), result.stdout

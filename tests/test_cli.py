"""The command line, run as operators run it: ``python -m starter`` in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.db import Staff
from activities.staff import hash_token
from settings import Settings
from starter import case_state
from tests.conftest import Cases, Shop
from workflows.models import CaseStatus


async def cli(
    *args: str,
    env: WorkflowEnvironment | None = None,
    settings: Settings,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    variables = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")},
        "DATABASE_URL": settings.database_url,
        "TASK_QUEUE": settings.task_queue,
        "TEMPORAL_ADDRESS": (
            env.client.service_client.config.target_host if env else "127.0.0.1:1"
        ),
        # Who the command acts as: the tests' own credentials file, never a developer's.
        "CASEWORK_CREDENTIALS": "/nonexistent/casework-credentials.json",
        **(extra_env or {}),
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "starter", *args],
        env=variables,
        capture_output=True,
        text=True,
        timeout=60,
    )


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

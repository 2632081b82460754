"""Logging: customer contact details never reach a log line, and activity lines say which case.

Logging is configured once per process, so each specification runs the configured pipeline
in a child process (``python -m tests.test_logging <scenario>``) and reads what it wrote.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from temporalio.testing import WorkflowEnvironment

import migrations
from infra.db import Customer, Database, Order
from infra.logs import configure_logging, mask
from settings import Settings
from starter import DATA_CONVERTER, ensure_search_attributes, start_refund
from worker import build_activities, build_worker
from workflows.models import RefundRequest

ROOT = Path(__file__).resolve().parent.parent

EMAIL, OTHER_EMAIL = "ada.lovelace@example.com", "grace@example.org"
PHONE, OTHER_PHONE = "+1 512 555 0100", "(512) 555-0200"
IN_CLEAR = (EMAIL, OTHER_EMAIL, PHONE, OTHER_PHONE, "555 0100", "555-0200")
BARE_PHONE, INTERNATIONAL_PHONE = "5125550199", "0044 20 7946 0958"


def run_scenario(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.test_logging", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# ---- masking -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (EMAIL, "a***@example.com"),
        (f"write to {OTHER_EMAIL} today", "write to g***@example.org today"),
        (PHONE, "***00"),
        (f"call {OTHER_PHONE}", "call ***00"),
        ("+44 20 7946 0958", "***58"),
        ("0044 20 7946 0958", "***58"),
        ("5125550199", "***99"),
        ("+1 512 555 0199", "***99"),
        ("(512) 555-0199", "***99"),
        ("512.555.0199", "***99"),
        ("call 15125550199.", "call ***99."),
        (
            "[parameters: ('C-9', '5125550199', 'ORD-1004')]",
            "[parameters: ('C-9', '***99', 'ORD-1004')]",
        ),
    ],
)
def test_emails_and_phone_numbers_are_masked(text: str, masked: str) -> None:
    assert mask(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T05:17:50.368390Z",
        "refund-req-20261126 for ORD-1001",
        "refunded 1200.00 USD, reference RF-1A2B3C4D5E",
        "due 2026-11-27 23:00 UTC",
        "ORD-1004 on 2026-11-27: 1500.00 refunded",
        "RA-2026-000123 issued for return-evt-2",
        "refund-req-2026112612 and refund-5125550199",
        "unix time 1764140270, in ms 1764140270123",
        "+1500.00 credited, balance 0012345.67",
        "run 174e2687-6779-4cee-a2af-e9b8367029f0 at 2026-11-27T10:00:00+00:00",
    ],
)
def test_ids_amounts_and_instants_are_left_alone(text: str) -> None:
    assert mask(text) == text


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_no_customer_email_or_phone_is_written_in_clear(fmt: str) -> None:
    written = run_scenario("pii", fmt).stderr
    for secret in IN_CLEAR:
        assert secret not in written
    # The lines themselves were written, masked.
    for event in ("customer_contacted", "nested_contact", "delivery failed", "smtp_refused"):
        assert event in written
    assert "a***@example.com" in written and "g***@example.org" in written


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_database_error_is_logged_without_the_contact_details_in_its_parameters(
    fmt: str,
) -> None:
    written = run_scenario("db_error", fmt).stderr
    for secret in (EMAIL, BARE_PHONE, INTERNATIONAL_PHONE, "555 0100"):
        assert secret not in written
    # Logged all the same: as a traceback, as a field and through the standard library,
    # with its statement and the parameters that are not contact details.
    for event in ("db_failed", "db_error", "statement failed"):
        assert event in written
    assert "INSERT INTO no_such_table" in written and "ORD-1004" in written
    assert "a***@example.com" in written and "***99" in written and "***58" in written


def test_json_lines_mask_contact_fields_whatever_their_value() -> None:
    lines = {line["event"]: line for line in json_lines(run_scenario("pii", "json").stderr)}
    contacted = lines["customer_contacted"]
    assert contacted["email"] == contacted["phone"] == contacted["address"] == "***"
    assert contacted["order_id"] == "ORD-1001"
    assert lines["nested_contact"]["customer"]["email"] == "***"


def test_json_activity_lines_carry_the_case_workflow_id() -> None:
    done = run_scenario("refund")
    case_id = done.stdout.strip().splitlines()[-1]
    assert case_id.startswith("refund-")
    lines = json_lines(done.stderr)
    by_event = {line["event"]: line for line in lines if line.get("activity")}
    for event, activity_type in (
        ("case_opened", "open_case"),
        ("email_queued", "send_notice"),
        ("refund_issued", "issue_refund"),
    ):
        line = by_event[event]
        assert (line["workflow_id"], line["activity"]) == (case_id, activity_type)
        assert line["run_id"]
    for secret in ("ada@example.com", "555 0100"):
        assert secret not in done.stderr


# ---- the child processes ----------------------------------------------------------------------


def _emit_pii(fmt: str) -> None:
    configure_logging(fmt)
    log = structlog.get_logger("casework.test")
    log.info(
        "customer_contacted",
        email=EMAIL,
        phone=PHONE,
        address="1 Main St",
        order_id="ORD-1001",
        note=f"reach her at {OTHER_EMAIL} or {OTHER_PHONE}",
    )
    log.info("nested_contact", customer={"email": EMAIL, "notes": [f"call {PHONE}"]})
    logging.getLogger("smtp.transport").warning("delivery failed for %s", OTHER_EMAIL)
    try:
        raise ConnectionRefusedError(f"recipient refused: {EMAIL} ({PHONE})")
    except ConnectionRefusedError:
        log.exception("smtp_refused")
        logging.getLogger("temporalio.activity").exception("Completing activity as failed")


def _emit_database_error(fmt: str) -> None:
    """A real database error whose parameters carry an email and phone numbers."""
    configure_logging(fmt)
    log = structlog.get_logger("casework.test")
    engine = sa.create_engine("sqlite://")
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO no_such_table (order_id, email, phone, other_phone) "
                    "VALUES (:order_id, :email, :phone, :other_phone)"
                ),
                {
                    "order_id": "ORD-1004",
                    "email": EMAIL,
                    "phone": BARE_PHONE,
                    "other_phone": INTERNATIONAL_PHONE,
                },
            )
    except sa.exc.OperationalError as err:
        log.exception("db_failed")
        log.warning("db_error", error=err)
        logging.getLogger("sqlalchemy.pool").error("statement failed: %s", err)
    engine.dispose()


async def _run_refund(workdir: Path) -> str:
    configure_logging("json")
    url = f"sqlite:///{workdir / 'cases.db'}"
    migrations.upgrade(url)
    db = Database(url)
    with db.transaction() as session:
        session.add(
            Customer(id="C-100", name="Ada", email="ada@example.com", phone=PHONE, vip=False)
        )
        session.flush()
        session.add(
            Order(
                id="ORD-1001",
                customer_id="C-100",
                status="delivered",
                total=Decimal("300.00"),
                placed_at=datetime.now(UTC),
            )
        )
    settings = Settings(database_url=url, task_queue="logging")
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
        data_converter=DATA_CONVERTER,
    ) as env:
        await ensure_search_attributes(env.client)
        activities = build_activities(db, settings)
        async with build_worker(env.client, activities=activities, settings=settings):
            started = await start_refund(
                env.client,
                RefundRequest(
                    request_id="log-1",
                    order_id="ORD-1001",
                    customer_id="C-100",
                    amount=Decimal("100.00"),
                    reason="thawed",
                    requested_by="agent-amy",
                ),
                task_queue="logging",
            )
            await started.handle.result()
    db.dispose()
    return started.case_id


if __name__ == "__main__":
    scenario, *rest = sys.argv[1:]
    if scenario == "pii":
        _emit_pii(rest[0])
    elif scenario == "db_error":
        _emit_database_error(rest[0])
    elif scenario == "refund":
        with tempfile.TemporaryDirectory() as tmp:
            print(asyncio.run(_run_refund(Path(tmp))))
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")

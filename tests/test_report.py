"""The management report (``python -m starter report``), run as operators run it, over known
cases written in the database: its figures, its formats, its filters and its refusals. Temporal
is unreachable throughout (the CLI helper dials nobody): the report reads the database alone."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.db import Database
from settings import Settings
from tests.cli_helpers import cli
from tests.conftest import Shop
from tests.report_helpers import add_audit, add_case, at, seed_known_cases

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

HOUR = 3600.0


async def report(*args: str, settings: Settings) -> subprocess.CompletedProcess[str]:
    zone = {"BUSINESS_TIMEZONE": "America/New_York", "CURRENCY": "USD"}
    return await cli("report", *args, settings=settings, extra_env=zone)


async def report_json(*args: str, settings: Settings) -> dict[str, Any]:
    result = await report("--format", "json", *args, settings=settings)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


@pytest.fixture
def seeded(shop: Shop, db: Database) -> Shop:
    seed_known_cases(db)
    return shop


def by_procedure(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["procedure"]: p for p in data["procedures"]}


async def test_cases_opened_closed_and_outcomes_per_procedure(
    seeded: Shop, settings: Settings
) -> None:
    data = await report_json("--since", "2026-11-01", settings=settings)
    figures = by_procedure(data)
    assert list(figures) == ["cancellation", "complaint", "refund", "return"]
    assert {k: (p["opened"], p["closed"], p["still_open"]) for k, p in figures.items()} == {
        "cancellation": (3, 3, 0),
        "complaint": (5, 4, 1),
        "refund": (3, 2, 1),
        "return": (2, 2, 0),
    }
    assert figures["refund"]["outcomes"] == {"completed": 1, "rejected": 1}
    assert figures["complaint"]["outcomes"] == {"closed": 3, "closed_no_response": 1}
    assert figures["cancellation"]["outcomes"] == {"cancelled": 2, "converted_to_return": 1}
    assert (data["timezone"], data["currency"], data["since"]) == (
        "America/New_York",
        "USD",
        "2026-11-01",
    )


async def test_time_to_decision_is_the_median_and_nearest_rank_p90_of_approvals(
    seeded: Shop, settings: Settings
) -> None:
    figures = by_procedure(await report_json("--since", "2026-11-01", settings=settings))
    # Refund approvals decided in 1 h and 3 h; the pending one is not counted.
    assert figures["refund"]["time_to_decision"] == {
        "count": 2,
        "median_seconds": 2 * HOUR,
        "p90_seconds": 3 * HOUR,
    }
    assert figures["return"]["time_to_decision"] == {
        "count": 2,
        "median_seconds": 7.5 * HOUR,
        "p90_seconds": 10 * HOUR,
    }
    assert figures["complaint"]["time_to_decision"] == {
        "count": 0,
        "median_seconds": None,
        "p90_seconds": None,
    }
    # Four complaints closed after 48, 48, 48 and 96 hours.
    assert figures["complaint"]["time_to_close"] == {
        "count": 4,
        "median_seconds": 48 * HOUR,
        "p90_seconds": 96 * HOUR,
    }


async def test_follow_ups_on_time_are_read_from_clocks_then_from_the_audit_trail(
    seeded: Shop, settings: Settings
) -> None:
    data = await report_json(settings=settings)
    assert data["follow_ups"] == {
        "due": 5,
        "on_time": 2,  # k1 stopped before due; k3 followed up at exactly 24 h
        "late": 2,  # k2 breached; k4 followed up after 25 h
        "pending": 1,  # k5's clock still runs
        "from_clocks": 3,
        "from_audit": 2,
        "on_time_ratio": 0.5,
    }


async def test_a_complaint_is_held_to_the_follow_up_time_it_opened_with_a_minute_s_grace(
    shop: Shop, db: Database, settings: Settings
) -> None:
    # Opened under FOLLOW_UP_WITHIN = 2 days (recorded with the case), followed up after 30 h.
    two_days = {"complaint": {"follow_up_within": "P2D"}}
    add_case(db, "complaint-slow", "complaint", "closed", at(2, 14), at(6, 14),
             request={"category": "quality"}, rules=two_days)  # fmt: skip
    add_audit(db, "complaint-slow", 1, "follow_up_sent", at(3, 20))
    add_case(db, "complaint-usual", "complaint", "closed", at(2, 14), at(6, 14),
             request={"category": "quality"})  # fmt: skip
    add_audit(db, "complaint-usual", 1, "follow_up_sent", at(3, 20))
    # The usual 24 hours: the seconds the follow-up's own steps take are on time, minutes not.
    for case_id, after in (("complaint-seconds", 30), ("complaint-minutes", 120)):
        add_case(db, case_id, "complaint", "closed", at(2, 14), at(6, 14),
                 request={"category": "quality"})  # fmt: skip
        add_audit(db, case_id, 1, "follow_up_sent", at(3, 14) + timedelta(seconds=after))
    follow_ups = (await report_json(settings=settings))["follow_ups"]
    assert (follow_ups["on_time"], follow_ups["late"], follow_ups["from_audit"]) == (2, 2, 4)


async def test_breaches_are_counted_per_clock(seeded: Shop, settings: Settings) -> None:
    data = await report_json(settings=settings)
    assert data["clocks"] == [
        {
            "procedure": "complaint",
            "clock": "complaint_follow_up",
            "runs": 3,
            "on_time": 1,
            "breached": 1,
            "running": 1,
        },
        {
            "procedure": "refund",
            "clock": "approval_escalation",
            "runs": 2,
            "on_time": 1,
            "breached": 1,
            "running": 0,
        },
    ]


async def test_reasons_exceptions_and_vip_interactions(seeded: Shop, settings: Settings) -> None:
    data = await report_json(settings=settings)
    assert [(r["procedure"], r["reason"], r["cases"]) for r in data["reasons"]] == [
        ("cancellation", "ordered_by_mistake", 2),
        ("cancellation", "found_cheaper", 1),
        ("complaint", "quality", 3),
        ("complaint", "food_safety", 1),
        ("complaint", "medical", 1),
        ("return", "arrived thawed", 2),  # free text, compared without case and spacing
    ]
    assert [
        (e["case_id"], e["rule"], e["status"], e["amount"], e["decided_by"], e["granted"])
        for e in data["exceptions"]
    ] == [
        ("return-t1", "RETURN_WINDOW", "approved", "120.00", "mgr-mia", True),
        ("return-t2", "RETURN_WINDOW", "rejected", "80.50", "mgr-max", False),
    ]
    # Shown in the business timezone: 21:00Z is 16:00 in New York.
    assert data["exceptions"][0]["decided_at"] == "2026-11-03T16:00:00-05:00"
    assert data["exceptions_granted"] == [
        {"decided_by": "mgr-mia", "rule": "RETURN_WINDOW", "granted": 1}
    ]
    assert [(v["case_id"], v["customer_id"], v["status"]) for v in data["vip"]] == [
        ("refund-r2", "C-200", "rejected"),
        ("complaint-k2", "C-200", "closed"),
    ]


async def test_days_are_business_days_in_the_business_timezone(
    seeded: Shop, settings: Settings
) -> None:
    data = await report_json("--procedure", "cancellation", settings=settings)
    # 03:00Z on the 4th is still the 3rd in New York.
    assert [(d["day"], d["opened"]) for d in data["days"]] == [
        ("2026-11-03", 1),
        ("2026-11-04", 1),
        ("2026-11-05", 1),
    ]


async def test_since_counts_cases_opened_from_that_business_day(
    seeded: Shop, settings: Settings
) -> None:
    everything = by_procedure(await report_json(settings=settings))
    assert everything["refund"]["opened"] == 4  # with October's
    later = await report_json("--since", "2026-11-04", settings=settings)
    assert {k: p["opened"] for k, p in by_procedure(later).items()} == {
        "cancellation": 2,
        "complaint": 3,
        "return": 1,
    }
    assert [e["case_id"] for e in later["exceptions"]] == ["return-t2"]
    assert later["vip"] == []


async def test_procedure_limits_every_figure_to_its_cases(seeded: Shop, settings: Settings) -> None:
    data = await report_json("--procedure", "refund", "--since", "2026-11-01", settings=settings)
    assert [p["procedure"] for p in data["procedures"]] == ["refund"]
    assert [c["procedure"] for c in data["clocks"]] == ["refund"]
    assert data["follow_ups"]["due"] == 0
    assert data["reasons"] == [] and data["exceptions"] == []
    assert [v["case_id"] for v in data["vip"]] == ["refund-r2"]
    dashed = await report_json("--procedure", "order-change", settings=settings)
    assert (dashed["procedure"], dashed["procedures"]) == ("order_change", [])


async def test_csv_holds_the_same_figures(seeded: Shop, settings: Settings) -> None:
    result = await report("--format", "csv", "--since", "2026-11-01", settings=settings)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    value = {(r["section"], r["procedure"], r["item"], r["measure"]): r["value"] for r in rows}
    assert value[("cases", "refund", "", "opened")] == "3"
    assert value[("outcomes", "complaint", "closed_no_response", "cases")] == "1"
    assert value[("time_to_decision", "return", "", "median_seconds")] == "27000"
    assert value[("time_to_decision", "refund", "", "p90_seconds")] == "10800"
    assert value[("sla_clocks", "refund", "approval_escalation", "breached")] == "1"
    assert value[("follow_ups", "complaint", "", "on_time_ratio")] == "0.5"
    assert value[("reasons", "cancellation", "ordered_by_mistake", "cases")] == "2"
    assert value[("exceptions", "return", "return-t1", "decided_by")] == "mgr-mia"
    assert value[("exceptions", "return", "return-t2", "amount")] == "80.50 USD"
    assert value[("exceptions_granted", "", "mgr-mia", "RETURN_WINDOW")] == "1"
    assert value[("vip", "refund", "refund-r2", "customer_id")] == "C-200"


async def test_table_shows_the_figures_with_readable_durations(
    seeded: Shop, settings: Settings
) -> None:
    result = await report("--since", "2026-11-01", settings=settings)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Case report: every procedure, opened since 2026-11-01"
    assert "(America/New_York)" in lines[1]
    refund = next(line for line in lines if line.startswith("refund "))
    assert refund.split()[:8] == ["refund", "3", "2", "1", "2h", "0m", "3h", "0m"]
    assert (
        "Complaint follow-ups (24-hour standard): 2 on time, 2 late, 1 pending; on time 50% "
        "(measured by clock 3, by audit trail 2)"
    ) in lines
    assert any("return-t1" in line and "120.00 USD" in line and "mgr-mia" in line for line in lines)
    assert "  granted by mgr-mia: 1 (RETURN_WINDOW)" in lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "2026-13-01"), "argument --since: not a date (YYYY-MM-DD): '2026-13-01'"),
        (("--since", "last week"), "argument --since: not a date (YYYY-MM-DD): 'last week'"),
        (("--procedure", "refunds"), "argument --procedure: unknown procedure 'refunds'; one of:"),
        (("--format", "pdf"), "argument --format: invalid choice: 'pdf'"),
    ],
)
async def test_bad_arguments_exit_2_with_a_message(
    settings: Settings, args: tuple[str, ...], message: str
) -> None:
    result = await report(*args, settings=settings)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


async def test_an_output_file_that_cannot_be_written_exits_2(
    settings: Settings, tmp_path: Path
) -> None:
    target = tmp_path / "missing" / "report.html"
    result = await report("--format", "html", "--output", str(target), settings=settings)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot write {target}")

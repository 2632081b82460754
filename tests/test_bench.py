"""``python -m bench`` at a tiny size: the record it writes, not how fast anything was."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bench import activities as activity_costs
from tests.conftest import PG_ADMIN_URL, require_postgres

ROOT = Path(__file__).resolve().parent.parent
CASES = 4  # two under 500.00, two over it
ROUNDS = 2  # the least that shows the rounds taking turns
RUSH_BACKLOG = 4  # refunds ahead of the VIP rush


def run_bench(results_dir: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The bench as ``make bench`` runs it; returns the process and the JSON it wrote."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "--cases", str(CASES), "--in-flight", str(CASES)),
            *("--rounds", str(ROUNDS)),
            *("--rush-backlog", str(RUSH_BACKLOG), "--results-dir", str(results_dir), *args),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    written = sorted(results_dir.glob("*.json"))
    assert len(written) == 1, done.stdout + done.stderr
    return done, written[0]


def test_bench_records_every_run_and_exits_non_zero_when_a_target_is_missed(
    tmp_path: Path,
) -> None:
    # Every target out of reach but the throughput ratio, which no run can meet.
    done, path = run_bench(
        tmp_path,
        *("--min-throughput-ratio", "1000", "--max-p95-ratio", "1000"),
        *("--max-rss-mb", "100000", "--max-activities", "1000", "--label", "spec"),
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert path.name.endswith("-sqlite.json")
    result: dict[str, Any] = json.loads(path.read_text())
    assert (result["database"], result["label"], result["ok"]) == ("sqlite", "spec", False)
    assert (result["load"]["cases"], result["load"]["rounds"]) == (CASES, ROUNDS)
    assert set(result["runs"]) == {"baseline", "minimal", "refund"}
    # Each round runs the three in turn, starting one later than the round before.
    orders = [one["order"] for one in result["rounds"]]
    assert orders == [["baseline", "minimal", "refund"], ["minimal", "refund", "baseline"]]
    for one in result["rounds"]:
        assert {kind: run["completed"] for kind, run in one["runs"].items()} == dict.fromkeys(
            ("baseline", "minimal", "refund"), CASES
        )
        assert one["ratios"]["throughput_vs_baseline"] == pytest.approx(
            one["runs"]["refund"]["throughput"] / one["runs"]["baseline"]["throughput"], rel=1e-3
        )
    # The ratio held to the target is the median of the rounds' own.
    assert result["ratios"]["throughput_vs_baseline"] == pytest.approx(
        statistics.median(one["ratios"]["throughput_vs_baseline"] for one in result["rounds"]),
        rel=1e-3,
    )
    for kind, run in result["runs"].items():
        assert (run["rounds"], run["completed"]) == (ROUNDS, CASES * ROUNDS), kind
        assert run["throughput"] > 0 and 0 < run["p50"] <= run["p95"] <= run["max"], kind
        assert run["peak_rss_mb"] > 0, kind
        assert run["cpu_cores"]["bench"] > 0 and run["cpu_cores"]["others"] >= 0, kind
        assert run["worker_cpu_ms_per_case"] > 0, kind
        assert run["bench_cpu_ms_per_case"] > run["worker_cpu_ms_per_case"], kind
        assert run["decisions_resent"] >= 0, kind
    per_case = {kind: run["activities_per_case"] for kind, run in result["runs"].items()}
    # The bare workflows are fixed shapes: their counts prove what is counted.
    assert per_case["baseline"]["under_500"] == {"mean": 8, "min": 8, "max": 8}
    assert per_case["baseline"]["over_500"] == {"mean": 11, "min": 11, "max": 11}
    assert per_case["minimal"]["under_500"]["mean"] == per_case["minimal"]["over_500"]["mean"] == 3
    # A refund does at least the three external effects, and more when a manager decides.
    refund = per_case["refund"]
    assert refund["under_500"]["min"] >= 3
    assert refund["over_500"]["min"] > refund["under_500"]["max"]
    assert set(result["ratios"]) == {
        "throughput_vs_baseline",
        "p95_vs_baseline",
        "throughput_vs_minimal",
        "p95_vs_minimal",
        "worker_cpu_per_case_vs_baseline",
        "bench_cpu_per_case_vs_baseline",
    }
    # The VIP rush behind a backlog, with priority and without: reported, not a target.
    rush = result["rush_priority"]
    assert rush["backlog"] == RUSH_BACKLOG
    for name in ("priority", "no_priority"):
        assert rush[name]["seconds_to_awaiting_customer"] > 0, name
        assert 0 <= rush[name]["refunds_completed_before"] <= RUSH_BACKLOG, name
    assert rush["latency_without_vs_with"] == pytest.approx(
        rush["no_priority"]["seconds_to_awaiting_customer"]
        / rush["priority"]["seconds_to_awaiting_customer"],
        rel=1e-3,
        abs=1e-4,  # the file keeps four decimals: a small ratio is rounded by more than rel
    )
    missed = [t["target"] for t in result["targets"] if not t["ok"]]
    assert missed == ["refund throughput >= 1000.00x the baseline's"]
    assert len(result["targets"]) == 4
    # Each ratio's target says in how many rounds it was met on its own.
    met = {t["target"]: t.get("rounds_met") for t in result["targets"]}
    assert met["refund throughput >= 1000.00x the baseline's"] == 0
    assert met["refund p95 latency <= 1000.00x the baseline's"] == ROUNDS
    table = path.with_suffix(".md").read_text()
    assert "| refund |" in table and "MISSED (met in 0 of 2 rounds)" in table
    assert "| 2 | minimal, refund, baseline |" in table
    assert "| with priority (as built) |" in table and "| without priority |" in table
    assert table in done.stdout


def test_bench_on_postgresql_uses_a_database_of_its_own_and_drops_it(tmp_path: Path) -> None:
    require_postgres(PG_ADMIN_URL, os.environ)
    admin = sa.create_engine(PG_ADMIN_URL)
    listing = sa.text("SELECT datname FROM pg_database WHERE datname LIKE 'casework_bench_%'")
    with admin.connect() as conn:
        before = set(conn.scalars(listing))

    done, path = run_bench(
        tmp_path,
        *("--database-url", PG_ADMIN_URL, "--min-throughput-ratio", "0", "--max-p95-ratio", "1000"),
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert path.name.endswith("-postgresql.json")
    result = json.loads(path.read_text())
    assert result["runs"]["refund"]["completed"] == CASES * ROUNDS
    with admin.connect() as conn:
        assert set(conn.scalars(listing)) == before
    admin.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_activity_costs_replay_a_recorded_approved_refund_on_cases_of_their_own(
    database: str,
) -> None:
    server = None
    if database == "postgresql":
        require_postgres(PG_ADMIN_URL, os.environ)
        server = PG_ADMIN_URL
    history = activity_costs.HISTORIES / "refund_sla_clocks_approved_by_update.json"

    measured = activity_costs.run(history, cases=2, server_url=server)

    # Each case ran the recorded steps, in order, on an order of its own, and ended completed.
    assert measured.calls == (
        "open_case",
        "verify_refund",
        "find_approvers",
        "send_notice",
        "verify_decision",
        "issue_refund",
        "send_notice",
    )
    assert measured.completed == 2
    assert all(ms > 0 for ms in measured.cpu_ms_per_case.values()), measured

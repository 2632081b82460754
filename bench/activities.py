"""``python -m bench.activities``: what a refund's activities cost, without Temporal.

Calls, in turn, the activities a recorded history scheduled (their recorded inputs, with a
case and an order of its own for each case) on the bench's fresh, seeded database, and
prints each activity's thread CPU per case. The worker's own figures move with the host's
speed; run under ``valgrind --tool=callgrind`` at two sizes instead, and the difference of
the instructions counted, per case, does not (docs/benchmark.md).
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import func, select

from bench.database import fresh_database, order_id
from infra.db import Case, Database
from infra.logs import configure_logging
from settings import Settings
from worker import build_activities

ROOT = Path(__file__).resolve().parent.parent
HISTORIES = ROOT / "tests" / "histories"
CUSTOMER = "C-BENCH"  # the bench's seeded customer
MANAGER = "mgr-bench"  # and its manager
RECORDED_MANAGER = "mgr-mia"  # the manager who decides in the recorded histories


@dataclass(frozen=True)
class RecordedCall:
    """One activity the history scheduled: its name and its input as recorded (JSON)."""

    name: str
    data: str


@dataclass(frozen=True)
class Measured:
    calls: tuple[str, ...]  # the activities of one case, in order
    cpu_ms_per_case: dict[str, float]  # thread CPU of each activity, per case
    completed: int  # cases whose row ended ``completed``


def recorded_calls(history: Path) -> tuple[str, tuple[RecordedCall, ...], dict[str, Any]]:
    """The case id, the scheduled activities and the start request of a recorded history."""
    events = json.loads(history.read_text())["events"]
    started = events[0]["workflowExecutionStartedEventAttributes"]
    request = json.loads(_data(started["input"]["payloads"][0]))
    calls = tuple(
        RecordedCall(scheduled["activityType"]["name"], _data(scheduled["input"]["payloads"][0]))
        for event in events
        if (scheduled := event.get("activityTaskScheduledEventAttributes"))
    )
    case_id = json.loads(calls[0].data)["case_id"]
    return case_id, calls, request


def _data(payload: dict[str, Any]) -> str:
    return base64.b64decode(payload["data"]).decode()


def run(history: Path, cases: int, server_url: str | None = None) -> Measured:
    """Every case's activities, one case after the other, on a fresh database."""
    case_id, calls, request = recorded_calls(history)
    spent = dict.fromkeys((call.name for call in calls), 0.0)
    with (
        tempfile.TemporaryDirectory() as workdir,
        fresh_database(server_url, Path(workdir), cases) as url,
    ):
        db = Database(url)
        activities = build_activities(db, Settings(database_url=url))
        for i in range(cases):
            for call in calls:
                data = (
                    call.data.replace(case_id, f"refund-activities-{i}")
                    .replace(request["order_id"], order_id(i))
                    .replace(request["customer_id"], CUSTOMER)
                    .replace(RECORDED_MANAGER, MANAGER)
                )
                activity = getattr(activities, call.name)
                argument = _input_type(activity).model_validate_json(data)
                started = time.thread_time()
                activity(argument)
                spent[call.name] += time.thread_time() - started
        with db.read() as session:
            completed = session.scalar(
                select(func.count()).select_from(Case).where(Case.status == "completed")
            )
        db.dispose()
    return Measured(
        calls=tuple(call.name for call in calls),
        cpu_ms_per_case={name: round(s * 1000 / cases, 2) for name, s in spent.items()},
        completed=int(completed or 0),
    )


def _input_type(activity: Callable[..., Any]) -> type[BaseModel]:
    hints = typing.get_type_hints(activity)
    return cast(type[BaseModel], next(kind for name, kind in hints.items() if name != "return"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--history",
        type=Path,
        default=HISTORIES / "refund_lean_under_threshold.json",
        help="a recorded refund history (default: one under 500.00)",
    )
    parser.add_argument("--cases", type=int, default=100, help="cases to run (100)")
    parser.add_argument("--database-url", help="a PostgreSQL server, as for python -m bench")
    args = parser.parse_args()
    settings = Settings()
    configure_logging(settings.log_format, "WARNING")
    measured = run(args.history, args.cases, args.database_url)
    print(f"{args.cases} cases of {args.history.name}: {measured.completed} completed")
    for name, ms in measured.cpu_ms_per_case.items():
        print(f"  {name}: {ms:.2f} ms CPU per case")
    print(f"  all: {sum(measured.cpu_ms_per_case.values()):.2f} ms CPU per case")


if __name__ == "__main__":
    main()

"""``python -m starter report``: its options, checked before the database is read."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

from infra.db import Database
from registry import PROCEDURES
from settings import Settings
from starter.cli_local import UsageError
from starter.report import FORMATS, ReportService, render

PROCEDURE_NAMES = tuple(p.name for p in PROCEDURES)


def since_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def procedure_name(text: str) -> str:
    """A procedure by its case type or its command (``order_change``, ``order-change``)."""
    name = text.strip().replace("-", "_")
    if name not in PROCEDURE_NAMES:
        raise argparse.ArgumentTypeError(
            f"unknown procedure {text!r}; one of: {', '.join(PROCEDURE_NAMES)}"
        )
    return name


def cmd_report(args: argparse.Namespace, settings: Settings) -> None:
    db = Database(settings.database_url)
    try:
        report = ReportService(db, settings).build(since=args.since, procedure=args.procedure)
    finally:
        db.dispose()
    text = render(report, args.format)
    if args.output is None:
        print(text, end="")
        return
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot write {args.output}: {err.strerror}") from None
    print(f"report written to {args.output}")


def add_report_command(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="figures per procedure, read from the database (docs/reports.md)",
        description="Cases opened and closed, outcomes, time to decision, follow-ups and SLA "
        "breaches, reasons, policy exceptions and VIP interactions, for the cases opened "
        "since a day (business timezone).",
    )
    p.add_argument(
        "--since", type=since_day, metavar="YYYY-MM-DD", help="cases opened that day or later"
    )
    p.add_argument(
        "--procedure",
        type=procedure_name,
        metavar="PROCEDURE",
        help=f"one of {', '.join(PROCEDURE_NAMES)} (default: all)",
    )
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--output", type=Path, metavar="FILE", help="write to FILE (default: stdout)")
    p.set_defaults(local=cmd_report)

"""The report as text: a table for a terminal, JSON for a program, CSV for a spreadsheet.
The HTML page is starter/report/html.py."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from decimal import Decimal

from starter.report.models import Durations, Report

FORMATS = ("table", "json", "csv", "html")


def duration(seconds: float | None) -> str:
    """``2d 3h``, ``1h 30m``, ``45m``, ``30s``; ``-`` when nothing was measured."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def money(amount: Decimal | None, currency: str) -> str:
    return "-" if amount is None else f"{amount:,.2f} {currency}"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def scope(report: Report) -> str:
    since = f"opened since {report.since:%Y-%m-%d}" if report.since else "all cases"
    which = f"{report.procedure} cases" if report.procedure else "every procedure"
    return f"{which}, {since}"


def as_json(report: Report) -> str:
    return report.model_dump_json(indent=2)


def _rows(report: Report) -> Iterator[tuple[str, str, str, str, str]]:
    """Every figure as (section, procedure, item, measure, value): one long table."""
    for p in report.procedures:
        yield ("cases", p.procedure, "", "opened", str(p.opened))
        yield ("cases", p.procedure, "", "closed", str(p.closed))
        yield ("cases", p.procedure, "", "still_open", str(p.still_open))
        for status, n in p.outcomes.items():
            yield ("outcomes", p.procedure, status, "cases", str(n))
        yield from _duration_rows("time_to_decision", p.procedure, p.time_to_decision)
        yield from _duration_rows("time_to_close", p.procedure, p.time_to_close)
    for day in report.days:
        yield ("opened_per_day", day.procedure, day.day.isoformat(), "opened", str(day.opened))
    for c in report.clocks:
        for measure in ("runs", "on_time", "breached", "running"):
            yield ("sla_clocks", c.procedure, c.clock, measure, str(getattr(c, measure)))
    f = report.follow_ups
    for measure in ("due", "on_time", "late", "pending", "from_clocks", "from_audit"):
        yield ("follow_ups", "complaint", "", measure, str(getattr(f, measure)))
    yield ("follow_ups", "complaint", "", "on_time_ratio", _number(f.on_time_ratio))
    for r in report.reasons:
        yield ("reasons", r.procedure, r.reason, "cases", str(r.cases))
    for e in report.exceptions:
        yield ("exceptions", e.procedure, e.case_id, "rule", e.rule)
        yield ("exceptions", e.procedure, e.case_id, "status", e.status)
        yield ("exceptions", e.procedure, e.case_id, "amount", f"{e.amount} {report.currency}")
        yield ("exceptions", e.procedure, e.case_id, "decided_by", e.decided_by or "")
        yield ("exceptions", e.procedure, e.case_id, "decided_at", _instant(e.decided_at))
    for g in report.exceptions_granted:
        yield ("exceptions_granted", "", g.decided_by, g.rule, str(g.granted))
    for v in report.vip:
        yield ("vip", v.procedure, v.case_id, "customer_id", v.customer_id)
        yield ("vip", v.procedure, v.case_id, "status", v.status)
        yield ("vip", v.procedure, v.case_id, "opened_at", _instant(v.opened_at))


def _duration_rows(
    name: str, procedure: str, d: Durations
) -> Iterator[tuple[str, str, str, str, str]]:
    yield (name, procedure, "", "count", str(d.count))
    yield (name, procedure, "", "median_seconds", _number(d.median_seconds))
    yield (name, procedure, "", "p90_seconds", _number(d.p90_seconds))


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _instant(value: object) -> str:
    return "" if value is None else value.isoformat()  # type: ignore[attr-defined]


def as_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("section", "procedure", "item", "measure", "value"))
    writer.writerows(_rows(report))
    return out.getvalue()


def as_table(report: Report) -> str:
    lines = [
        f"Case report: {scope(report)}",
        f"generated {report.generated_at:%Y-%m-%d %H:%M} ({report.timezone}); times in "
        f"{report.timezone}, money in {report.currency}",
        "",
        f"{'procedure':<16} {'opened':>6} {'closed':>6} {'open':>5}  "
        f"{'decision median':>15} {'p90':>8}  {'close median':>12} {'p90':>8}  outcomes",
    ]
    for p in report.procedures:
        outcomes = ", ".join(f"{s} {n}" for s, n in p.outcomes.items()) or "-"
        lines.append(
            f"{p.procedure:<16} {p.opened:>6} {p.closed:>6} {p.still_open:>5}  "
            f"{duration(p.time_to_decision.median_seconds):>15} "
            f"{duration(p.time_to_decision.p90_seconds):>8}  "
            f"{duration(p.time_to_close.median_seconds):>12} "
            f"{duration(p.time_to_close.p90_seconds):>8}  {outcomes}"
        )
    if not report.procedures:
        lines.append("(no cases)")
    f = report.follow_ups
    lines += [
        "",
        f"Complaint follow-ups (24-hour standard): {f.on_time} on time, {f.late} late, "
        f"{f.pending} pending; on time {ratio(f.on_time_ratio)} "
        f"(measured by clock {f.from_clocks}, by audit trail {f.from_audit})",
        "",
        "SLA clocks:",
    ]
    lines += [
        f"  {c.procedure:<16} {c.clock:<28} runs {c.runs:>4}  on time {c.on_time:>4}  "
        f"breached {c.breached:>4}  running {c.running:>4}"
        for c in report.clocks
    ] or ["  (none)"]
    lines += ["", "Reasons:"]
    lines += [f"  {r.procedure:<16} {r.reason:<40} {r.cases:>4}" for r in report.reasons] or [
        "  (none)"
    ]
    lines += ["", "Policy exceptions:"]
    lines += [
        f"  {e.case_id:<32} {e.rule:<20} {e.status:<9} {money(e.amount, report.currency):>16}  "
        f"by {e.decided_by or '-'}" + (f" {e.decided_at:%Y-%m-%d %H:%M}" if e.decided_at else "")
        for e in report.exceptions
    ] or ["  (none)"]
    lines += [
        f"  granted by {g.decided_by}: {g.granted} ({g.rule})" for g in report.exceptions_granted
    ]
    lines += ["", "VIP interactions:"]
    lines += [
        f"  {v.case_id:<32} {v.procedure:<16} {v.customer_id:<10} {v.status:<20} "
        f"opened {v.opened_at:%Y-%m-%d %H:%M}"
        for v in report.vip
    ] or ["  (none)"]
    return "\n".join(lines) + "\n"

"""The report as one self-contained HTML page for a manager: inline CSS, inline SVG charts
drawn here (no script, no external file), and the tables behind them.

Every chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that say what it
shows; every number it draws is in a table below it too, for screen readers and copying.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape

from starter.report.models import Report
from starter.report.render import duration, money, ratio, scope

# Colour-blind-safe (Okabe-Ito), one per procedure in the order they appear.
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
)  # fmt: skip
# Time-to-decision buckets: upper bound in seconds (None: no bound) and label.
BUCKETS: tuple[tuple[float | None, str], ...] = (
    (3_600, "< 1h"),
    (4 * 3_600, "1-4h"),
    (8 * 3_600, "4-8h"),
    (24 * 3_600, "8-24h"),
    (3 * 86_400, "1-3d"),
    (None, "> 3d"),
)
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 260, 40, 40, 16
MAX_LABELLED_DAYS = 31  # a month of days has room for each day's total above its bar

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:60rem;
color:#1a1a1a;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
figure{margin:1rem 0}figcaption{font-size:.9rem;color:#444}
svg{max-width:100%;height:auto}svg text{font-size:11px;fill:#222}
.legend span{display:inline-block;margin-right:1rem;font-size:.85rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
.meta{color:#555}
"""


def as_html(report: Report) -> str:
    colours = {p.procedure: PALETTE[i % len(PALETTE)] for i, p in enumerate(report.procedures)}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Case report: {escape(scope(report))}</title>",
        f"<style>{CSS}</style></head><body><main>",
        "<h1>Case report</h1>",
        f'<p class="meta">{escape(scope(report))}. Generated '
        f"{report.generated_at:%Y-%m-%d %H:%M} ({escape(report.timezone)}); "
        f"times in that timezone, money in {escape(report.currency)}.</p>",
        "<h2>Cases per procedure</h2>",
        _procedures_table(report),
        "<h2>Cases opened per day</h2>",
        _cases_over_time(report, colours),
        "<h2>Time to decision</h2>",
        _decision_histogram(report),
        "<h2>SLA clocks and breaches</h2>",
        _breaches_chart(report),
        _clocks_table(report),
        "<h2>Complaint follow-ups (24-hour standard)</h2>",
        _follow_ups(report),
        "<h2>Reasons</h2>",
        _reasons(report),
        "<h2>Policy exceptions</h2>",
        _exceptions(report),
        "<h2>VIP interactions</h2>",
        _vip(report),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


class Cell(str):
    """A cell already rendered (a number with its data-figure name): not escaped again."""


def _n(value: object, figure: str) -> Cell:
    return Cell(f'<td class="n" data-figure="{escape(figure)}">{escape(str(value))}</td>')


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], caption: str) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = "".join(
        "<tr>"
        + "".join(c if isinstance(c, Cell) else f"<td>{escape(str(c))}</td>" for c in row)
        + "</tr>"
        for row in rows
    )
    return (
        f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _procedures_table(report: Report) -> str:
    rows = []
    for p in report.procedures:
        d, c = p.time_to_decision, p.time_to_close
        rows.append(
            (
                p.procedure,
                _n(p.opened, f"{p.procedure}-opened"),
                _n(p.closed, f"{p.procedure}-closed"),
                _n(p.still_open, f"{p.procedure}-open"),
                ", ".join(f"{s} {n}" for s, n in p.outcomes.items()) or "-",
                _n(d.count, f"{p.procedure}-decisions"),
                _n(duration(d.median_seconds), f"{p.procedure}-decision-median"),
                _n(duration(d.p90_seconds), f"{p.procedure}-decision-p90"),
                _n(duration(c.median_seconds), f"{p.procedure}-close-median"),
                _n(duration(c.p90_seconds), f"{p.procedure}-close-p90"),
            )
        )
    return _table(
        ("Procedure", "Opened", "Closed", "Open", "Outcomes", "Decisions",
         "Decision median", "Decision p90", "Close median", "Close p90"),
        rows,
        "Cases opened and closed, outcomes, time to decision and to close",
    )  # fmt: skip


def _svg(chart_id: str, title: str, desc: str, body: Sequence[str], height: float = HEIGHT) -> str:
    return (
        f'<svg id="{chart_id}" class="chart" role="img" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'width="{WIDTH}" height="{height:.0f}" aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>' + "".join(body) + "</svg>"
    )


def _axes(top_value: int) -> list[str]:
    base = HEIGHT - BOTTOM
    return [
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#888"/>',
        f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - 8}" y2="{base}" stroke="#888"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{top_value}</text>',
        f'<text x="{LEFT - 6}" y="{base}" text-anchor="end">0</text>',
    ]


def _cases_over_time(report: Report, colours: dict[str, str]) -> str:
    days = sorted({d.day for d in report.days})
    if not days:
        return "<p>No cases opened.</p>"
    per_day: dict[date, list[tuple[str, int]]] = {day: [] for day in days}
    for d in report.days:
        per_day[d.day].append((d.procedure, d.opened))
    top_value = max(sum(n for _, n in stack) for stack in per_day.values())
    plot_h = HEIGHT - BOTTOM - TOP
    band = (WIDTH - LEFT - 16) / len(days)
    body = _axes(top_value)
    every = max(1, len(days) // 12)  # at most a dozen date labels
    for i, day in enumerate(days):
        x = LEFT + 8 + i * band
        y = float(HEIGHT - BOTTOM)
        for procedure, n in per_day[day]:
            h = plot_h * n / top_value
            y -= h
            body.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(band - 4, 1):.1f}" '
                f'height="{h:.1f}" fill="{colours.get(procedure, "#777")}">'
                f"<title>{day:%Y-%m-%d}: {n} {escape(procedure)}</title></rect>"
            )
        if len(days) <= MAX_LABELLED_DAYS:  # beyond, the totals would overlap: see the tooltips
            total = sum(n for _, n in per_day[day])
            body.append(
                f'<text x="{x + band / 2 - 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" '
                f'data-figure="opened-{day:%Y-%m-%d}">{total}</text>'
            )
        if i % every == 0:
            body.append(
                f'<text x="{x + band / 2 - 2:.1f}" y="{HEIGHT - BOTTOM + 14}" '
                f'text-anchor="middle">{day:%m-%d}</text>'
            )
    legend = "".join(
        f'<span><i style="background:{colour}"></i>{escape(p)}</span>'
        for p, colour in colours.items()
    )
    summary = "; ".join(f"{day:%Y-%m-%d}: {sum(n for _, n in per_day[day])}" for day in days)
    return (
        "<figure>"
        + _svg(
            "chart-cases",
            "Cases opened per day, stacked by procedure",
            f"Cases opened per business day ({report.timezone}). {summary}.",
            body,
        )
        + f"<figcaption>Cases opened per day ({escape(report.timezone)}), by procedure."
        f'<div class="legend">{legend}</div></figcaption></figure>'
    )


def _bucket_counts(values: Sequence[float]) -> list[int]:
    counts = [0] * len(BUCKETS)
    for value in values:
        for i, (bound, _) in enumerate(BUCKETS):
            if bound is None or value < bound:
                counts[i] += 1
                break
    return counts


def _vertical_bars(chart_id: str, labels: Sequence[str], values: Sequence[int]) -> list[str]:
    top_value = max(max(values), 1)
    plot_h = HEIGHT - BOTTOM - TOP
    band = (WIDTH - LEFT - 16) / len(values)
    body = _axes(top_value)
    for i, (label, n) in enumerate(zip(labels, values, strict=True)):
        x = LEFT + 8 + i * band
        h = plot_h * n / top_value
        y = HEIGHT - BOTTOM - h
        body += [
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{band - 10:.1f}" height="{h:.1f}" '
            f'fill="#0072B2"><title>{escape(label)}: {n}</title></rect>',
            f'<text x="{x + band / 2 - 5:.1f}" y="{y - 3:.1f}" text-anchor="middle" '
            f'data-figure="{chart_id}-{escape(label)}">{n}</text>',
            f'<text x="{x + band / 2 - 5:.1f}" y="{HEIGHT - BOTTOM + 14}" '
            f'text-anchor="middle">{escape(label)}</text>',
        ]
    return body


def _decision_histogram(report: Report) -> str:
    if not report.decision_times:
        return "<p>No approval decided.</p>"
    labels = [label for _, label in BUCKETS]
    counts = _bucket_counts(report.decision_times)
    summary = "; ".join(f"{label}: {n}" for label, n in zip(labels, counts, strict=True))
    return (
        "<figure>"
        + _svg(
            "chart-decisions",
            "Time from an approval request to its decision",
            f"Approvals decided, by time taken (wall-clock). {summary}.",
            _vertical_bars("decisions", labels, counts),
        )
        + f"<figcaption>{len(report.decision_times)} approvals decided, by time from request "
        "to decision.</figcaption></figure>"
    )


def _breaches_chart(report: Report) -> str:
    clocks = report.clocks
    if not clocks:
        return "<p>No SLA clock ran.</p>"
    row_h = 28
    height = TOP + row_h * len(clocks) + 8
    top_value = max(max(c.breached for c in clocks), 1)
    label_w = 260
    span = WIDTH - label_w - 60
    body = [f'<line x1="{label_w}" y1="{TOP - 4}" x2="{label_w}" y2="{height - 8}" stroke="#888"/>']
    for i, c in enumerate(clocks):
        y = TOP + i * row_h
        w = span * c.breached / top_value
        name = f"{c.procedure} / {c.clock}"
        body += [
            f'<text x="{label_w - 6}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">'
            f"{escape(name)}</text>",
            f'<rect class="bar" x="{label_w}" y="{y + 3:.1f}" width="{w:.1f}" '
            f'height="{row_h - 6:.1f}" fill="#D55E00"><title>{escape(name)}: '
            f"{c.breached} breached of {c.runs}</title></rect>",
            f'<text x="{label_w + w + 6:.1f}" y="{y + row_h / 2 + 4:.1f}" '
            f'data-figure="breaches-{escape(c.procedure)}-{escape(c.clock)}">{c.breached}</text>',
        ]
    summary = "; ".join(f"{c.procedure} {c.clock}: {c.breached} of {c.runs}" for c in clocks)
    return (
        "<figure>"
        + _svg(
            "chart-breaches", "SLA breaches per clock", f"Breached runs. {summary}.", body, height
        )
        + "<figcaption>Runs of each SLA clock that passed their due time.</figcaption></figure>"
    )


def _clocks_table(report: Report) -> str:
    return _table(
        ("Procedure", "Clock", "Runs", "On time", "Breached", "Running"),
        [
            (c.procedure, c.clock, _n(c.runs, f"clock-{c.procedure}-{c.clock}-runs"),
             _n(c.on_time, f"clock-{c.procedure}-{c.clock}-on-time"),
             _n(c.breached, f"clock-{c.procedure}-{c.clock}-breached"),
             _n(c.running, f"clock-{c.procedure}-{c.clock}-running"))
            for c in report.clocks
        ],
        "SLA clocks: runs stopped in time, breached and still running",
    )  # fmt: skip


def _follow_ups(report: Report) -> str:
    f = report.follow_ups
    return _table(
        ("On time", "Late", "Pending", "On-time ratio", "Measured by clock", "By audit trail"),
        [
            (_n(f.on_time, "follow-ups-on-time"), _n(f.late, "follow-ups-late"),
             _n(f.pending, "follow-ups-pending"), _n(ratio(f.on_time_ratio), "follow-ups-ratio"),
             _n(f.from_clocks, "follow-ups-clocks"), _n(f.from_audit, "follow-ups-audit"))
        ],
        "Complaints followed up within 24 hours",
    )  # fmt: skip


def _exceptions(report: Report) -> str:
    listed = _table(
        ("Case", "Procedure", "Rule", "Status", "Amount", "Decided by",
         f"Decided ({report.timezone})"),
        [
            (e.case_id, e.procedure, e.rule, e.status, money(e.amount, report.currency),
             e.decided_by or "-", f"{e.decided_at:%Y-%m-%d %H:%M}" if e.decided_at else "-")
            for e in report.exceptions
        ],
        "Exceptions to written rules asked of an approver",
    )  # fmt: skip
    granted = _table(
        ("Granted by", "Rule", "Exceptions"),
        [
            (g.decided_by, g.rule, _n(g.granted, f"granted-{g.decided_by}-{g.rule}"))
            for g in report.exceptions_granted
        ],
        "Exceptions granted, by approver",
    )
    return listed + ("" if not report.exceptions_granted else granted)


def _reasons(report: Report) -> str:
    return _table(
        ("Procedure", "Reason", "Cases"),
        [
            (r.procedure, r.reason, _n(r.cases, f"reason-{r.procedure}-{r.reason}"))
            for r in report.reasons
        ],
        "Cancellation, return and complaint reasons",
    )


def _vip(report: Report) -> str:
    return _table(
        ("Case", "Procedure", "Customer", "Status", f"Opened ({report.timezone})", "Amount"),
        [
            (v.case_id, v.procedure, v.customer_id, v.status,
             f"{v.opened_at:%Y-%m-%d %H:%M}", money(v.amount, report.currency))
            for v in report.vip
        ],
        "Cases of VIP customers",
    )  # fmt: skip

"""A bench's result: the numbers of its three runs, the ratios, the targets met or missed.

Written as ``bench/results/<date>-<database>.json`` (``<date>`` is the UTC start, to the
second, so several runs a day are kept apart) and the same again as a Markdown table in the
``.md`` next to it. The files are records kept in the repository: docs/benchmark.md quotes
them.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import rush
from bench.load import Case, Run
from bench.rush import Round

SCHEMA = 2  # 2: rounds, the ratios their medians
KINDS = ("baseline", "minimal", "refund")


@dataclass(frozen=True)
class Targets:
    """Issue 8's targets; each a flag of ``python -m bench`` so a run can be held to others."""

    min_throughput_ratio: float = 0.8  # refund cases/s over the baseline's
    max_p95_ratio: float = 1.5  # refund p95 over the baseline's
    max_peak_rss_mb: float = 300.0  # the refund worker process
    max_activities_under_500: float | None = None  # mean per refund; off unless given


def spread(values: list[int]) -> dict[str, float] | None:
    if not values:
        return None
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}


def per_case(done: list[Case], count: Callable[[Case], int]) -> dict[str, Any]:
    """A count per case (activities, history events), for each side of the threshold."""
    return {
        "under_500": spread([count(c) for c in done if not c.needs_manager]),
        "over_500": spread([count(c) for c in done if c.needs_manager]),
    }


def summarize(run: Run, cases: int) -> dict[str, Any]:
    return {
        "cases": cases,
        "completed": run.completed,
        "seconds": run.seconds,
        "throughput": run.throughput,
        "p50": run.percentile(50),
        "p95": run.percentile(95),
        "max": max(c.seconds for c in run.done),
        "peak_rss_mb": run.peak_rss_mb,
        "decisions_resent": run.decisions_resent,
        "activities_per_case": per_case(run.done, lambda c: c.activities),
        "history_events_per_case": per_case(run.done, lambda c: c.events),
        # Cores used on average during the timed window (the machine has conditions.cpus).
        "cpu_cores": {"bench": run.cpu_usage.ours, "others": run.cpu_usage.others},
        # CPU time per case, of the worker and of the whole bench (client, dev server, worker):
        # what a case costs, whoever else was running.
        "worker_cpu_ms_per_case": run.cpu_usage.process_seconds * 1000 / run.completed,
        "bench_cpu_ms_per_case": run.cpu_usage.ours * run.seconds * 1000 / run.completed,
        "load_average_after": list(run.load_average_after),
    }


def combine(runs: list[Run], cases: int) -> dict[str, Any]:
    """One kind over every round: the median of each speed and cost, the worst tail and
    memory, and every case's activities and events."""
    each = [summarize(run, cases) for run in runs]
    done = [c for run in runs for c in run.done]

    def median(value: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(value(one) for one in each)

    return {
        "cases": cases,
        "rounds": len(runs),
        "completed": len(done),
        "seconds": sum(run.seconds for run in runs),
        "throughput": median(lambda one: one["throughput"]),
        "p50": median(lambda one: one["p50"]),
        "p95": median(lambda one: one["p95"]),
        "max": max(c.seconds for c in done),
        "peak_rss_mb": max(run.peak_rss_mb for run in runs),
        "decisions_resent": sum(run.decisions_resent for run in runs),
        "activities_per_case": per_case(done, lambda c: c.activities),
        "history_events_per_case": per_case(done, lambda c: c.events),
        "cpu_cores": {
            "bench": median(lambda one: one["cpu_cores"]["bench"]),
            "others": median(lambda one: one["cpu_cores"]["others"]),
        },
        "worker_cpu_ms_per_case": median(lambda one: one["worker_cpu_ms_per_case"]),
        "bench_cpu_ms_per_case": median(lambda one: one["bench_cpu_ms_per_case"]),
        "load_average_after": each[-1]["load_average_after"],
    }


def ratios_of(measured: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The refund against the two bare workflows, from runs of one round."""
    refund, baseline, minimal = measured["refund"], measured["baseline"], measured["minimal"]
    return {
        "throughput_vs_baseline": refund["throughput"] / baseline["throughput"],
        "p95_vs_baseline": refund["p95"] / baseline["p95"],
        "throughput_vs_minimal": refund["throughput"] / minimal["throughput"],
        "p95_vs_minimal": refund["p95"] / minimal["p95"],
        "worker_cpu_per_case_vs_baseline": (
            refund["worker_cpu_ms_per_case"] / baseline["worker_cpu_ms_per_case"]
        ),
        "bench_cpu_per_case_vs_baseline": (
            refund["bench_cpu_ms_per_case"] / baseline["bench_cpu_ms_per_case"]
        ),
    }


def build(
    *,
    rounds: list[dict[str, Run]],
    cases: int,
    in_flight: int,
    database: str,
    started_at: datetime,
    label: str,
    targets: Targets,
    conditions: dict[str, Any],
    rush_rounds: list[Round] | None = None,
) -> dict[str, Any]:
    each_round = [{kind: summarize(runs[kind], cases) for kind in KINDS} for runs in rounds]
    round_ratios = [ratios_of(measured) for measured in each_round]
    # Each ratio compares runs of one round (minutes apart); the median of those is the
    # figure held to the targets.
    ratios = {
        name: statistics.median(one[name] for one in round_ratios) for name in round_ratios[0]
    }
    measured = {kind: combine([runs[kind] for runs in rounds], cases) for kind in KINDS}
    refund = measured["refund"]

    def met(name: str, ok: Callable[[float], bool]) -> int:
        return sum(1 for one in round_ratios if ok(one[name]))

    def faster(ratio: float) -> bool:
        return ratio >= targets.min_throughput_ratio

    def shorter(ratio: float) -> bool:
        return ratio <= targets.max_p95_ratio

    checks = [
        check(
            f"refund throughput >= {targets.min_throughput_ratio:.2f}x the baseline's",
            ratios["throughput_vs_baseline"],
            faster(ratios["throughput_vs_baseline"]),
            met("throughput_vs_baseline", faster),
        ),
        check(
            f"refund p95 latency <= {targets.max_p95_ratio:.2f}x the baseline's",
            ratios["p95_vs_baseline"],
            shorter(ratios["p95_vs_baseline"]),
            met("p95_vs_baseline", shorter),
        ),
        check(
            f"refund worker peak RSS <= {targets.max_peak_rss_mb:.0f} MB",
            refund["peak_rss_mb"],
            refund["peak_rss_mb"] <= targets.max_peak_rss_mb,
        ),
    ]
    under_500 = refund["activities_per_case"]["under_500"]
    if targets.max_activities_under_500 is not None and under_500 is not None:
        checks.append(
            check(
                f"activities per refund under 500.00 <= {targets.max_activities_under_500:g}",
                under_500["mean"],
                under_500["mean"] <= targets.max_activities_under_500,
            )
        )
    return {
        "schema": SCHEMA,
        "started_at": started_at.isoformat(timespec="seconds"),
        "label": label,
        "database": database,
        "load": {
            "cases": cases,
            "in_flight": in_flight,
            "needs_manager": "every other case: 750.00 approved by update; the others 400.00",
            "rounds": len(rounds),
        },
        "conditions": conditions,
        "runs": measured,
        "ratios": ratios,
        "rounds": [
            {"order": list(runs), "runs": one, "ratios": ratios_in}
            for runs, one, ratios_in in zip(rounds, each_round, round_ratios, strict=True)
        ],
        # Reported, not checked: the VIP rush's latency behind a backlog (None when left out).
        "rush_priority": rush.summarize(rush_rounds) if rush_rounds else None,
        "targets": checks,
        "ok": all(c["ok"] for c in checks),
    }


def check(target: str, measured: float, ok: bool, rounds_met: int | None = None) -> dict[str, Any]:
    """A target, its measure, and for a ratio how many rounds met it on their own."""
    checked: dict[str, Any] = {"target": target, "measured": measured, "ok": ok}
    if rounds_met is not None:
        checked["rounds_met"] = rounds_met
    return checked


def file_stem(started_at: datetime, database: str) -> str:
    return f"{started_at.strftime('%Y-%m-%dT%H%M%SZ')}-{database}"


def write(result: dict[str, Any], directory: Path, stem: str) -> Path:
    """The JSON and its Markdown table; returns the JSON's path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}.json"
    path.write_text(json.dumps(_rounded(result), indent=2) + "\n")
    path.with_suffix(".md").write_text(markdown(result))
    return path


def _rounded(value: Any) -> Any:
    """Four decimals are more than any of these numbers means; the files stay readable."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def markdown(result: dict[str, Any]) -> str:
    load, conditions, runs = result["load"], result["conditions"], result["runs"]
    label = f" ({result['label']})" if result["label"] else ""
    load_before = "/".join(f"{x:.1f}" for x in conditions["load_average_before"])
    lines = [
        f"# Bench {result['started_at']}, {result['database']}{label}",
        "",
        f"{load['cases']} cases per run, {load['in_flight']} in flight, {load['needs_manager']}. "
        f"{_rounds_said(load.get('rounds', 1))}",
        f"Commit {conditions['commit']}, {conditions['cpus']} CPUs, load average before "
        f"{load_before} (1/5/15 min), Temporal dev server in memory. CPU: cores used on "
        "average during each run by the bench's processes and by everything else.",
        "",
        "| run | cases/s | p50 s | p95 s | activities < 500 | activities > 500 "
        "| worker CPU ms/case | peak RSS MB | CPU: bench / others |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind in KINDS:
        r = runs[kind]
        per_case = r["activities_per_case"]
        lines.append(
            f"| {kind} | {r['throughput']:.1f} | {r['p50']:.2f} | {r['p95']:.2f} "
            f"| {_mean(per_case['under_500'])} | {_mean(per_case['over_500'])} "
            f"| {r['worker_cpu_ms_per_case']:.0f} | {r['peak_rss_mb']:.0f} "
            f"| {r['cpu_cores']['bench']:.2f} / {r['cpu_cores']['others']:.2f} |"
        )
    ratios = result["ratios"]
    lines += [
        "",
        "| refund against | throughput | p95 latency |",
        "| --- | ---: | ---: |",
        f"| baseline (today's shape) | {ratios['throughput_vs_baseline']:.2f}x "
        f"| {ratios['p95_vs_baseline']:.2f}x |",
        f"| minimal (the limit we are chasing) | {ratios['throughput_vs_minimal']:.2f}x "
        f"| {ratios['p95_vs_minimal']:.2f}x |",
        "",
        f"Per case, the refund takes {ratios['worker_cpu_per_case_vs_baseline']:.2f}x the "
        f"baseline's CPU time in the worker and {ratios['bench_cpu_per_case_vs_baseline']:.2f}x "
        "in the whole bench (client, dev server, worker). Decisions sent again after 15 s "
        f"without an answer (the worker saturated): {runs['refund']['decisions_resent']}.",
        "",
        *_round_lines(result.get("rounds", [])),
        *_rush_lines(result.get("rush_priority")),
        "| target | measured | |",
        "| --- | ---: | --- |",
    ]
    for c in result["targets"]:
        rounds = len(result.get("rounds", []))
        met = f" (met in {c['rounds_met']} of {rounds} rounds)" if "rounds_met" in c else ""
        lines.append(
            f"| {c['target']} | {c['measured']:.2f} | {'ok' if c['ok'] else 'MISSED'}{met} |"
        )
    return "\n".join(lines) + "\n"


def _rounds_said(rounds: int) -> str:
    if rounds == 1:
        return "One round."
    return (
        f"{rounds} rounds, each running the three in turn; a run's figures are the medians of "
        "its rounds (the worst tail and peak memory), each ratio the median of the rounds' own."
    )


def _round_lines(rounds: list[dict[str, Any]]) -> list[str]:
    if len(rounds) < 2:
        return []
    lines = [
        "| round | order | refund throughput vs baseline | p95 vs baseline "
        "| worker CPU per case vs baseline |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for number, one in enumerate(rounds, start=1):
        ratios = one["ratios"]
        lines.append(
            f"| {number} | {', '.join(one['order'])} | {ratios['throughput_vs_baseline']:.2f}x "
            f"| {ratios['p95_vs_baseline']:.2f}x "
            f"| {ratios['worker_cpu_per_case_vs_baseline']:.2f}x |"
        )
    return [*lines, ""]


def _rush_lines(measured: dict[str, Any] | None) -> list[str]:
    if measured is None:
        return []
    with_, without = measured["priority"], measured["no_priority"]
    return [
        f"A VIP rush order started behind {measured['backlog']} standard refunds on a worker "
        f"running {measured['worker']}: from its start to `awaiting_customer` (quote sent).",
        "",
        "| VIP rush | seconds to awaiting_customer | refunds completed before it |",
        "| --- | ---: | ---: |",
        f"| with priority (as built) | {with_['seconds_to_awaiting_customer']:.2f} "
        f"| {with_['refunds_completed_before']} |",
        f"| without priority | {without['seconds_to_awaiting_customer']:.2f} "
        f"| {without['refunds_completed_before']} |",
        "",
        f"Priority makes the VIP rush {measured['latency_without_vs_with']:.1f}x faster "
        "(latency without / with).",
        "",
    ]


def _mean(values: dict[str, float] | None) -> str:
    return "-" if values is None else f"{values['mean']:.1f}"

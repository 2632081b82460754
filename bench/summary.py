"""``python -m bench.summary FILE...``: several results of one database as one Markdown table.

Each figure is the median of the runs with their range (min-max), the way docs/benchmark.md
shows a before and an after.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Result = dict[str, Any]


def figure(values: list[float], digits: int) -> str:
    """Median (min-max); a figure some results lack says over how many runs it is."""
    known = [v for v in values if not math.isnan(v)]
    if not known:
        return "-"
    median = statistics.median(known)
    text = f"{median:.{digits}f}"
    if len(known) > 1:
        text += f" ({min(known):.{digits}f}-{max(known):.{digits}f})"
    return text if len(known) == len(values) else f"{text}, {len(known)} runs"


def table(results: list[Result]) -> str:
    databases = sorted({r["database"] for r in results})
    if len(databases) != 1:
        raise SystemExit(f"one database at a time, got {databases}")

    def row(name: str, value: Callable[[Result], float], digits: int = 2) -> str:
        return f"| {name} | {figure([value(r) for r in results], digits)} |"

    def run(kind: str, key: str) -> Callable[[Result], float]:
        return lambda r: float(r["runs"][kind][key])

    def activities(band: str) -> Callable[[Result], float]:
        return lambda r: float(r["runs"]["refund"]["activities_per_case"][band]["mean"])

    def worker_cpu(kind: str) -> Callable[[Result], float]:
        # Results written before the bench measured it have none: NaN keeps them in the table.
        return lambda r: float(r["runs"][kind].get("worker_cpu_ms_per_case", "nan"))

    def bench_cpu(kind: str) -> Callable[[Result], float]:
        def per_case(r: Result) -> float:
            run = r["runs"][kind]
            return float(run["cpu_cores"]["bench"] * run["seconds"] * 1000 / run["completed"])

        return per_case

    def others(kind: str) -> Callable[[Result], float]:
        return lambda r: float(r["runs"][kind]["cpu_cores"]["others"])

    lines = [
        f"{databases[0]}, {len(results)} runs: median (min-max)",
        "",
        "| measure | value |",
        "| --- | ---: |",
        row("refund throughput / baseline", lambda r: float(r["ratios"]["throughput_vs_baseline"])),
        row("refund p95 latency / baseline", lambda r: float(r["ratios"]["p95_vs_baseline"])),
        row("refund throughput / minimal", lambda r: float(r["ratios"]["throughput_vs_minimal"])),
        row("refund p95 latency / minimal", lambda r: float(r["ratios"]["p95_vs_minimal"])),
        row("baseline cases/s", run("baseline", "throughput"), 1),
        row("minimal cases/s", run("minimal", "throughput"), 1),
        row("refund cases/s", run("refund", "throughput"), 1),
        row("baseline p95 s", run("baseline", "p95")),
        row("refund p95 s", run("refund", "p95")),
        row("activities per refund under 500.00", activities("under_500"), 1),
        row("activities per refund over 500.00", activities("over_500"), 1),
        row("baseline worker CPU ms per case", worker_cpu("baseline"), 0),
        row("refund worker CPU ms per case", worker_cpu("refund"), 0),
        row(
            "baseline bench CPU ms per case (client, dev server, worker)", bench_cpu("baseline"), 0
        ),
        row("minimal bench CPU ms per case", bench_cpu("minimal"), 0),
        row("refund bench CPU ms per case", bench_cpu("refund"), 0),
        row("refund worker peak RSS MB", run("refund", "peak_rss_mb"), 0),
        row("others' CPU during the baseline, cores", others("baseline")),
        row("others' CPU during the refund, cores", others("refund")),
        "",
        "targets met: "
        + ", ".join(
            f"{sum(1 for r in results if r['targets'][i]['ok'])}/{len(results)} {t['target']}"
            for i, t in enumerate(results[0]["targets"])
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.summary", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path, help="bench/results/*.json of one database")
    args = parser.parse_args(argv)
    try:
        results = [json.loads(path.read_text()) for path in args.files]
    except (OSError, ValueError) as err:
        parser.error(f"cannot read a result: {err}")
    print(table(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

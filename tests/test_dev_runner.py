"""``make run`` (``python -m starter dev``) as a user runs it, on ports of its own."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from tests.devstack import DevStack, alive, port_open
from tests.metrics_helpers import scrape, scraped_until


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DevStack]:
    """A runner on free ports, stopped (and its dev server with it) when the test ends."""
    stack = DevStack.on_free_ports(tmp_path / "var")
    yield stack
    if stack.process is not None and stack.process.poll() is None:
        stack.interrupt()
    pid_file = stack.var_dir / "temporal.pid"
    if pid_file.exists():  # a test that killed the runner leaves its server to us
        pid = stack.dev_server_pid()
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def wait_for(probe: object, seconds: float = 30) -> None:
    assert callable(probe)
    deadline = time.monotonic() + seconds
    while not probe():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.2)


async def test_make_run_on_other_ports_serves_everything_there(stack: DevStack) -> None:
    await asyncio.to_thread(stack.start)
    banner = stack.output()
    assert f"http://127.0.0.1:{stack.ui_port}" in banner
    # Approvers decide in My work; the retired approvals page is not offered.
    assert f"{stack.api}/work" in banner and "/approvals" not in banner
    # Who is who: each demo token with its role and what it may do, and the limits in force.
    assert re.search(r"sup-sam +supervisor +decides approvals up to 1000.00 USD +cw_", banner)
    assert re.search(r"warehouse-wes +warehouse +receives and inspects returns +cw_", banner)
    assert "refunds over 500.00 USD (REFUND_APPROVAL_ABOVE)" in banner
    async with httpx.AsyncClient(base_url=stack.api) as http:
        ready = await http.get("/readyz")
    assert ready.json()["checks"] == {"temporal": "ok", "database": "ok"}

    # The second terminal: the CLI finds the dev server on DEV_SERVER_PORT, the worker runs it.
    started = await asyncio.to_thread(
        stack.run,
        "python -m starter refund --order ORD-1002 --customer C-100 --amount 20.00 "
        "--reason late --requested-by agent-amy --request-id port-1",
    )
    assert started.returncode == 0, started.stderr
    status = ""
    for _ in range(100):
        status = (
            await asyncio.to_thread(stack.run, "python -m starter status refund-port-1")
        ).stdout
        if "completed" in status.splitlines()[0]:
            break
        await asyncio.sleep(0.2)
    assert status.splitlines()[0] == "refund-port-1  refund  completed"

    # The banner names both metrics endpoints; the worker's counted the case.
    worker_metrics = f"http://127.0.0.1:{stack.env['WORKER_METRICS_PORT']}/metrics"
    assert worker_metrics in banner and f"{stack.api}/metrics" in banner
    worker = await scraped_until(
        worker_metrics,
        lambda s: s.value("casework_cases_closed", procedure="refund", outcome="completed") == 1,
    )
    assert worker.value("casework_cases_opened", procedure="refund") == 1
    api = await scrape(f"{stack.api}/metrics")
    assert api.value("casework_api_requests", route="/readyz", status="200") == 1


async def test_the_cli_names_the_address_it_tried(stack: DevStack) -> None:
    result = await asyncio.to_thread(stack.run, "python -m starter status refund-x")
    assert result.returncode == 3
    assert f"cannot reach Temporal at 127.0.0.1:{stack.temporal_port}" in result.stderr


async def test_a_dev_server_left_by_a_killed_runner_is_stopped_by_the_next_run(
    stack: DevStack,
) -> None:
    await asyncio.to_thread(stack.start)
    orphan = stack.dev_server_pid()
    stack.kill()
    assert alive(orphan) and port_open(stack.temporal_port)

    await asyncio.to_thread(stack.start)
    assert f"stopped the dev server an earlier run left behind (pid {orphan})" in stack.output()
    assert not alive(orphan)
    successor = stack.dev_server_pid()
    assert successor != orphan and alive(successor)

    assert stack.interrupt() == 0
    assert not alive(successor)
    assert not port_open(stack.temporal_port)
    assert not (stack.var_dir / "temporal.pid").exists()


async def test_a_port_held_by_another_program_is_refused_naming_it(stack: DevStack) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", stack.temporal_port))
        squatter.listen()
        process = stack.launch()
        status = await asyncio.to_thread(process.wait, 60)
    assert status != 0
    assert (
        f"port {stack.temporal_port} (DEV_SERVER_PORT) is already in use by another program"
        in stack.output()
    )


async def test_a_taken_worker_metrics_port_is_refused_naming_it(stack: DevStack) -> None:
    port = int(stack.env["WORKER_METRICS_PORT"])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        process = stack.launch()
        status = await asyncio.to_thread(process.wait, 60)
    assert status != 0
    assert f"port {port} (WORKER_METRICS_PORT) is already in use by another program" in (
        stack.output()
    )


async def test_make_run_encrypts_with_a_key_of_its_own_and_gives_the_web_ui_its_codec(
    stack: DevStack,
) -> None:
    await asyncio.to_thread(stack.start)
    banner = stack.output()
    key_file = stack.var_dir / "codec-keys.json"
    endpoint = f"http://127.0.0.1:{stack.api_port}/codec"

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # created on the first run
    assert f"Codec endpoint   {endpoint}" in banner
    assert f"Payload keys     {key_file}" in banner
    async with httpx.AsyncClient() as http:
        ui_settings = (await http.get(f"http://127.0.0.1:{stack.ui_port}/api/v1/settings")).json()
        preflight = await http.options(
            f"{endpoint}/decode",
            headers={
                "Origin": f"http://127.0.0.1:{stack.ui_port}",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            },
        )
    assert ui_settings["Codec"]["Endpoint"] == endpoint
    assert preflight.status_code == 200

    # A case started from the second terminal is stored encrypted under the file's key; the
    # CLI, reading the same file, still shows it.
    started = await asyncio.to_thread(
        stack.run,
        "python -m starter refund --order ORD-1002 --customer C-100 --amount 20.00 "
        "--reason 'late, call 512 555 0100' --requested-by agent-amy --request-id codec-1",
    )
    assert started.returncode == 0, started.stderr
    plain = await Client.connect(f"127.0.0.1:{stack.temporal_port}")
    history = await plain.get_workflow_handle("refund-codec-1").fetch_history()
    [payload] = history.events[0].workflow_execution_started_event_attributes.input.payloads
    assert payload.metadata["encryption-key-id"] == b"dev-1"
    assert b"555 0100" not in b"".join(e.SerializeToString() for e in history.events)
    status = await asyncio.to_thread(stack.run, "python -m starter status refund-codec-1")
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("refund-codec-1  refund  ")

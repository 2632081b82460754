"""The README's walkthrough, run as written against a fresh ``make run`` on free ports.

How it works (adapt it here when the README changes):

- ``readme_blocks()`` takes every fenced block that follows a ``<!-- readme-test -->`` line in
  README.md, in order (the marker is invisible on GitHub). Unmarked blocks (``make run``,
  production exports) are not run.
- ``sh`` blocks: each command (a line, with its ``\\`` continuations) runs in ONE bash session,
  so a variable set by one command (``RA=$(...)``) is there for the next, in the environment
  of the user's second terminal (``DevStack.env``: DEV_SERVER_PORT..., no TEMPORAL_ADDRESS,
  the venv's ``python`` first on PATH, the repository as working directory). Every command
  must exit 0.
- ``python`` blocks (written for ``python -m asyncio``, with top-level ``await``) are wrapped
  in ``async def main()`` and run as one command of that session.
- Between commands the test waits until the stack is idle: no open workflow has a workflow
  task or an activity pending. That is a person's pace (each command sees the effect of the
  one before), but nothing is retried, so a command that is wrong as written still fails.
- At the end the cases the walkthrough opened are checked where they must have ended.
"""

from __future__ import annotations

import asyncio
import queue
import re
import subprocess
import textwrap
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import Client

from starter import case_state
from tests.devstack import ROOT, DevStack
from workflows.complaint_models import ComplaintState
from workflows.models import CaseStatus, RefundMethod
from workflows.rush_models import RushState

MARKER = "<!-- readme-test -->"


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int  # where it starts in README.md, for failure messages


def readme_blocks(readme: Path = ROOT / "README.md") -> list[Block]:
    lines = readme.read_text().splitlines()
    blocks = []
    for number, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        fence = lines[number + 1]
        assert fence.startswith("```"), f"README.md:{number + 1}: {MARKER} must precede a fence"
        body = []
        for inner in lines[number + 2 :]:
            if inner.startswith("```"):
                break
            body.append(inner)
        blocks.append(Block(fence[3:].strip(), "\n".join(body), number + 3))
    return blocks


def commands(block: Block) -> Iterator[str]:
    """The block's commands: sh line by line (continuations joined), python as a whole."""
    if block.language == "python":
        program = "import asyncio\n\n\nasync def main() -> None:\n"
        program += textwrap.indent(block.text, "    ") + "\n\n\nasyncio.run(main())\n"
        yield f"python - <<'README_PYTHON'\n{program}README_PYTHON"
        return
    assert block.language == "sh", f"README.md:{block.line}: cannot run {block.language!r}"
    pending = ""
    for line in block.text.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        command = (pending + line).strip()
        pending = ""
        if command and not command.startswith("#"):
            yield command


class Shell:
    """One bash session, as a terminal keeps it: commands in order, their exit statuses."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def run(self, command: str, seconds: float = 120) -> tuple[int, str]:
        marker = f"__done_{uuid.uuid4().hex}__"
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command}\necho; echo {marker} $?\n")
        self.process.stdin.flush()
        output: list[str] = []
        while True:
            line = self.lines.get(timeout=seconds)
            if line.startswith(marker):
                return int(line.split()[1]), "".join(output).rstrip("\n")
            output.append(line)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=10)


async def idle(client: Client, seconds: float = 60) -> None:
    """Wait until no open workflow has a workflow task or an activity pending (twice running,
    for a case just started to show in visibility)."""
    deadline = asyncio.get_running_loop().time() + seconds
    quiet = 0
    while quiet < 2:
        busy = False
        async for execution in client.list_workflows("ExecutionStatus = 'Running'"):
            raw = (await client.get_workflow_handle(execution.id).describe()).raw_description
            if raw.pending_activities or raw.HasField("pending_workflow_task"):
                busy = True
                break
        quiet = 0 if busy else quiet + 1
        assert asyncio.get_running_loop().time() < deadline, "the stack never became idle"
        await asyncio.sleep(0.3)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DevStack]:
    stack = DevStack.on_free_ports(tmp_path / "var")
    stack.start()
    yield stack
    assert stack.interrupt() == 0


def test_the_readme_has_a_walkthrough_to_run() -> None:
    blocks = readme_blocks()
    assert [block.language for block in blocks] == ["sh", "sh", "sh", "sh", "sh", "python"]
    assert all(re.search(r"python -m starter", b.text) for b in blocks if b.language == "sh")


async def test_every_readme_walkthrough_command_works_as_written(stack: DevStack) -> None:
    client = await Client.connect(
        f"127.0.0.1:{stack.temporal_port}", data_converter=stack.data_converter()
    )
    shell = Shell(stack.env)
    try:
        for block in readme_blocks():
            for command in commands(block):
                status, output = await asyncio.to_thread(shell.run, command)
                assert status == 0, (
                    f"README.md:{block.line}: `{command}` exited {status}:\n{output}"
                )
                await idle(client)
    finally:
        shell.close()

    refund = await case_state(client, "refund-evt-1")
    assert (refund.status, refund.refund_method) == (
        CaseStatus.COMPLETED,
        RefundMethod.STORE_CREDIT,
    )
    assert (await case_state(client, "return-evt-2")).status is CaseStatus.COMPLETED
    complaint = await case_state(client, "complaint-evt-3", ComplaintState)
    assert complaint.replacement_order_id is not None
    assert complaint.qa_root_cause == "cold chain break in transit"
    rush = await case_state(client, "rush-evt-4", RushState)
    # Accepted: charged once and flagged (in transit already when accepted at the cut-off).
    assert rush.status in (CaseStatus.PRIORITY, CaseStatus.IN_TRANSIT)
    assert rush.fee == Decimal("55.00") and rush.charge_reference is not None
    assert (await case_state(client, "refund-py-1")).status is CaseStatus.COMPLETED

"""The workflow sandbox checks the code every procedure shares, not only the procedure's module.

A clock read or a random number in workflow code replays differently from how it first ran.
Temporal's sandbox refuses both, but only in modules it re-imports itself: a module imported
inside ``workflow.unsafe.imports_passed_through()`` (or listed as a pass-through module) runs
unchecked. So only models and pure helpers may pass through (``workflows.sandbox``); the
case base class, the approval gate and the refunding steps are imported normally.

``test_a_nondeterministic_call_in_shared_workflow_code_fails_the_workflow_task`` proves it on
today's code: it copies the ``workflows`` package, adds one forbidden call to a shared code
path, and replays a recorded refund (whose run goes through that path) against the copy in
a fresh interpreter with the production sandbox. The call must fail the workflow task with
the sandbox's error; had the module passed through, the replay would succeed silently.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.recorded_histories import ROOT as HISTORIES
from workflows import sandbox

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"

# A refund over the approval threshold (on the current path of every patch): it opens the
# case, waits at the gate, is approved by a signal and pays.
HISTORY = HISTORIES / "refund_approved_by_signal_with_code.json"

# Run in a fresh interpreter whose ``workflows`` package is the altered copy.
REPLAY = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from temporalio.client import WorkflowHistory
    from temporalio.worker import Replayer
    import workflows
    from infra.temporal import DATA_CONVERTER
    from workflows.refund import RefundWorkflow
    from workflows.sandbox import workflow_runner

    copy = Path(sys.argv[1]).resolve()
    assert Path(workflows.__file__).resolve().parent == copy / "workflows", workflows.__file__
    history = WorkflowHistory.from_json("sandbox-check", Path(sys.argv[2]).read_text())
    replayer = Replayer(
        workflows=[RefundWorkflow],
        data_converter=DATA_CONVERTER,
        workflow_runner=workflow_runner(),
    )
    result = asyncio.run(replayer.replay_workflow(history, raise_on_replay_failure=False))
    failure = result.replay_failure
    said = None if failure is None else f"{type(failure).__name__}: {failure}"
    print(json.dumps({"failure": said}))
    """
)

# (import, call, what the sandbox names when it refuses the call)
CLOCK = "from datetime import datetime as _wall_clock", "_wall_clock.now()", "datetime.datetime.now"
DICE = "import random as _dice", "_dice.random()", "random.random"

# (module, class, method) on the path of the recorded refund, and the call added there.
INJECTIONS = {
    "clock_in_case_open_case": ("case.py", "CaseWorkflow", "open_case", CLOCK),
    "random_in_case_open_case": ("case.py", "CaseWorkflow", "open_case", DICE),
    "random_in_gate_await_manager_decision": (
        "approval.py",
        "ApprovalGate",
        "await_manager_decision",
        DICE,
    ),
    "clock_in_refunding_issue_refund": ("refunding.py", "RefundingCase", "issue_refund", CLOCK),
}


def inject(source: str, cls: str, method: str, imports: str, call: str) -> str:
    """``source`` with ``call`` as the first statement of ``cls.method``."""
    tree = ast.parse(source)
    target = next(
        node
        for klass in tree.body
        if isinstance(klass, ast.ClassDef) and klass.name == cls
        for node in klass.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == method
    )
    first = target.body[0]
    lines = source.splitlines(keepends=True)
    lines.insert(first.lineno - 1, " " * first.col_offset + call + "\n")
    return "".join(lines) + "\n" + imports + "\n"


def replay_altered_copy(
    tmp_path: Path, alteration: tuple[str, str, str, tuple[str, str, str]] | None
) -> str | None:
    """Replay the recorded refund against a copy of ``workflows`` (altered); its failure."""
    shutil.copytree(WORKFLOWS, tmp_path / "workflows", ignore=shutil.ignore_patterns("__pycache__"))
    if alteration is not None:
        module, cls, method, (imports, call, _) = alteration
        path = tmp_path / "workflows" / module
        path.write_text(inject(path.read_text(), cls, method, imports, call))
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-c", REPLAY, str(tmp_path), str(HISTORY)],
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    failure: str | None = json.loads(done.stdout.strip().splitlines()[-1])["failure"]
    return failure


def test_the_unaltered_copy_replays(tmp_path: Path) -> None:
    """The harness itself: copying the package changes nothing."""
    assert replay_altered_copy(tmp_path, None) is None


@pytest.mark.parametrize("name", sorted(INJECTIONS))
def test_a_nondeterministic_call_in_shared_workflow_code_fails_the_workflow_task(
    tmp_path: Path, name: str
) -> None:
    failure = replay_altered_copy(tmp_path, INJECTIONS[name])

    assert failure is not None, f"{name}: the sandbox let the call run"
    forbidden = INJECTIONS[name][3][2]
    assert f"Cannot access {forbidden}" in failure, failure


def _passes_through(module: str) -> bool:
    """Whether the sandbox hands ``module`` in unchecked (it or a parent is on the list)."""
    return any(module == kept or module.startswith(f"{kept}.") for kept in sandbox.PASSED_THROUGH)


def _passed_through_imports(path: Path) -> list[str]:
    """Modules imported inside ``workflow.unsafe.imports_passed_through()`` blocks."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.With):
            continue
        if not any(
            "imports_passed_through" in ast.unparse(item.context_expr) for item in node.items
        ):
            continue
        for statement in ast.walk(node):
            if isinstance(statement, ast.ImportFrom) and statement.module:
                if statement.module == "workflows":
                    found += [f"workflows.{alias.name}" for alias in statement.names]
                else:
                    found.append(statement.module)
            elif isinstance(statement, ast.Import):
                found += [alias.name for alias in statement.names]
    return found


@pytest.mark.parametrize(
    "path",
    sorted([*WORKFLOWS.glob("*.py"), REPO / "tests" / "failing_workflows.py"]),
    ids=lambda p: p.name,
)
def test_workflow_modules_pass_through_only_models_and_pure_helpers(path: Path) -> None:
    unchecked = [module for module in _passed_through_imports(path) if not _passes_through(module)]

    assert unchecked == [], f"{path.name} hides workflow logic from the sandbox: {unchecked}"


def test_workflow_logic_is_not_a_pass_through_module() -> None:
    logic = ("case", "approval", "refunding", "refund", "returns", "complaints")

    assert [name for name in logic if _passes_through(f"workflows.{name}")] == []

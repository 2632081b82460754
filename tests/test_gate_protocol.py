"""The approval gate knows its case only through ``GatedCase``, not the case class.

The gate is one module with one job; a procedure that is not a ``CaseWorkflow`` subclass (or
a change to the base class) must not reach into it. mypy checks that ``CaseWorkflow``
provides the protocol; this checks that the gate asks for nothing more.
"""

from __future__ import annotations

import ast
from pathlib import Path

GATE = Path(__file__).resolve().parent.parent / "workflows" / "approval.py"


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_the_gate_does_not_import_the_case_class() -> None:
    assert not {m for m in imported_modules(GATE) if m.startswith("workflows.case")}

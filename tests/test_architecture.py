"""The dependency direction, read from the imports of every module (no code is run).

Entry points (worker.py, starter/, bench/, migrations/) -> registry -> workflows and
activities -> models and infra/. A lower layer importing a higher one is refused here, so a
shortcut taken today fails the suite instead of tangling the next procedure. Within tests/,
a specification (test_*.py) imports fixtures and helpers modules, never another specification.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "registry",
    "infra",
    "workflows",
    "activities",
    "starter",
    "bench",
    "migrations",
    "tests",
)
TOP_MODULES = ("worker", "settings")
# Who may import starter: the entry points themselves and their tests.
ENTRY_POINTS = ("starter", "bench", "tests")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {name: ROOT / f"{name}.py" for name in TOP_MODULES}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def imports_of(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, at any depth in the file (inside functions too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def top(name: str) -> str:
    return name.split(".")[0]


MODULES = _modules()
IMPORTS = {name: {top(i) for i in imports_of(path, name)} for name, path in MODULES.items()}


def layer(name: str) -> str:
    return top(name)


def offenders(importers: str | tuple[str, ...], forbidden: set[str]) -> dict[str, set[str]]:
    importers = (importers,) if isinstance(importers, str) else importers
    return {
        name: IMPORTS[name] & forbidden
        for name in MODULES
        if layer(name) in importers and IMPORTS[name] & forbidden
    }


def test_the_scan_sees_the_imports_it_checks() -> None:
    # Guards the guard: a scan that found nothing would pass every rule below.
    assert "workflows" in IMPORTS["registry"]
    assert "registry" in IMPORTS["worker"]
    assert "infra" in IMPORTS["starter"]
    assert {"workflows", "activities", "infra"} <= {layer(n) for n in MODULES}


def test_infra_imports_no_product_code() -> None:
    forbidden = {"workflows", "activities", "starter", "worker", "registry", "bench"}
    assert offenders("infra", forbidden) == {}


@pytest.mark.parametrize("package", ["workflows", "activities"])
def test_workflows_and_activities_never_import_the_entry_points(package: str) -> None:
    assert offenders(package, {"starter", "worker", "registry", "bench"}) == {}


def test_workflows_never_import_infra_or_io_libraries() -> None:
    # Workflow code runs in the sandbox: database and I/O modules have no place there
    # (activity classes are imported for their references; their modules do the I/O).
    assert offenders("workflows", {"infra", "sqlalchemy", "fastapi", "httpx"}) == {}


def test_only_entry_points_import_starter() -> None:
    outside = tuple(p for p in {layer(n) for n in MODULES} if p not in ENTRY_POINTS)
    assert offenders(outside, {"starter"}) == {}


def test_nothing_outside_the_tests_imports_them() -> None:
    # bench/ and the product run where tests/ is not shipped; a helper they need is product code.
    outside = tuple(p for p in {layer(n) for n in MODULES} if p != "tests")
    assert offenders(outside, {"tests"}) == {}


def test_specifications_never_import_one_another() -> None:
    # A specification reads on its own: what two of them share lives in a fixture
    # (tests/conftest.py) or a helpers module (tests/*_helpers.py), named for its job. Importing
    # another test_*.py would also run its module code and hand pytest its tests twice over.
    specifications = {name for name in MODULES if name.startswith("tests.test_")}
    imported = {name: imports_of(MODULES[name], name) for name in specifications}
    # Guards the guard: the scan sees a specification importing its helpers.
    assert "tests.case_helpers" in imported["tests.test_returns"]
    crossed = {
        name: sorted((names & specifications) - {name})
        for name, names in imported.items()
        if (names & specifications) - {name}
    }
    assert crossed == {}

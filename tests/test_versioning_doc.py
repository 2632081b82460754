"""docs/versioning.md lists exactly the patches the workflow code has.

A patch is removed on a schedule (30 days after it, and again after its deprecation): the
list is where that schedule is kept, so it must not miss one nor keep a removed one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "versioning.md"
PATCH_CALLS = {"patched", "deprecate_patch"}


def patches_in_code() -> set[str]:
    constants: dict[str, str] = {}
    used: list[ast.expr] = []
    for path in (REPO / "workflows").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                constants.update(
                    {t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)}
                )
        used += [
            call.args[0]
            for call in ast.walk(tree)
            if isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr in PATCH_CALLS
        ]
    ids = set()
    for arg in used:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            ids.add(arg.value)
        else:
            assert isinstance(arg, ast.Name), ast.unparse(arg)
            ids.add(constants[arg.id])
    return ids


def patches_in_doc() -> set[str]:
    listed = DOC.read_text().split("## Patches in force", 1)[1]
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", listed, flags=re.MULTILINE))


def test_the_versioning_page_lists_every_patch_in_the_code_and_no_other() -> None:
    code = patches_in_code()

    assert code, "no patch found in the code: the scan is broken"
    assert patches_in_doc() == code

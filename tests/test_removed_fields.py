"""A field dropped from a history model does not break the cases that recorded it.

Cases opened before the speculative rules (complaint settlements, freight claims, follow-up
times) were removed carry them in their histories: ``open_case`` returned them as the
case's ``CaseRules``. The history models ignore fields they don't know, so those histories
replay under today's code. This keeps the proof next to the removal: the recorded histories
do carry the fields, today's model does not, and they replay.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.recorded_histories import ROOT, Shelf, opening_rules
from workflows.models import CaseRules, CaseType
from workflows.refund import RefundWorkflow
from workflows.returns import ReturnWorkflow

REMOVED_RULES = {"complaint_settlement_above", "freight_claim_above", "follow_up_within"}
# "complaint" came back as a procedure of its own (issue 9), with its rules nested under
# CaseRules.complaint: the flat fields above stay removed, and ignored. "cancellation" came
# back the same way (issue 11: CancellationWorkflow, rules under CaseRules.cancellation).
REMOVED_CASE_TYPES = {"rush_order"}

SHELVES = [Shelf(ROOT, RefundWorkflow), Shelf(ROOT / "returns", ReturnWorkflow)]
RECORDED = [(shelf, path) for shelf in SHELVES for path in shelf.recorded()]


def test_the_removed_fields_are_gone_from_the_models() -> None:
    assert not REMOVED_RULES & set(CaseRules.model_fields)
    assert not REMOVED_CASE_TYPES & {member.value for member in CaseType}


def carries_removed_rules(shelf: Shelf, path: Path) -> bool:
    return set(opening_rules(shelf.load(path))) >= REMOVED_RULES


CARRYING = [(shelf, path) for shelf, path in RECORDED if carries_removed_rules(shelf, path)]


def test_recorded_histories_still_carry_the_removed_rules() -> None:
    """Keep one when histories are recorded again, for as long as a case from before the
    removal can be open (docs/versioning.md): it is the proof."""
    assert CARRYING, "no recorded history carries the removed rules any more"


@pytest.mark.parametrize(("shelf", "path"), CARRYING, ids=[path.stem for _, path in CARRYING])
async def test_a_history_carrying_removed_rules_still_replays(shelf: Shelf, path: Path) -> None:
    result = await shelf.replay(shelf.load(path))

    assert result.replay_failure is None

"""Recorded workflow histories: kept under ``tests/histories/``, replayed against today's code.

Shared by the replay specifications of every procedure (see ``test_replay.py`` for why they
exist and when a history may be recorded again).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.worker import Replayer, WorkflowReplayResult

from infra.codec import decode_message
from infra.temporal import DATA_CONVERTER
from settings import Settings
from workflows.models import CaseStatus, Outcome
from workflows.sandbox import workflow_runner

ROOT = Path(__file__).resolve().parent / "histories"


@dataclass(frozen=True)
class Shelf:
    """The recorded histories of one workflow, in one folder."""

    folder: Path
    workflow: type

    def recorded(self) -> list[Path]:
        return sorted(self.folder.glob("*.json"))

    def load(self, path: Path) -> WorkflowHistory:
        return WorkflowHistory.from_json(f"{path.stem}-replay", path.read_text())

    async def replay(self, history: WorkflowHistory) -> WorkflowReplayResult:
        replayer = Replayer(
            workflows=[self.workflow],
            data_converter=DATA_CONVERTER,
            workflow_runner=workflow_runner(),  # the worker's sandbox, pass-through list included
        )
        return await replayer.replay_workflow(history)

    async def check_fresh(
        self, scenario: str, handle: WorkflowHandle[Any, Any], final: CaseStatus
    ) -> None:
        """The case just run ends ``final`` and its history replays (kept when recording)."""
        outcome: Outcome = await handle.result()
        assert outcome.status is final
        history = await handle.fetch_history()

        result = await self.replay(history)

        assert result.replay_failure is None
        await self.keep_if_recording(scenario, history)

    async def keep_if_recording(self, scenario: str, history: WorkflowHistory) -> None:
        """With REPLAY_RECORD=1, store ``history`` as the scenario's recorded history,
        decrypted: a recording must stay readable (and replay) without the session's key."""
        if os.environ.get("REPLAY_RECORD") == "1":
            assert DATA_CONVERTER.payload_codec is not None
            for event in history.events:
                await decode_message(event, DATA_CONVERTER.payload_codec)
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{scenario}.json").write_text(history.to_json() + "\n")


def opening_rules(history: WorkflowHistory) -> dict[str, Any]:
    """The ``CaseRules`` the case's ``open_case`` activity returned, as recorded (JSON)."""
    scheduled = {
        event.event_id: event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            continue
        completed = event.activity_task_completed_event_attributes
        if scheduled[completed.scheduled_event_id] == "open_case":
            rules: dict[str, Any] = json.loads(completed.result.payloads[0].data)
            return rules
    raise AssertionError("the history never opened its case")


def rules_apart_from_defaults(overrides: dict[str, Any]) -> dict[str, Any]:
    """The case rules (JSON) that settings ``overrides`` change from the defaults."""
    default = Settings().case_rules().model_dump(mode="json")
    changed = Settings(**overrides).case_rules().model_dump(mode="json")
    return {key: value for key, value in changed.items() if default.get(key) != value}

"""The lot watch's entry: each complaint is reported to its lot's watch by signal-with-start.

One workflow per lot (id ``lot-<lot>``): signal-with-start starts it with the complaint when
none runs and only signals it when one does, atomically on the server, so complaints racing
on a lot all reach the same watch, which opens at most one recall review (docs/complaints.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client

from workflows.complaint_models import LotComplaint

LOT_WATCH_WORKFLOW = "LotWatchWorkflow"  # by name: activities never import workflow code


def lot_watch_id(lot: str) -> str:
    return f"lot-{lot}"


class LotActivities:
    def __init__(self, client: Client) -> None:
        self.client = client

    def all(self) -> list[Callable[..., Any]]:
        return [self.report_to_lot_watch]

    @activity.defn(name="report_to_lot_watch")
    async def report_to_lot_watch(self, complaint: LotComplaint) -> None:
        """Start the lot's watch with this complaint, or signal the running one with it."""
        await self.client.start_workflow(
            LOT_WATCH_WORKFLOW,
            complaint,
            id=lot_watch_id(complaint.lot),
            task_queue=activity.info().task_queue,
            start_signal="complaint",
            start_signal_args=[complaint],
        )

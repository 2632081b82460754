"""LotWatchWorkflow: Emergency Procedures, 'Product recall situations: follow the recall
protocol checklist' - complaints counted per lot across cases (docs/complaints.md).

Fed by signal-with-start (``activities.lots``). When LOT_ALERT_COMPLAINTS complaints on the
lot fall within LOT_ALERT_WINDOW, QA and Food Safety get one recall review with the linked
cases and the checklist; later complaints join the watch, not a second review. The watch ends
after a window with no complaint; a later one starts a new watch.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from workflows.complaint_models import LotComplaint, LotWatchState, RecallReview

ACTIVITY_TIMEOUT = timedelta(seconds=30)


@workflow.defn
class LotWatchWorkflow:
    @workflow.init
    def __init__(self, first: LotComplaint) -> None:
        self._lot = first.lot
        self._complaints: list[LotComplaint] = []
        self._review: RecallReview | None = None
        self._counted = 0  # complaints already weighed

    @workflow.signal(name="complaint")
    def complaint(self, complaint: LotComplaint) -> None:
        """A complaint on the lot; the same case reported twice (a retry) counts once."""
        if all(known.case_id != complaint.case_id for known in self._complaints):
            self._complaints.append(complaint)

    @workflow.query(name="state")
    def state(self) -> LotWatchState:
        return LotWatchState(
            lot=self._lot,
            complaints=tuple(c.case_id for c in self._complaints),
            review=self._review,
        )

    @workflow.run
    async def run(self, first: LotComplaint) -> LotWatchState:
        while True:
            try:
                await workflow.wait_condition(
                    lambda: len(self._complaints) > self._counted,
                    timeout=first.window,
                    timeout_summary="A quiet window ends the watch",
                )
            except TimeoutError:
                break
            self._counted = len(self._complaints)
            if self._review is None:
                await self.review_if_due(first)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    async def review_if_due(self, first: LotComplaint) -> None:
        """The recall review, once the window holds enough complaints on the lot."""
        since = workflow.now() - first.window
        recent = [c for c in self._complaints if c.at >= since]
        if len(recent) < first.threshold:
            return
        review = RecallReview(
            lot=self._lot,
            sku=recent[-1].sku,
            case_ids=tuple(c.case_id for c in recent),
            opened_at=workflow.now(),
        )
        self._review = review  # before the activity: a complaint meanwhile opens no second
        await workflow.execute_activity_method(
            CaseActivities.open_recall_review,
            review,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            summary=f"Recall review for lot {self._lot}",
        )

"""The baseline: a bare workflow shaped like a refund, with no-op activities.

Same number of activities before and after the decision as RefundWorkflow, the same kind of
wait (an update, with a timer), the same status search attribute; nothing else. What the
refund costs beyond this is the product's own work: database writes, templates, validation.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import visibility

# RefundWorkflow's activities: open, 3 audit lines, verify [, approvers, request email]
# | [approval line,] refund line, pay, confirmation email.
BEFORE_DECISION = 7
AFTER_DECISION = 4
WITHOUT_DECISION = 8


@activity.defn(name="bench_noop")
def noop(step: int) -> int:
    return step


@workflow.defn(name="BaselineWorkflow")
class BaselineWorkflow:
    def __init__(self) -> None:
        self._waiting = False
        self._decided = False

    @workflow.run
    async def run(self, needs_decision: bool) -> int:
        steps = 0
        for _ in range(BEFORE_DECISION if needs_decision else WITHOUT_DECISION):
            steps += await self._step(steps)
        if needs_decision:
            self._waiting = True
            workflow.upsert_search_attributes(
                [visibility.CASE_STATUS.value_set("awaiting_approval")]
            )
            await workflow.wait_condition(lambda: self._decided, timeout=timedelta(days=3))
            for _ in range(AFTER_DECISION):
                steps += await self._step(steps)
        return steps

    async def _step(self, step: int) -> int:
        await workflow.execute_activity(noop, step, start_to_close_timeout=timedelta(seconds=30))
        return 1

    @workflow.update(name="decide")
    async def decide(self, approver: str) -> str:
        self._decided = True
        return approver

    @decide.validator
    def _validate_decide(self, approver: str) -> None:
        if not self._waiting or self._decided:
            raise ApplicationError("no decision is pending", type="NoDecisionPending")

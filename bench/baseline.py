"""The bare workflows a refund is measured against, with no-op activities.

``BaselineWorkflow`` has today's refund shape: the same number of activities before and
after the decision as RefundWorkflow had when the bench was written, the same kind of wait
(an update, with a timer), the same status search attribute; nothing else. It stays that
shape on purpose, so that leaner bookkeeping shows as a better ratio. What the refund costs
beyond it is the product's own work: database writes, templates, validation.

``MinimalWorkflow`` is the limit: one activity per external effect (verify the order, pay,
send the email) around the same wait. Nothing a case does can cost less than this.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import visibility

# RefundWorkflow's activities when the bench was written (issue 8), kept fixed so the ratio
# shows what changes: open, 3 audit lines, verify [, approvers, request email]
# | [approval line,] refund line, pay, confirmation email.
BEFORE_DECISION = 7
AFTER_DECISION = 4
WITHOUT_DECISION = 8


@activity.defn(name="bench_noop")
def noop(step: int) -> int:
    return step


class BareWorkflow:
    """What both bare workflows share: a no-op step, and the wait for a ``decide`` update."""

    def __init__(self) -> None:
        self._waiting = False
        self._decided = False

    async def _step(self, step: int) -> int:
        await workflow.execute_activity(noop, step, start_to_close_timeout=timedelta(seconds=30))
        return 1

    async def _await_decision(self) -> None:
        self._waiting = True
        workflow.upsert_search_attributes([visibility.CASE_STATUS.value_set("awaiting_approval")])
        await workflow.wait_condition(lambda: self._decided, timeout=timedelta(days=3))

    @workflow.update(name="decide")
    async def decide(self, approver: str) -> str:
        self._decided = True
        return approver

    @decide.validator
    def _validate_decide(self, approver: str) -> None:
        if not self._waiting or self._decided:
            raise ApplicationError("no decision is pending", type="NoDecisionPending")


@workflow.defn(name="BaselineWorkflow")
class BaselineWorkflow(BareWorkflow):
    """Today's refund shape: 8 activities, or 7, the decision, and 4 more."""

    @workflow.run
    async def run(self, needs_decision: bool) -> int:
        steps = 0
        for _ in range(BEFORE_DECISION if needs_decision else WITHOUT_DECISION):
            steps += await self._step(steps)
        if needs_decision:
            await self._await_decision()
            for _ in range(AFTER_DECISION):
                steps += await self._step(steps)
        return steps


@workflow.defn(name="MinimalWorkflow")
class MinimalWorkflow(BareWorkflow):
    """Verify the order [, wait for the decision], pay, send the email: three activities."""

    @workflow.run
    async def run(self, needs_decision: bool) -> int:
        steps = await self._step(0)  # verify the order
        if needs_decision:
            await self._await_decision()
        steps += await self._step(steps)  # pay
        steps += await self._step(steps)  # send the email
        return steps

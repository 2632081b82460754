"""The rush order without task priority: the bench's "before" for priority (bench.rush).

``UnprioritizedRushWorkflow`` is ``RushOrderWorkflow`` with the one thing priority changes
taken out: its activities stay at the case's own priority once a VIP is found (the product
raises them to ``VIP_PRIORITY``). Started with ``Priority.default`` instead of the registry's
``RUSH.priority``, every task of the case then waits its turn with the standard cases'. Only
the bench's worker registers it; no real case runs it.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import Priority

from workflows.rush_orders import RushOrderWorkflow

with workflow.unsafe.imports_passed_through():
    from workflows.models import Outcome
    from workflows.rush_models import Availability, RushOrderRequest


@workflow.defn(name="UnprioritizedRushWorkflow")
class UnprioritizedRushWorkflow(RushOrderWorkflow):
    """A rush order whose tasks all run at the default priority."""

    @workflow.run
    async def run(self, request: RushOrderRequest) -> Outcome:
        return await super().run(request)

    async def check_availability(self) -> Availability:
        availability = await super().check_availability()
        self.activity_priority = Priority.default
        return availability

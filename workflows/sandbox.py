"""What workflow code may share with the worker unchecked: the sandbox's pass-through list.

Temporal runs workflow code in a sandbox that re-imports each workflow module and refuses a
clock read, ``random``, I/O and the like, so that a replay takes the same path as the first
run. A pass-through module is the worker's own copy, handed in unchecked (and not re-imported
for every run). So it must not contain workflow logic:

- models (``workflows.models`` and each procedure's ``workflows.*_models``, with
  ``workflows.calendar`` they embed) are pure data: they pass through, and one copy of
  each class keeps validation fast and ``isinstance`` simple;
- pure helpers (``workflows.policy``: thresholds and deadlines computed from their arguments;
  ``workflows.visibility``: search attribute keys) pass through;
- activity classes (``activities``) pass through: workflows only name their methods to
  schedule them (``workflow.execute_activity_method``), never run them, and their modules
  import the database and HTTP stacks, which the sandbox would refuse.

Everything else a workflow imports - the case base class, the approval gate, the refunding
steps, every procedure - is imported normally and checked. ``tests/test_sandbox.py`` holds
the workflow modules to this list.
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSED_THROUGH: tuple[str, ...] = (
    "workflows.models",
    "workflows.complaint_models",
    "workflows.return_models",
    "workflows.rush_models",
    "workflows.order_change_models",
    "workflows.billing_dispute_models",
    "workflows.cancellation_models",
    "workflows.freight_claim_models",
    "workflows.sla_models",
    "workflows.calendar",
    "workflows.policy",
    "workflows.visibility",
    "activities",
)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox every worker and replayer runs workflows in."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH)
    )

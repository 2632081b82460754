"""What a fault that ends a case means: whether it ends it, in words, and who must act.

Pure functions of the error (no workflow state), used by ``CaseWorkflow.needs_attention``.
"""

from __future__ import annotations

from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    RetryState,
    TemporalError,
)
from temporalio.exceptions import TimeoutError as ActivityTimeout

# Who is told, besides the CS manager, when a case stops on a fault: the department that owns
# the failing step (activity), and IT for faults in our own code or templates.
PROGRAMMING_FAULTS = "it_support"
STEP_OWNERS: dict[str, str] = {
    "issue_refund": "accounting",
    "reserve_refund": "accounting",
    "release_refund": "accounting",
    # A rush fee the gateway would not take for PAYMENT_RETRY_FOR.
    "charge_rush_fee": "accounting",
    # The cost of an order change the gateway would not take for PAYMENT_RETRY_FOR.
    "charge_order_change": "accounting",
    # Freight claims with the carrier are Accounting's to pursue (ext. 203).
    "file_claim": "accounting",
    "claim_status": "accounting",
}


def ends_the_case(error: Exception) -> bool:
    """Whether ``error``, escaping a procedure's ``run``, ends the case ``needs_attention``.

    Yes for every failure Temporal reports (an activity failing for good or out of retries, a
    timeout, an ApplicationError) and for every bug in workflow code (KeyError, TypeError...).
    Temporal's default for such a bug is to fail the workflow *task* and retry it forever,
    waiting for a fixed deploy: the case would sit at "refunding" with nobody told. A person
    can settle a case marked needs_attention; nobody sees a task retrying.

    No for Temporal's own errors saying this code cannot run this history (non-determinism,
    sandbox restrictions): recording anything then would issue commands the history does not
    have. Those keep failing the task, so that a fixed (or rolled back) deploy resumes the case
    where it was. Cancellation, continue-as-new and eviction are BaseExceptions and pass by.
    """
    return isinstance(error, FailureError) or not isinstance(error, TemporalError)


def describe_fault(error: Exception) -> tuple[str, dict[str, str], str | None]:
    """Why the case stopped, in words; facts for the audit line; the department to tell."""
    if isinstance(error, ActivityError):
        activity, cause = error.activity_type or "an activity", error.cause
        if isinstance(cause, ApplicationError):
            kind, message = cause.type or "ApplicationError", cause.message
        elif isinstance(cause, ActivityTimeout):
            kind = "Timeout"
            message = f"timed out ({cause.type.name.lower() if cause.type else 'timeout'})"
        else:
            kind, message = type(cause).__name__, str(cause or error)
        how = ""
        if error.retry_state is RetryState.MAXIMUM_ATTEMPTS_REACHED:
            how = " after its retries ran out"
        elif error.retry_state is RetryState.TIMEOUT:
            how = " after retrying for as long as allowed"
        owner = PROGRAMMING_FAULTS if kind == "ProgrammingError" else STEP_OWNERS.get(activity)
        detail = {"activity": activity, "error_type": kind}
        return f"{activity} failed{how}: {message}", detail, owner
    if isinstance(error, ApplicationError):
        kind = error.type or "ApplicationError"
        return f"{kind}: {error.message}", {"error_type": kind}, PROGRAMMING_FAULTS
    # A bug in workflow code: the exception's own words are the best description.
    kind = type(error).__name__
    return f"{kind}: {error}", {"error_type": kind}, PROGRAMMING_FAULTS

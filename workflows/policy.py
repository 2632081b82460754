"""The company's rules, as pure functions every procedure shares.

No I/O and no clock: inputs are the rules recorded with the case and instants taken from
the workflow, so the same case always reaches the same answers.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from workflows.models import ApproverDirectory, CaseRules, RefundMethod, StaffMember

REFUND_TIMELINES = {
    RefundMethod.STORE_CREDIT: "immediately",
    RefundMethod.ORIGINAL_PAYMENT: "within 5-10 business days",
}


def refund_needs_manager(amount: Decimal, rules: CaseRules) -> bool:
    """Manager Authorization Required: refunds *over* the threshold (500.00 itself does not)."""
    return amount > rules.refund_approval_above


def refund_timeline(method: RefundMethod) -> str:
    return REFUND_TIMELINES[method]


def may_approve(member: StaffMember, rules: CaseRules) -> bool:
    """A role allowed to approve, or someone standing in for such a person."""
    return member.role in rules.approval.approver_roles or member.acting_for is not None


def approver_refusal(
    directory: ApproverDirectory,
    approver_id: str,
    *,
    amount: Decimal,
    requested_by: str,
    rules: CaseRules,
) -> str | None:
    """Why ``approver_id`` may not decide this request, or None when they may."""
    member = next((m for m in directory.staff if m.id == approver_id), None)
    if member is None:
        return f"unknown approver {approver_id!r}"
    if approver_id == requested_by:
        return f"{approver_id} requested this case and cannot decide it"
    if not may_approve(member, rules):
        return f"{approver_id} has role {member.role!r}, which may not approve"
    if member.approval_limit < amount:
        return f"{approver_id}'s approval limit {member.approval_limit} is below {amount}"
    return None


def eligible_approvers(
    directory: ApproverDirectory, *, amount: Decimal, requested_by: str, rules: CaseRules
) -> tuple[str, ...]:
    return tuple(
        m.id
        for m in directory.staff
        if approver_refusal(directory, m.id, amount=amount, requested_by=requested_by, rules=rules)
        is None
    )


def approval_deadlines(rules: CaseRules, requested_at: datetime) -> tuple[datetime, ...]:
    """Reminder, escalation and expiry instants, counted in business time."""
    calendar, timing = rules.calendar, rules.approval
    return (
        calendar.add_business_time(requested_at, timing.remind_after),
        calendar.add_business_time(requested_at, timing.escalate_after),
        calendar.add_business_days(requested_at, timing.expire_after_days),
    )

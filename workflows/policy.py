"""The company's rules, as pure functions every procedure shares.

No I/O and no clock: inputs are the rules recorded with the case and instants taken from
the workflow, so the same case always reaches the same answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from workflows.models import (
    ApproverDirectory,
    CaseRules,
    RefundMethod,
    ReturnableOrder,
    ReturnEligibility,
    ReturnItem,
    ReturnVerdict,
    StaffMember,
)

REFUND_TIMELINES = {
    RefundMethod.STORE_CREDIT: "immediately",
    RefundMethod.ORIGINAL_PAYMENT: "within 5-10 business days",
}


def refund_needs_manager(amount: Decimal, rules: CaseRules) -> bool:
    """Manager Authorization Required: refunds *over* the threshold (500.00 itself does not)."""
    return amount > rules.refund_approval_above


def settlement_needs_manager(amount: Decimal, rules: CaseRules) -> bool:
    """Manager Authorization Required: complaint settlements *over* the threshold."""
    return amount > rules.complaint.settlement_above


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


# ---- Returns Processing ----------------------------------------------------------------------


def unreturnable(
    items: Sequence[ReturnItem], ordered: Mapping[str, int], returned: Mapping[str, int]
) -> str | None:
    """Why these items cannot be returned (not on the order, or already returned), or None."""
    for item in items:
        if item.sku not in ordered:
            return f"{item.sku} is not on this order"
        left = ordered[item.sku] - returned.get(item.sku, 0)
        if item.quantity > left:
            if left <= 0:
                return f"every {item.sku} on this order is already being returned"
            return f"only {left} of {item.sku} can still be returned, not {item.quantity}"
    return None


def return_eligibility(
    items: Sequence[ReturnItem],
    order: ReturnableOrder | None,
    *,
    order_id: str,
    customer_id: str,
    at: datetime,
    window: timedelta,
) -> ReturnEligibility:
    """Verify return eligibility: delivered, the customer's, the items, then the window.

    Only the window may be waived (by a manager); wrong items or orders never are.
    """
    if order is None:
        return _ineligible(f"order {order_id} does not exist")
    if order.customer_id != customer_id:
        return _ineligible(f"order {order_id} is not this customer's")
    if order.status != "delivered" or order.delivered_at is None:
        return _ineligible(f"order {order_id} has not been delivered")
    prices = {line.sku: line.unit_price for line in order.lines}
    ordered = {line.sku: line.quantity for line in order.lines}
    refusal = unreturnable(items, ordered, order.returned)
    if refusal:
        return _ineligible(refusal)
    value = sum((prices[item.sku] * item.quantity for item in items), Decimal("0"))
    if at > order.delivered_at + window:
        return ReturnEligibility(
            verdict=ReturnVerdict.OUTSIDE_WINDOW,
            reason=(
                f"delivered {order.delivered_at:%Y-%m-%d}, outside the "
                f"{window.days}-day return window"
            ),
            value=value,
        )
    return ReturnEligibility(verdict=ReturnVerdict.ELIGIBLE, value=value)


def _ineligible(reason: str) -> ReturnEligibility:
    return ReturnEligibility(verdict=ReturnVerdict.INELIGIBLE, reason=reason)

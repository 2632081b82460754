"""The company's rules, as pure functions every procedure shares.

No I/O and no clock: inputs are the rules recorded with the case and instants taken from
the workflow, so the same case always reaches the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal

from workflows.models import ApproverDirectory, CaseRules, RefundMethod, StaffMember
from workflows.return_models import ReturnableOrder, ReturnEligibility, ReturnItem, ReturnVerdict
from workflows.rush_models import RushQuote

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


# ---- Rush Orders -------------------------------------------------------------------------------


def rush_fee(rules: CaseRules, *, items: int, vip: bool) -> tuple[Decimal, bool]:
    """The fee for expediting ``items`` units, and whether it is waived (VIP Customer Handling)."""
    rush = rules.rush
    if vip and rush.vip_fee_waived:
        return Decimal("0.00"), True
    return rush.fee_per_order + rush.fee_per_item * items, False


def rush_dates(rules: CaseRules, at: datetime) -> tuple[date, date]:
    """When an order expedited at ``at`` ships and is promised: it ships today when today is
    a business day and the same-day cut-off has not passed, else the next business day; the
    carrier's transit counts only its delivery days (and skips the business's holidays)."""
    calendar, rush = rules.calendar, rules.rush
    local = calendar.local(at)
    ships_on = local.date()
    if not calendar.is_business_day(ships_on) or local.time() >= rush.same_day_cutoff:
        ships_on = _next_day(ships_on, calendar.is_business_day)

    def delivers(day: date) -> bool:
        return day.weekday() in rush.delivery_days and day not in calendar.holidays

    promised_on = ships_on
    for _ in range(rush.transit_days):
        promised_on = _next_day(promised_on, delivers)
    return ships_on, promised_on


def rush_quote(rules: CaseRules, *, at: datetime, items: int, vip: bool) -> RushQuote:
    """The quote emailed to the customer: fee, promise, and the end of the acceptance window
    (RUSH_ACCEPT_WITHIN of business time after ``at``)."""
    fee, waived = rush_fee(rules, items=items, vip=vip)
    ships_on, promised_on = rush_dates(rules, at)
    return RushQuote(
        fee=fee,
        waived=waived,
        quoted_at=at,
        accept_by=rules.calendar.add_business_time(at, rules.rush.accept_within),
        ships_on=ships_on,
        promised_on=promised_on,
    )


def ship_cutoff(rules: CaseRules, ships_on: date) -> datetime:
    """The instant the order leaves with the expedited pickup: the cut-off of its ship day."""
    return rules.calendar.instant(ships_on, rules.rush.same_day_cutoff)


def delivery_due(rules: CaseRules, promised_on: date) -> datetime:
    """The end of the promised day (its closing time on the business clock): the follow-up."""
    return rules.calendar.instant(promised_on, rules.calendar.closes)


def _next_day(day: date, usable: Callable[[date], bool]) -> date:
    for _ in range(366 * 2):
        day += timedelta(days=1)
        if usable(day):
            return day
    raise ValueError("no usable day in the next two years")

"""The company's rules as pure functions, and the requests refused before any case opens.

Manager Authorization Required: a refund *over* 500.00 needs a supervisor or manager whose
approval limit covers it, who is not the person who asked for it. A manager away may name a
delegate, who then decides within the delegate's own limit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from settings import Settings
from workflows import policy
from workflows.models import (
    ApproverDirectory,
    CaseRules,
    Decision,
    RefundMethod,
    RefundRequest,
    StaffMember,
    StoreCreditChoice,
)

RULES: CaseRules = Settings().case_rules()

DIRECTORY = ApproverDirectory(
    staff=(
        StaffMember(id="agent-amy", name="Amy", role="agent", approval_limit=Decimal("0.00")),
        StaffMember(id="sup-sam", name="Sam", role="supervisor", approval_limit=Decimal("1000.00")),
        StaffMember(id="sup-low", name="Lou", role="supervisor", approval_limit=Decimal("600.00")),
        StaffMember(id="mgr-mia", name="Mia", role="manager", approval_limit=Decimal("5000.00")),
        StaffMember(id="wh-will", name="Will", role="warehouse", approval_limit=Decimal("9000.00")),
        # Standing in for mgr-max, who is away: eligible, but only up to her own limit.
        StaffMember(
            id="agent-dee",
            name="Dee",
            role="agent",
            approval_limit=Decimal("800.00"),
            acting_for="mgr-max",
        ),
    )
)


def refusal(approver: str, amount: str, requested_by: str = "agent-amy") -> str | None:
    return policy.approver_refusal(
        DIRECTORY, approver, amount=Decimal(amount), requested_by=requested_by, rules=RULES
    )


# ---- the threshold -------------------------------------------------------------------------


def test_a_refund_of_exactly_500_needs_no_manager() -> None:
    assert not policy.refund_needs_manager(Decimal("500.00"), RULES)


def test_a_refund_of_500_01_needs_a_manager() -> None:
    assert policy.refund_needs_manager(Decimal("500.01"), RULES)


def test_the_threshold_is_the_one_recorded_with_the_case() -> None:
    rules = Settings(refund_approval_above=Decimal("1000.00")).case_rules()
    assert not policy.refund_needs_manager(Decimal("750.00"), rules)
    assert policy.refund_needs_manager(Decimal("750.00"), RULES)


def test_store_credit_is_immediate_and_the_original_payment_takes_days() -> None:
    assert policy.refund_timeline(RefundMethod.STORE_CREDIT) == "immediately"
    assert policy.refund_timeline(RefundMethod.ORIGINAL_PAYMENT) == "within 5-10 business days"


# ---- who may decide ------------------------------------------------------------------------


def test_a_supervisor_within_the_limit_may_approve() -> None:
    assert refusal("sup-sam", "750.00") is None


def test_an_approver_whose_limit_equals_the_amount_may_approve() -> None:
    assert refusal("sup-sam", "1000.00") is None


def test_an_unknown_approver_is_refused_by_name() -> None:
    assert refusal("mgr-ghost", "750.00") == "unknown approver 'mgr-ghost'"


def test_the_requester_may_not_decide_their_own_case() -> None:
    assert refusal("mgr-mia", "750.00", requested_by="mgr-mia") == (
        "mgr-mia requested this case and cannot decide it"
    )


def test_a_role_that_may_not_approve_is_refused_whatever_its_limit() -> None:
    assert refusal("wh-will", "750.00") == "wh-will has role 'warehouse', which may not approve"


def test_an_approver_below_the_amount_is_refused_with_both_figures() -> None:
    assert refusal("sup-low", "750.00") == "sup-low's approval limit 600.00 is below 750.00"


def test_a_delegate_may_approve_within_the_delegates_own_limit() -> None:
    assert refusal("agent-dee", "750.00") is None


def test_a_delegate_may_not_approve_above_the_delegates_own_limit() -> None:
    # mgr-max could approve 900.00; the delegate standing in for him cannot.
    assert refusal("agent-dee", "900.00") == "agent-dee's approval limit 800.00 is below 900.00"


def test_the_same_person_without_a_delegation_may_not_approve() -> None:
    directory = ApproverDirectory(
        staff=tuple(m.model_copy(update={"acting_for": None}) for m in DIRECTORY.staff)
    )
    reason = policy.approver_refusal(
        directory, "agent-dee", amount=Decimal("750"), requested_by="agent-amy", rules=RULES
    )
    assert reason == "agent-dee has role 'agent', which may not approve"


def test_eligible_approvers_are_everyone_who_may_approve_the_amount() -> None:
    eligible = policy.eligible_approvers(
        DIRECTORY, amount=Decimal("750.00"), requested_by="agent-amy", rules=RULES
    )
    assert eligible == ("sup-sam", "mgr-mia", "agent-dee")


def test_eligible_approvers_exclude_the_requester() -> None:
    eligible = policy.eligible_approvers(
        DIRECTORY, amount=Decimal("750.00"), requested_by="sup-sam", rules=RULES
    )
    assert eligible == ("mgr-mia", "agent-dee")


def test_nobody_is_eligible_above_every_limit() -> None:
    assert (
        policy.eligible_approvers(
            DIRECTORY, amount=Decimal("5000.01"), requested_by="agent-amy", rules=RULES
        )
        == ()
    )


def test_approval_deadlines_are_counted_in_business_time() -> None:
    requested_at = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)  # Tuesday 18:00 in New York
    remind_at, escalate_at, due_at = policy.approval_deadlines(RULES, requested_at)
    # 2h on Tuesday evening, then 2h / 6h on Wednesday; 3 x 12h end on Friday at 18:00.
    assert remind_at.isoformat() == "2026-11-25T15:00:00+00:00"
    assert escalate_at.isoformat() == "2026-11-25T19:00:00+00:00"
    assert due_at.isoformat() == "2026-11-27T23:00:00+00:00"


# ---- requests refused before any workflow starts ---------------------------------------------


def valid_refund(**changes: Any) -> dict[str, Any]:
    return {
        "request_id": "req-1",
        "order_id": "ORD-1001",
        "customer_id": "C-100",
        "amount": "120.00",
        "reason": "thawed on arrival",
        "requested_by": "agent-amy",
        **changes,
    }


def refused_fields(payload: dict[str, Any]) -> set[str]:
    with pytest.raises(ValidationError) as error:
        RefundRequest.model_validate(payload)
    return {str(e["loc"][0]) for e in error.value.errors()}


def test_a_well_formed_refund_request_is_accepted_with_an_exact_amount() -> None:
    request = RefundRequest.model_validate(valid_refund(amount="0.30"))
    assert request.amount == Decimal("0.30")


@pytest.mark.parametrize("amount", ["-5.00", "0", "0.00"])
def test_a_refund_that_is_not_positive_is_refused(amount: str) -> None:
    assert refused_fields(valid_refund(amount=amount)) == {"amount"}


def test_a_refund_in_fractions_of_a_cent_is_refused() -> None:
    assert refused_fields(valid_refund(amount="10.005")) == {"amount"}


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_refund_without_a_reason_is_refused(reason: str) -> None:
    assert refused_fields(valid_refund(reason=reason)) == {"reason"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("request_id", "req 1"),
        ("order_id", "ORD/1001"),
        ("customer_id", "C-100;drop"),
        ("requested_by", "-agent"),
        ("request_id", "x" * 129),
    ],
)
def test_an_identifier_with_unsafe_characters_is_refused(field: str, value: str) -> None:
    assert refused_fields(valid_refund(**{field: value})) == {field}


def test_an_unknown_field_is_refused_at_the_boundary_and_ignored_in_history() -> None:
    # The API and CLI validate strictly; a replayed history written by another version loads.
    with pytest.raises(ValidationError) as error:
        RefundRequest.model_validate(valid_refund(coupon="FREE"), extra="forbid")
    assert {str(e["loc"][0]) for e in error.value.errors()} == {"coupon"}
    assert RefundRequest.model_validate(valid_refund(coupon="FREE")).amount == Decimal("120.00")


def test_a_decision_with_an_unknown_verdict_is_refused() -> None:
    with pytest.raises(ValidationError) as error:
        Decision.model_validate({"approver_id": "mgr-mia", "decision": "maybe"})
    assert [e["loc"] for e in error.value.errors()] == [("decision",)]


def test_a_store_credit_choice_needs_an_event_id() -> None:
    with pytest.raises(ValidationError) as error:
        StoreCreditChoice.model_validate({})
    assert [e["loc"] for e in error.value.errors()] == [("event_id",)]

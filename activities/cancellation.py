"""The effects only cancellations have: reading the order, cancelling it, opening the return.

``CancellationActivities`` is a mixin of ``CaseActivities`` (cases call it by reference like
every activity). ``LinkedCases`` holds the Temporal client, like ``activities/lots.py``: it
opens the return case a customer takes instead of a cancellation, once per cancellation (its
id derives from the cancellation's, so a retry finds the case the first attempt opened).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import select
from temporalio import activity
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities import audit
from activities.orders import OrderSystem
from infra.db import Database, OrderNote
from workflows import visibility
from workflows.cancellation_models import (
    CancellationCheck,
    CancelVerdict,
    LinkedReturn,
    OrderCancellation,
    OrderStanding,
)
from workflows.models import CaseType
from workflows.return_models import ReturnItem, ReturnRequest

# The order note that documents a cancellation's reason, for trend analysis.
REASON_NOTE = "cancellation_reason"
RETURN_WORKFLOW = "ReturnWorkflow"  # by name: activities never import workflow code

log = structlog.get_logger(__name__)


def linked_return_id(cancellation_case_id: str) -> str:
    """The return case a cancellation opens: one per cancellation, found again by a retry."""
    return f"{CaseType.RETURN.value}-{cancellation_case_id}"


class CancellationActivities:
    db: Database
    orders: OrderSystem

    @activity.defn(name="assess_cancellation")
    def assess_cancellation(self, check: CancellationCheck) -> OrderStanding:
        """Order Cancellations: the order is the customer's; its status, what it still holds
        (total - refunded - reserved) and its lines (for a return, should it have shipped)."""
        order = self.orders.get_order(check.order_id)
        if order is None:
            return OrderStanding(refusal=f"order {check.order_id} does not exist")
        if order.customer_id != check.customer_id:
            return OrderStanding(refusal=f"order {check.order_id} is not this customer's")
        return OrderStanding(
            status=order.status,
            refundable=max(order.refundable, 0),
            lines=tuple(ReturnItem(sku=line.sku, quantity=line.quantity) for line in order.lines),
        )

    @activity.defn(name="cancel_order")
    def cancel_order(self, cancel: OrderCancellation) -> CancelVerdict:
        """'Process if order hasn't shipped': the order system decides (idempotent per case);
        the reason is noted on the order, with the case's audit lines, whatever it said."""
        try:
            outcome = self.orders.cancel_order(
                cancel.order_id, case_id=cancel.case_id, at=cancel.at
            )
        except LookupError as err:
            raise ApplicationError(str(err), type="InvalidRequest", non_retryable=True) from err
        text = cancel.reason + (f": {cancel.reason_text}" if cancel.reason_text else "")
        with self.db.transaction() as session:
            audit.write(session, cancel.audit)
            noted = session.scalar(
                select(OrderNote.id).where(
                    OrderNote.case_id == cancel.case_id, OrderNote.kind == REASON_NOTE
                )
            )
            if noted is None:  # else written by an earlier attempt
                session.add(
                    OrderNote(
                        order_id=cancel.order_id,
                        case_id=cancel.case_id,
                        kind=REASON_NOTE,
                        text=text,
                        at=cancel.at,
                    )
                )
        log.info("order_cancel_asked", outcome=outcome, reason=cancel.reason)
        return CancelVerdict(outcome=outcome)


class LinkedCases:
    """Activities that open other cases, with the Temporal client."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def all(self) -> list[Callable[..., Any]]:
        return [self.open_linked_return]

    @activity.defn(name="open_linked_return")
    async def open_linked_return(self, link: LinkedReturn) -> str:
        """Open the return case for the order's lines, linked to the cancellation; its id."""
        case_id = linked_return_id(link.case_id)
        try:
            # The request id is the cancellation's case id: the return's case id follows.
            request = ReturnRequest(
                request_id=link.case_id,
                order_id=link.order_id,
                customer_id=link.customer_id,
                items=link.items,
                reason=link.reason[:500],
                requested_by=link.requested_by,
                linked_case_id=link.case_id,
            )
        except ValidationError as err:
            raise ApplicationError(
                f"cannot open the return: {err}", type="InvalidRequest", non_retryable=True
            ) from err
        attributes = [
            SearchAttributePair(visibility.CASE_TYPE, CaseType.RETURN.value),
            SearchAttributePair(visibility.CASE_STATUS, "received"),
            SearchAttributePair(visibility.ORDER_ID, link.order_id),
            SearchAttributePair(visibility.CUSTOMER_ID, link.customer_id),
        ]
        try:
            await self.client.start_workflow(
                RETURN_WORKFLOW,
                request,
                id=case_id,
                task_queue=activity.info().task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(attributes),
                static_summary=f"Return of order {link.order_id} (from {link.case_id})",
            )
            log.info("linked_return_opened", case_id=case_id)
        except WorkflowAlreadyStartedError:
            pass  # an earlier attempt opened it: the same case
        return case_id

"""The effects only complaints have: the replacement order (Quality Complaints, step 3).

A mixin of ``CaseActivities``, so that cases call it by reference like every activity.
"""

from __future__ import annotations

import hashlib

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import audit
from activities.orders import OrderSystem
from infra.db import Database
from workflows.complaint_models import ReplacementOrder, ReplacementPlaced

log = structlog.get_logger(__name__)


def replacement_id(case_id: str) -> str:
    """The replacement order's id, derived from the case: one replacement per case, ever."""
    return f"RPL-{hashlib.sha256(case_id.encode()).hexdigest()[:16].upper()}"


class ComplaintActivities:
    db: Database
    orders: OrderSystem

    @activity.defn(name="place_replacement")
    def place_replacement(self, order: ReplacementOrder) -> ReplacementPlaced:
        """Place the case's free replacement in the order system; a retry finds it placed."""
        order_id = replacement_id(order.case_id)
        try:
            created = self.orders.place_replacement(
                order_id, order_id=order.order_id, sku=order.sku, at=order.at
            )
        except LookupError as err:
            raise ApplicationError(str(err), type="InvalidRequest", non_retryable=True) from err
        if order.audit:
            with self.db.transaction() as session:
                audit.write(session, order.audit)
        log.info("replacement_placed", created=created)
        return ReplacementPlaced(order_id=order_id, created=created)

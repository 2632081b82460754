"""The effects only complaints have: the replacement order (Quality Complaints, step 3).

A mixin of ``CaseActivities``, so that cases call it by reference like every activity.
"""

from __future__ import annotations

import hashlib

import structlog
from sqlalchemy.exc import IntegrityError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import audit
from activities.notifications import TemplateError, queue, render
from activities.orders import OrderSystem
from infra.db import Database
from settings import Settings
from workflows.complaint_models import RecallReview, ReplacementOrder, ReplacementPlaced

# Who gets a lot's recall review (keys of the DEPARTMENTS setting).
RECALL_REVIEWERS = ("quality_assurance", "food_safety")

log = structlog.get_logger(__name__)


def replacement_id(case_id: str) -> str:
    """The replacement order's id, derived from the case: one replacement per case, ever."""
    return f"RPL-{hashlib.sha256(case_id.encode()).hexdigest()[:16].upper()}"


class ComplaintActivities:
    db: Database
    orders: OrderSystem
    settings: Settings

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

    @activity.defn(name="open_recall_review")
    def open_recall_review(self, review: RecallReview) -> None:
        """Email QA and Food Safety the lot's recall review: linked cases and the checklist.

        Queued once per review (its lot and instant make the key); a retry finds it queued.
        """
        departments = [self.settings.departments[name] for name in RECALL_REVIEWERS]
        to = list(dict.fromkeys(department.email for department in departments))
        context = {
            "company_name": self.settings.company_name,
            "lot": review.lot,
            "sku": review.sku,
            "count": str(len(review.case_ids)),
            "cases": "\n".join(f"- {case_id}" for case_id in review.case_ids),
            "extensions": ", ".join(f"{d.name} ext. {d.extension}" for d in departments),
        }
        try:
            email = render("recall_review", context)
        except TemplateError as err:
            raise ApplicationError(str(err), type="ProgrammingError", non_retryable=True) from err
        try:
            with self.db.transaction() as session:
                queue(
                    session,
                    case_id=review.case_ids[0],
                    key=f"recall-review/{review.lot}/{review.opened_at.isoformat()}",
                    template="recall_review",
                    to=to,
                    email=email,
                    at=review.opened_at,
                )
        except IntegrityError:
            log.info("recall_review_already_queued")
            return
        log.info("recall_review_opened", cases=len(review.case_ids))

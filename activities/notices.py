"""The case's emails: to the customer, approvers, the CS manager and departments.

Each email is queued in the transaction that writes its audit line (and the case's pending
lines), so a retried activity queues nothing twice. Approval emails to named approvers carry
each one's own decision code.
"""

from __future__ import annotations

from functools import cache
from urllib.parse import quote

import structlog
from sqlalchemy import Select, bindparam, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import audit, decision_links
from activities.decision_codes import DecisionCodes
from activities.notifications import Email, TemplateError, queue, render
from activities.orders import OrderSystem
from activities.staff import StaffDirectory
from infra.db import Case, Database
from settings import Settings
from workflows.models import DecisionKind, Department, Escalation, Notice, Recipient

log = structlog.get_logger(__name__)


class NoticeActivities:
    """The email activities; ``CaseActivities`` provides the parts declared here."""

    db: Database
    orders: OrderSystem
    settings: Settings
    staff: StaffDirectory
    codes: DecisionCodes

    @activity.defn(name="send_notice")
    def send_notice(self, notice: Notice) -> None:
        """Render the email and queue it with its audit line, in one transaction."""
        case_id = notice.entry.case_id
        with self.db.read() as session:
            case = session.execute(_case_parties(), {"case": case_id}).first()
        customer_id, order_id = (case.customer_id, case.order_id) if case else (None, None)
        # Looked up outside the write transaction: the order system may be this database.
        customer = self.orders.get_customer(customer_id) if customer_id else None
        if notice.recipient is Recipient.CUSTOMER and not self._customers_own(
            order_id, customer_id
        ):
            notice = _neutral(notice)
        context = {
            "company_name": self.settings.company_name,
            "customer_name": customer.name if customer else "Customer",
            "extension": self._department(notice).extension if notice.department else "",
            "return_address": self.settings.return_address,
            # Where staff open the case to act on it (an approval email's way to decide).
            "my_work_url": f"{self.settings.public_url}/work#{quote(case_id, safe='')}",
            **notice.context,
        }
        if self._carries_codes(notice) and self._send_with_codes(notice, context):
            return
        email = _render(
            notice.template, {"decision_code_line": "", "decision_links": "", **context}
        )
        to = self._addresses(notice, customer.email if customer else None)
        if notice.copy_cs_manager and self.settings.cs_manager_email not in to:
            to.append(self.settings.cs_manager_email)
        with self.db.transaction() as session:
            if not audit.write_with(session, notice.audit, notice.entry):
                return  # queued by an earlier attempt
            queue(
                session,
                case_id=notice.entry.case_id,
                key=f"{notice.entry.case_id}/{notice.entry.seq}",
                template=notice.template,
                to=to,
                email=email,
                at=notice.entry.at,
            )
        log.info("email_queued", template=notice.template, recipients=len(to))

    def _customers_own(self, order_id: str | None, customer_id: str | None) -> bool:
        """The case's order exists and belongs to the case's customer."""
        order = self.orders.get_order(order_id) if order_id else None
        return order is not None and order.customer_id == customer_id

    @activity.defn(name="record_needs_attention")
    def record_needs_attention(self, escalation: Escalation) -> None:
        """A case stopped on a fault: status, audit line and alert emails in one transaction.

        The last thing a failing case does, so it must not fail itself: an unknown department
        still alerts the CS manager, and a template fault still sends a plain alert.
        """
        entry = escalation.entry
        department = self.settings.departments.get(escalation.department or "")
        to = [self.settings.cs_manager_email]
        if department is not None and department.email not in to:
            to.append(department.email)
        context = {
            "company_name": self.settings.company_name,
            "department": department.name if department else "CS manager",
            **escalation.context,
        }
        try:
            email = render("case_needs_attention", context)
        except TemplateError:
            email = Email(
                subject=f"Case {entry.case_id} needs attention",
                body="\n".join(f"{key}: {value}" for key, value in sorted(context.items())),
            )
        with self.db.transaction() as session:
            if session.get(Case, entry.case_id) is None and escalation.opening is not None:
                # The fault came before the case row was written: write it now, so the case
                # is listed and its audit line has a case to belong to.
                audit.open_case_row(session, escalation.opening, self.settings.case_rules())
            if not audit.write_with(session, escalation.audit, entry):
                return  # written by an earlier attempt
            queue(
                session,
                case_id=entry.case_id,
                key=f"{entry.case_id}/{entry.seq}",
                template="case_needs_attention",
                to=to,
                email=email,
                at=entry.at,
            )
        log.warning(
            "case_needs_attention",
            case_id=entry.case_id,
            failed_step=entry.detail.get("failed_step"),
            error_type=entry.detail.get("error_type"),
            told=len(to),
        )

    def _carries_codes(self, notice: Notice) -> bool:
        """Approval emails to named approvers carry each one's own decision code."""
        return (
            notice.recipient is Recipient.APPROVERS
            and notice.entry.approval is not None
            and bool(notice.staff_ids)
            and self.settings.decision_signals
        )

    def _send_with_codes(self, notice: Notice, context: dict[str, str]) -> bool:
        """One email per approver, each with a fresh code; codes, emails and the audit line
        are written in one transaction, so a retry issues nothing twice. False when none of
        the approvers can be reached (the email then goes out as any other)."""
        approval = notice.entry.approval
        assert approval is not None
        contacts = self.staff.contacts(notice.staff_ids)
        if not contacts:
            return False
        case_id, key = notice.entry.case_id, f"{notice.entry.case_id}/{notice.entry.seq}"
        with self.db.transaction() as session:
            if not audit.write_with(session, notice.audit, notice.entry):
                return True  # queued by an earlier attempt
            for staff_id, address in contacts.items():
                code = self.codes.issue(
                    session,
                    case_id=case_id,
                    staff_id=staff_id,
                    requested_at=approval.requested_at,
                    expires_at=approval.due_at,
                    at=notice.entry.at,
                )
                email = _render(
                    notice.template,
                    {
                        **context,
                        "decision_code_line": _code_line(code),
                        "decision_links": self._links(case_id, staff_id, code),
                    },
                )
                queue(
                    session,
                    case_id=case_id,
                    key=f"{key}/{staff_id}",
                    template=notice.template,
                    to=[address],
                    email=email,
                    at=notice.entry.at,
                )
        log.info("email_queued", template=notice.template, recipients=len(contacts), codes=True)
        return True

    def _links(self, case_id: str, staff_id: str, code: str) -> str:
        """The approver's Approve and Reject links: each opens a confirmation page, and
        carries the approver's code, so either one spends it (docs/approval-gate.md)."""
        base = self.settings.public_url
        approve, reject = (
            decision_links.link(case_id, staff_id, kind, code).url(base)
            for kind in (DecisionKind.APPROVE, DecisionKind.REJECT)
        )
        return (
            "Decide from this email (each link opens a page to confirm on):\n"
            f"  Approve: {approve}\n"
            f"  Reject:  {reject}\n"
            "The links are yours alone and work once: do not forward this email."
        )

    def _department(self, notice: Notice) -> Department:
        name = notice.department or ""
        if name not in self.settings.departments:
            raise ApplicationError(f"unknown department {name!r}", type="InvalidRequest")
        return self.settings.departments[name]

    def _addresses(self, notice: Notice, customer_email: str | None) -> list[str]:
        match notice.recipient:
            case Recipient.CUSTOMER:
                return [customer_email] if customer_email else []
            case Recipient.APPROVERS | Recipient.STAFF:
                return self.staff.emails(notice.staff_ids) or [self.settings.cs_manager_email]
            case Recipient.CS_MANAGER:
                return [self.settings.cs_manager_email]
            case Recipient.DEPARTMENT:
                return [self._department(notice).email]


# Sent instead of any customer email when the case's order is not the customer's own: it
# names no order, amount, item or reason, only the case and the customer's own name.
NEUTRAL_TEMPLATE = "request_not_processed"


def _neutral(notice: Notice) -> Notice:
    """The notice with every order detail withheld (the audit line says which letter)."""
    entry = notice.entry.model_copy(
        update={
            "detail": {
                **notice.entry.detail,
                "email": NEUTRAL_TEMPLATE,
                "withheld": notice.template,
            }
        }
    )
    context = {"case_id": notice.context.get("case_id", notice.entry.case_id)}
    return notice.model_copy(
        update={"entry": entry, "template": NEUTRAL_TEMPLATE, "context": context}
    )


def _render(template: str, context: dict[str, str]) -> Email:
    try:
        return render(template, context)
    except TemplateError as err:
        # Retrying cannot fill a template: it is a fault for a person (IT) to fix, and the
        # case ends needs_attention instead of retrying forever.
        raise ApplicationError(str(err), type="ProgrammingError", non_retryable=True) from err


def _code_line(code: str) -> str:
    return (
        "To decide from the Temporal UI instead, send the signal `decision` with your "
        f"decision code: {code}\n(single use, for this request only; it expires with it)"
    )


@cache
def _case_parties() -> Select[str, str]:
    """The case's customer and order, built once (building costs more than running it)."""
    return select(Case.customer_id, Case.order_id).where(Case.id == bindparam("case"))

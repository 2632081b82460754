"""The CLI's commands that work on the database alone (no Temporal): pending approvals, the
outbox, the staff directory, demo orders and migrations. ``starter.cli`` wires them in."""

from __future__ import annotations

import argparse
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select

import migrations
from activities.staff import ROLES, StaffDirectory
from infra.db import Approval, Database, Order, OutboxEmail
from settings import Settings
from starter.demo import ORDER_STATUSES, OrderLineSpec, add_order


class UsageError(Exception):
    """Bad input: one line for the user, exit status 2."""


def money(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r}") from None


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a timezone, e.g. 2026-12-01T09:00Z")
    return value


# ---- commands ------------------------------------------------------------------------------


def cmd_pending(args: argparse.Namespace, settings: Settings) -> None:
    db = Database(settings.database_url)
    with db.transaction() as session:
        rows = session.scalars(
            select(Approval).where(Approval.status == "pending").order_by(Approval.requested_at)
        ).all()
    shown = [r for r in rows if not args.approver or args.approver in r.eligible_approvers]
    if not shown:
        print("no approvals pending")
    for row in shown:
        print(
            f"{row.case_id}  {row.amount:>10.2f}  asked {row.requested_at:%Y-%m-%d %H:%M}Z  "
            f"escalates {row.escalate_at:%Y-%m-%d %H:%M}Z  by {row.requested_by}: {row.reason}"
        )


def cmd_staff_add(args: argparse.Namespace, settings: Settings) -> None:
    try:
        token = StaffDirectory(Database(settings.database_url)).add(
            staff_id=args.staff_id,
            name=args.name,
            email=args.email,
            role=args.role,
            approval_limit=args.limit,
        )
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(f"added {args.staff_id} ({args.role}). API token, shown once:\n{token}")


def cmd_staff_delegate(args: argparse.Namespace, settings: Settings) -> None:
    try:
        StaffDirectory(Database(settings.database_url)).delegate(
            args.staff_id, args.delegate_id, args.starts, args.ends
        )
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(f"{args.delegate_id} decides for {args.staff_id} from {args.starts} to {args.ends}")


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> None:
    migrations.upgrade(settings.database_url)
    print("database is at the latest schema")


def cmd_outbox(args: argparse.Namespace, settings: Settings) -> None:
    db = Database(settings.database_url)
    with db.transaction() as session:
        query = select(OutboxEmail).order_by(OutboxEmail.id.desc()).limit(args.limit)
        if args.case_id:
            query = query.where(OutboxEmail.case_id == args.case_id)
        emails = session.scalars(query).all()
    for email in reversed(emails):
        print(
            f"{email.created_at:%Y-%m-%d %H:%M}Z  {email.status:<6} {email.case_id}  "
            f"{email.to_address}  {email.subject}"
        )


def _order_line(text: str) -> OrderLineSpec:
    """SKU=QUANTITY@UNIT_PRICE, e.g. BISON-RIBEYE=2@150.00."""
    sku, _, rest = text.partition("=")
    quantity, _, price = rest.partition("@")
    try:
        return OrderLineSpec(sku=sku, quantity=int(quantity), unit_price=Decimal(price))
    except (ValueError, InvalidOperation):
        raise argparse.ArgumentTypeError(f"not SKU=QUANTITY@PRICE: {text!r}") from None


def cmd_orders_add(args: argparse.Namespace, settings: Settings) -> None:
    if args.total is None and not args.lines:
        raise UsageError("give --total or --line (or both)")
    try:
        total = add_order(
            Database(settings.database_url),
            order_id=args.order_id,
            customer_id=args.customer,
            total=args.total,
            lines=args.lines or (),
            status=args.status,
            delivered_days_ago=args.delivered_days_ago,
            payment_account=args.payment_account,
        )
    except ValueError as err:
        raise UsageError(str(err)) from None
    when = f", delivered {args.delivered_days_ago} days ago" if args.status == "delivered" else ""
    print(f"added {args.order_id} for {args.customer}: {total:.2f}{when or ', ' + args.status}")


def cmd_orders_list(args: argparse.Namespace, settings: Settings) -> None:
    db = Database(settings.database_url)
    with db.transaction() as session:
        orders = session.scalars(select(Order).order_by(Order.id)).all()
    print(f"{'order':<12} {'customer':<10} {'status':<11} {'total':>10} {'refundable':>11}")
    for order in orders:
        print(
            f"{order.id:<12} {order.customer_id:<10} {order.status:<11} {order.total:>10.2f} "
            f"{order.total - order.refunded:>11.2f}"
        )


def add_local_commands(sub: Any) -> None:
    """The database commands, on the CLI's subcommands ``sub``."""
    p = sub.add_parser("pending", help="list approvals waiting for a decision")
    p.add_argument("--as", dest="approver", help="only those this staff id may decide")
    p.set_defaults(local=cmd_pending)

    p = sub.add_parser("outbox", help="show the latest emails")
    p.add_argument("--case", dest="case_id")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(local=cmd_outbox)

    staff = sub.add_parser("staff", help="manage the staff directory").add_subparsers(
        dest="staff_command", required=True
    )
    p = staff.add_parser("add", help="add a person; prints their API token once")
    p.add_argument("staff_id")
    p.add_argument("--name", required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--limit", type=money, default=Decimal("0"), help="approval limit")
    p.set_defaults(local=cmd_staff_add)
    p = staff.add_parser("delegate", help="name a delegate while someone is away")
    p.add_argument("staff_id")
    p.add_argument("delegate_id")
    p.add_argument("--from", dest="starts", required=True, type=_instant)
    p.add_argument("--until", dest="ends", required=True, type=_instant)
    p.set_defaults(local=cmd_staff_delegate)

    orders = sub.add_parser("orders", help="orders to try cases on (the local order system)")
    orders_sub = orders.add_subparsers(dest="orders_command", required=True)
    p = orders_sub.add_parser("add", help="add an order of an existing customer")
    p.add_argument("order_id")
    p.add_argument("--customer", required=True, help="e.g. C-100 (demo: C-100, C-200)")
    p.add_argument("--total", type=money, help="default: the sum of the lines")
    p.add_argument(
        "--line",
        dest="lines",
        action="append",
        type=_order_line,
        metavar="SKU=QUANTITY@PRICE",
        help="an order line, e.g. BISON-RIBEYE=2@150.00 (repeat; returns need lines)",
    )
    p.add_argument("--status", choices=ORDER_STATUSES, default="delivered")
    p.add_argument("--delivered-days-ago", type=int, default=3)
    p.add_argument(
        "--payment-account",
        choices=("active", "closed"),
        default="active",
        help="closed: a refund to the original payment cannot go through",
    )
    p.set_defaults(local=cmd_orders_add)
    orders_sub.add_parser("list", help="every order and what is left to refund").set_defaults(
        local=cmd_orders_list
    )

    db = sub.add_parser("db", help="database maintenance").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("upgrade", help="apply migrations").set_defaults(local=cmd_db_upgrade)

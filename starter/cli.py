"""``python -m starter``: start cases, decide approvals, look at cases, manage staff.

Every command validates its input with the same models as the API and the workflows, and
every failure prints one line (``error: ...``) and exits with the status listed in EXIT_CODES
(the same answers as the HTTP API: not found, closed, not answering).

Commands that act on a case (``decide``, ``event``) act as a configured identity, never as a
name typed on the command line: the staff token in ``CASEWORK_TOKEN``, or one from the
credentials file ``CASEWORK_CREDENTIALS`` (default ``$VAR_DIR/dev-tokens.json``, a JSON
object of staff id to token, as ``make run`` writes it), where ``--as`` picks the entry. The
token is resolved through the staff directory and the same role rules as the API apply.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from sqlalchemy.exc import OperationalError
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.staff import StaffDirectory
from infra.codec import CodecKeyError, DecryptionError, UnknownKeyError
from infra.db import Database
from registry import EVENTS, PROCEDURES, Procedure
from settings import Settings, get_settings
from starter import (
    ActorNamed,
    CaseNotAnswering,
    DecisionRefused,
    EventForbidden,
    EventRefused,
    StartedCase,
    UnknownEvent,
    case_exists,
    case_state,
    connect,
    decide,
    parse_event,
    send_event,
    start_case,
    temporal_address,
)
from starter.cli_local import UsageError, add_local_commands, money
from starter.report.command import add_report_command
from workflows.models import CaseState, Decision, StaffMember

EXIT_CODES = {
    0: "done",
    2: "bad input, or refused by the case (limit, no decision pending, wrong RA...)",
    3: "service unreachable (Temporal or the database), or no payload encryption key",
    4: "no such case",
    5: "the case is closed and takes no more messages",
    6: "the case did not answer in time (no worker?); what was sent may still apply",
}


class CaseNotFound(Exception):
    def __init__(self, case_id: str) -> None:
        super().__init__(f"no case {case_id}")


class CaseClosed(Exception):
    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id} is closed and takes no more messages")


T = TypeVar("T")


async def to_case(client: Client, case_id: str, call: Awaitable[T]) -> T:
    """``call``'s answer; Temporal's NOT_FOUND told apart as the API does (closed, unknown)."""
    try:
        return await call
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        if await case_exists(client, case_id):
            raise CaseClosed(case_id) from None
        raise CaseNotFound(case_id) from None


def _format_validation(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in err.errors()
    )


async def cmd_start(procedure: Procedure[Any], args: argparse.Namespace, temporal: Connect) -> None:
    """Open a case of ``procedure`` from its command's options (one per request field)."""
    fields = {
        name: getattr(args, name)
        for name in procedure.request.model_fields
        if getattr(args, name, None) is not None
    }
    fields["request_id"] = args.request_id or f"cli-{uuid.uuid4().hex[:12]}"
    request = procedure.request.model_validate(fields, extra="forbid")
    refusal = procedure.check(request, get_settings())
    if refusal is not None:
        raise UsageError(f"{procedure.check_field}: {refusal}")  # before connecting
    print_started(await start_case(await temporal(), request))


def print_started(started: StartedCase) -> None:
    if started.existing:
        print(f"{started.case_id}  already exists (status {started.status})")
    else:
        print(f"{started.case_id}  started (run {started.run_id})")


def credentials_file(settings: Settings) -> Path:
    configured = os.environ.get("CASEWORK_CREDENTIALS", "").strip()
    return Path(configured) if configured else settings.var_dir / "dev-tokens.json"


def identity(settings: Settings, wanted: str | None) -> StaffMember:
    """The staff member this command acts as: CASEWORK_TOKEN, or the credentials file's
    entry (``wanted``, or its only one), resolved through the staff directory."""
    token = os.environ.get("CASEWORK_TOKEN", "").strip()
    where = "CASEWORK_TOKEN"
    if not token:
        path = credentials_file(settings)
        where = str(path)
        try:
            tokens = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            raise UsageError(f"cannot read the credentials file {path}") from None
        if not isinstance(tokens, dict):
            raise UsageError(f"{path} must be a JSON object of staff id to token")
        if wanted:
            token = str(tokens.get(wanted) or "")
            if not token:
                raise UsageError(f"no credentials for {wanted} in {path}")
        elif len(tokens) == 1:
            token = str(next(iter(tokens.values())))
        else:
            raise UsageError(
                f"who is acting? set CASEWORK_TOKEN, or pick an entry of {path} with --as"
            )
    staff = StaffDirectory(Database(settings.database_url)).authenticate(token)
    if staff is None:
        raise UsageError(f"the token from {where} is not valid (unknown or deactivated)")
    if wanted and staff.id != wanted:
        raise UsageError(f"the token from {where} is {staff.id}'s, not {wanted}'s")
    return staff


def approver(settings: Settings, wanted: str | None) -> StaffMember:
    """The acting identity, when it may decide approvals (the API's rule)."""
    staff = identity(settings, wanted)
    if staff.role in settings.approver_roles:
        return staff
    directory = StaffDirectory(Database(settings.database_url))
    now = datetime.now(UTC)
    if any(m.id == staff.id and m.acting_for for m in directory.approver_directory(now).staff):
        return staff
    raise UsageError(f"forbidden: role {staff.role!r} may not decide approvals")


async def cmd_decide(args: argparse.Namespace, temporal: Connect) -> None:
    me = approver(get_settings(), args.approver)
    decision = Decision(
        approver_id=me.id,
        decision=args.decision,
        note=args.note,
        event_id=f"cli-{uuid.uuid4().hex[:12]}",
        code=args.code,
    )
    client = await temporal()
    if args.signal:
        if not args.code:
            raise UsageError("a decision by signal needs --code (from your approval email)")
        handle = client.get_workflow_handle(args.case_id)
        await to_case(
            client, args.case_id, handle.signal("decision", decision.model_dump(mode="json"))
        )
        print(f"{args.case_id}  decision sent as a signal (see `status` for its effect)")
        return
    try:
        approval = await to_case(client, args.case_id, decide(client, args.case_id, decision))
    except DecisionRefused as refused:
        raise UsageError(f"refused: {refused.message}") from None
    print(f"{args.case_id}  {approval.status} by {approval.decided_by}")


async def cmd_status(args: argparse.Namespace, temporal: Connect) -> None:
    client = await temporal()
    state = await to_case(client, args.case_id, case_state(client, args.case_id))
    print(state.model_dump_json(indent=2) if args.json else _describe(state))


def _describe(state: CaseState) -> str:
    amount = f"{state.amount:.2f}" if state.amount is not None else "-"
    lines = [
        f"{state.case_id}  {state.type}  {state.status}",
        f"  step:     {state.step}",
        f"  order:    {state.order_id}   customer: {state.customer_id}   amount: {amount}",
    ]
    details = _details(state)
    if details:
        lines.append("  " + "   ".join(f"{key}: {value}" for key, value in details.items()))
    if state.approval:
        a = state.approval
        lines.append(
            f"  approval: {a.status}  (asked {a.requested_at:%Y-%m-%d %H:%M}Z, due "
            f"{a.due_at:%Y-%m-%d %H:%M}Z, eligible: {', '.join(a.eligible_approvers) or '-'})"
        )
        if a.decided_by:
            lines.append(f"            decided by {a.decided_by}: {a.note or '(no note)'}")
    if state.outcome:
        lines.append(f"  outcome:  {state.outcome.status} {state.outcome.reason}")
    lines.append("  timeline:")
    lines += [f"    {t.at:%Y-%m-%d %H:%M:%S}Z  {t.event:<28} {t.actor}" for t in state.timeline]
    return "\n".join(lines)


def _details(state: CaseState) -> dict[str, str]:
    """The fields a procedure's state adds to every case's (a return's RA...), as text."""
    return {
        name: _text(value)
        for name, value in state
        if name not in CaseState.model_fields and value not in (None, (), "")
    }


def _text(value: object) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return ", ".join(_text(item) for item in value)
    if isinstance(value, BaseModel):
        return " ".join(f"{k}={_text(v)}" for k, v in value)
    return str(value)


async def cmd_event(args: argparse.Namespace, temporal: Connect) -> None:
    payload = json.loads(args.data) if args.data else {}
    if not isinstance(payload, dict):
        raise UsageError("--data must be a JSON object")
    payload.setdefault("event_id", f"cli-{uuid.uuid4().hex[:12]}")
    sender = identity(get_settings(), args.sender)
    parse_event(args.type, payload, sender)  # refuse bad input before connecting
    client = await temporal()
    await to_case(
        client, args.case_id, send_event(client, args.case_id, args.type, payload, sender=sender)
    )
    print(f"{args.case_id}  {args.type} sent")


def cmd_dev(args: argparse.Namespace, settings: Settings) -> None:
    from starter.dev import run

    asyncio.run(run(settings))


# ---- wiring --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m starter",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status:\n"
        + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items()),
    )
    sub = parser.add_subparsers(dest="command", required=True)

    for procedure in PROCEDURES:
        add_start_command(sub, procedure)

    p = sub.add_parser("decide", help="approve or reject a pending approval")
    p.add_argument("case_id")
    p.add_argument("decision", choices=["approve", "reject"])
    p.add_argument("--as", dest="approver", help="which entry of the credentials file to act as")
    p.add_argument("--note", default="")
    p.add_argument("--signal", action="store_true", help="send as a signal (no answer)")
    p.add_argument("--code", help="your decision code from the approval email (with --signal)")
    p.set_defaults(run=cmd_decide)

    p = sub.add_parser("status", help="show a case")
    p.add_argument("case_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_status)

    p = sub.add_parser("event", help="send an event a case waits for")
    p.add_argument("case_id")
    p.add_argument("type", help=f"one of {', '.join(sorted(EVENTS))}")
    p.add_argument("--data", help="JSON object with the event's fields")
    p.add_argument("--as", dest="sender", help="which entry of the credentials file to act as")
    p.set_defaults(run=cmd_event)

    add_local_commands(sub)
    add_report_command(sub)
    sub.add_parser("dev", help="run everything locally (make run)").set_defaults(local=cmd_dev)
    return parser


# Help for request fields every procedure shares; a procedure's own come from registry.cli.
FIELD_HELP = {
    "requested_by": "staff id of the requester",
    "order_id": "the order (e.g. ORD-1001)",
    "customer_id": "the customer (e.g. C-100)",
}
FIELD_TYPES: dict[object, Callable[[str], object]] = {Decimal: money, int: int}


def add_start_command(sub: Any, procedure: Procedure[Any]) -> None:
    """``python -m starter <case type>``: one option per field of the procedure's request
    (``--order`` or ``--order-id`` for ``order_id``; a list field repeats, ``--item``)."""
    p = sub.add_parser(procedure.command, help=procedure.title)
    for name, field in procedure.request.model_fields.items():
        if name != "request_id" and name not in procedure.handed_over:
            _add_field(p, procedure, name, field)
    p.add_argument("--request-id", help="idempotency key (default: a new one)")
    p.set_defaults(run=partial(cmd_start, procedure))


def _add_field(
    parser: argparse.ArgumentParser, procedure: Procedure[Any], name: str, field: FieldInfo
) -> None:
    flag = name.replace("_", "-")
    repeated = get_origin(field.annotation) in (tuple, list)
    short = flag.removesuffix("-id") if name.endswith("_id") else flag.removesuffix("s")
    flags = [f"--{short}", f"--{flag}"] if short != flag else [f"--{flag}"]
    options: dict[str, Any] = {"dest": name, "required": field.is_required()}
    options["metavar"] = short.upper().replace("-", "_")
    if repeated:
        options["action"] = "append"
    custom = procedure.cli.get(name)
    if custom is not None:
        options |= {"type": custom.parse, "metavar": custom.metavar, "help": custom.help}
    else:
        if field.annotation in FIELD_TYPES:
            options["type"] = FIELD_TYPES[field.annotation]
        if isinstance(field.annotation, type) and issubclass(field.annotation, enum.Enum):
            # argparse refuses anything else with the list, before the model is asked.
            options["choices"] = [member.value for member in field.annotation]
            del options["metavar"]
        if name in FIELD_HELP:
            options["help"] = FIELD_HELP[name]
        elif field.description:
            options["help"] = field.description
    parser.add_argument(*flags, **options)


Connect = Callable[[], Awaitable[Client]]
Command = Callable[[argparse.Namespace, Connect], Coroutine[Any, Any, None]]


class Unreachable(Exception):
    pass


async def _connect() -> Client:
    try:
        return await connect()
    except RuntimeError as err:
        raise Unreachable(
            f"cannot reach Temporal at {temporal_address()} (is `make run` running? it "
            "listens on DEV_SERVER_PORT; a cluster is TEMPORAL_ADDRESS)"
        ) from err


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    try:
        if hasattr(args, "local"):
            args.local(args, settings)
        else:
            asyncio.run(args.run(args, _connect))
        sys.stdout.flush()  # here, so that a closed pipe is caught below
    except BrokenPipeError:
        # The reader had enough (`outbox | head`): not an error. Later writes go nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ValidationError as err:
        return _fail(2, _format_validation(err))
    except (UsageError, UnknownEvent, ActorNamed) as err:
        return _fail(2, str(err))
    except EventForbidden as err:
        return _fail(2, f"forbidden: {err}")
    except EventRefused as refused:
        if refused.kind == "CaseClosed":
            return _fail(5, str(CaseClosed(args.case_id)))
        return _fail(2, f"refused: {refused.message}")
    except json.JSONDecodeError as err:
        return _fail(2, f"--data is not valid JSON ({err.msg})")
    except CaseNotFound as err:
        return _fail(4, str(err))
    except CaseClosed as err:
        return _fail(5, str(err))
    except CaseNotAnswering as err:
        return _fail(6, f"{err}; check `status` before sending anything again")
    except RPCError as err:
        return _fail(3, f"Temporal said: {err.message}")
    except Unreachable as err:
        return _fail(3, str(err))
    except (CodecKeyError, UnknownKeyError, DecryptionError) as err:
        return _fail(3, str(err))
    except (OperationalError, ConnectionError) as err:
        return _fail(3, f"service unavailable: {str(err).splitlines()[0]}")
    return 0


def _fail(status: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status

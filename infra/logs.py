"""structlog, configured once for every process (worker, API, CLI).

Console lines in development, JSON with LOG_FORMAT=json. Temporal's workflow and activity
context (workflow id, run id, activity) is bound to every line, stdlib records included, and
anything that looks like an email address or phone number is masked before it is written.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from temporalio import activity, workflow

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# Phone numbers as people and systems write them. Strict on purpose: timestamps, dates, ids
# (ORD-1004, RA-2026-000123, a request id's digits) and amounts (1500.00) must pass through
# untouched, so a number must stand alone (nothing word-like, ":", ".", "+" or "-" glued to
# either end, no decimals after it) and have a phone's shape:
_PHONE = re.compile(
    r"(?<![\w:.+-])(?:"
    # North American with separators: (512) 555-0199, 512.555.0199, +1 512 555 0199.
    r"(?:\+?1[ .-])?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}"
    # International, after "+" or "00": +44 20 7946 0958, 0044 20 7946 0958 (at most 15
    # digits, one space or hyphen at a time: never a decimal point, so an amount is kept).
    r"|(?:\+|00)[1-9]\d{0,2}(?:[ -]?\d){6,13}"
    # Ten bare digits of a North American number, optionally after a 1: 5125550199. Its area
    # code and exchange never start with 0 or 1 (a Unix time in seconds starts with 1 until
    # 2033; a millisecond one is longer).
    r"|1?[2-9]\d{2}[2-9]\d{6}"
    r")(?![\w-]|\.\d)"
)
_PII_KEYS = {"email", "phone", "address", "to_address", "customer_email"}


def mask(text: str) -> str:
    """Hide emails and phone numbers, keeping enough to tell them apart."""
    text = _EMAIL.sub(r"\1***@\2", text)
    return _PHONE.sub(lambda m: "***" + m.group(0)[-2:], text)


def _masked(key: str, value: Any) -> Any:
    if key in _PII_KEYS and value:
        return "***"
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, BaseException):
        # Rendered by its text, which may quote what it failed on: a database error's
        # message carries the statement's parameters (an address, a phone number).
        return mask(f"{type(value).__name__}: {value}")
    if isinstance(value, Mapping):
        return {k: _masked(str(k), v) for k, v in value.items()}
    if type(value) in (list, tuple, set, frozenset):
        return type(value)(_masked("", v) for v in value)
    return value


def _mask_pii(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        # exc_info is rendered into ``exception`` later, and masked then.
        if key not in ("timestamp", "exc_info"):
            event[key] = _masked(key, value)
    return event


def _temporal_context(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if activity.in_activity():
        info = activity.info()
        event.setdefault("workflow_id", info.workflow_id)
        event.setdefault("run_id", info.workflow_run_id)
        event.setdefault("activity", info.activity_type)
        event.setdefault("attempt", info.attempt)
    elif workflow.in_workflow():
        event.setdefault("workflow_id", workflow.info().workflow_id)
        event.setdefault("run_id", workflow.info().run_id)
    # temporalio's own loggers attach their context as an ``extra`` dict.
    for key in ("temporal_workflow", "temporal_activity"):
        context = event.pop(key, None)
        if isinstance(context, dict):
            event.setdefault("workflow_id", context.get("workflow_id"))
            event.setdefault("run_id", context.get("run_id"))
            if "activity_type" in context:
                event.setdefault("activity", context["activity_type"])
    return event


_configured = False


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    global _configured
    if _configured:
        return
    _configured = True
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _temporal_context,
        _mask_pii,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _mask_pii,  # again: a traceback's text may carry an address
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("sqlalchemy.engine", "httpx", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The context is bound as fields above; do not repeat it inside the message text.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False

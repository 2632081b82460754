"""Decision links: the Approve and Reject links of an approval email (docs/approval-gate.md,
"Deciding from the email").

A link carries the approver's decision code, the same one the email's code line shows, so
it proves what the code proves and nothing more: it is random (60 bits), hashed at rest,
bound to the case, the approver and the request, single use and expiring with the request.
The rest of the token (the case, the approver, approve or reject) only addresses it. It is
not signed: a signature would add a secret for the worker and the API to share and rotate,
and protect nothing the code does not (a forged token needs the code it carries).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from activities.decision_codes import ALPHABET
from workflows.models import DecisionKind

VERSION = "d1"
MAX_TOKEN = 600
_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$")
_STAFF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")
_CODE = re.compile(f"^[{ALPHABET}]{{12}}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class DecisionLink:
    case_id: str
    staff_id: str
    decision: DecisionKind
    code: str  # 12 characters, no dashes

    @property
    def token(self) -> str:
        raw = "\n".join((VERSION, self.case_id, self.staff_id, self.decision.value, self.code))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @property
    def event_id(self) -> str:
        """The decision's event id: the same for every submission of this link (a double
        click acts once) and for its other decision, and it reveals nothing of the code."""
        digest = hashlib.sha256(f"{self.case_id}\n{self.staff_id}\n{self.code}".encode())
        return f"link-{digest.hexdigest()[:32]}"

    def url(self, base: str) -> str:
        return f"{base.rstrip('/')}/decide/{self.token}"


def link(case_id: str, staff_id: str, decision: DecisionKind, code: str) -> DecisionLink:
    return DecisionLink(case_id, staff_id, decision, code.upper().replace("-", ""))


def read(token: str) -> DecisionLink | None:
    """The link a token names, or None for anything that is not one (no lookup is made)."""
    if not 0 < len(token) <= MAX_TOKEN or not _TOKEN.match(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, ValueError):
        return None
    parts = raw.split("\n")
    if len(parts) != 5 or parts[0] != VERSION:
        return None
    _, case_id, staff_id, decision, code = parts
    if not (_CASE_ID.match(case_id) and _STAFF_ID.match(staff_id) and _CODE.match(code)):
        return None
    if decision not in {kind.value for kind in DecisionKind}:
        return None
    return DecisionLink(case_id, staff_id, DecisionKind(decision), code)

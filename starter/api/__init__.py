"""The HTTP API: backends open cases and send events, managers decide approvals.

Every answer is JSON; money is a decimal string; every error is ``{"error", "detail"}`` with
the right status and no trace. One module per concern:

- ``app``: the factories (``create_app``, ``create_production_app``) wiring the rest;
- ``starts``: opening cases, one route per registered procedure, and CloudEvents;
- ``cases``: listing and reading cases, and the events a case accepts;
- ``approvals``: pending approvals, decisions;
- ``work``: My work and the case page, and what they read; ``pages``: the pages' headers, and
  ``/`` and the retired ``/approvals`` leading to My work;
- ``health``, ``staff``: readiness, and who a token belongs to;
- ``auth``: tokens and role rules; ``store``: the database side; ``bodies``: body limits,
  exact JSON and fingerprints; ``errors``: the error shape; ``request_log``: a line per
  request.

Procedures come from ``registry``: nothing here names one.
"""

from __future__ import annotations

from starter.api.app import create_app, create_production_app
from starter.api.bodies import MAX_BODY_BYTES, MAX_JSON_DEPTH
from starter.api.store import Store

__all__ = ["MAX_BODY_BYTES", "MAX_JSON_DEPTH", "Store", "create_app", "create_production_app"]

"""The registry is the one list of procedures: every entry point derives from it.

Each test runs once per registered procedure (or event), so a new entry in
``registry.PROCEDURES`` is checked here without this file changing.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment

import registry
from activities.cases import CaseActivities
from activities.staff import ROLES
from registry import EVENTS, PROCEDURES, Event, Procedure
from settings import Settings
from starter import EventForbidden, parse_event
from starter.api import create_app
from starter.cli import build_parser
from tests.conftest import Shop
from worker import build_worker
from workflows.models import CaseState, StaffMember

BASE_URL = "http://casework.test"
ALL_EVENTS = sorted(EVENTS.values(), key=lambda e: e.name)


def by_name(value: object) -> str:
    return str(getattr(value, "name", value))


@pytest.fixture
async def http(
    env: WorkflowEnvironment, shop: Shop, settings: Settings, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(env.client, database_url=database_url, settings=settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL, timeout=30
    ) as client:
        yield client


@pytest.fixture
async def openapi(http: httpx.AsyncClient) -> dict[str, Any]:
    schema: dict[str, Any] = (await http.get("/openapi.json")).json()
    return schema


# ---- the worker ----------------------------------------------------------------------------


@pytest.mark.parametrize("procedure", PROCEDURES, ids=by_name)
async def test_every_procedure_runs_on_the_worker(
    procedure: Procedure[Any],
    env: WorkflowEnvironment,
    activities: CaseActivities,
    settings: Settings,
) -> None:
    worker = build_worker(env.client, activities=activities, settings=settings)
    assert procedure.workflow in worker.config()["workflows"]


@pytest.mark.parametrize("procedure", PROCEDURES, ids=by_name)
def test_every_procedure_declares_the_state_its_workflow_answers(
    procedure: Procedure[Any],
) -> None:
    defn = workflow._Definition.must_from_class(procedure.workflow)
    assert "state" in defn.queries
    assert issubclass(procedure.state, CaseState)
    assert getattr(procedure.workflow, "state_model", None) is procedure.state
    assert "extra" not in procedure.state.model_fields


@pytest.mark.parametrize(
    ("procedure", "event"),
    [(p, e) for p in PROCEDURES for e in p.events],
    ids=lambda value: by_name(value),
)
def test_every_event_a_procedure_accepts_has_its_handlers(
    procedure: Procedure[Any], event: Event
) -> None:
    defn = workflow._Definition.must_from_class(procedure.workflow)
    assert event.signal in defn.signals
    if event.update is not None:
        assert event.update in defn.updates


def test_state_models_ignore_the_extra_map_of_recorded_answers() -> None:
    # Update results recorded before state was typed carry ``extra``; they still read.
    for procedure in PROCEDURES:
        recorded = {
            "case_id": f"{procedure.command}-1",
            "type": procedure.case_type.value,
            "status": "inspecting",
            "step": "Inspecting",
            "order_id": "ORD-1",
            "customer_id": "C-100",
            "amount": None,
            "requested_by": "agent-amy",
            "extra": {"ra_number": "RA-2026-000001"},
        }
        state = procedure.state.model_validate(recorded)
        assert state.case_id == f"{procedure.command}-1"


# ---- the HTTP API --------------------------------------------------------------------------


@pytest.mark.parametrize("procedure", PROCEDURES, ids=by_name)
async def test_every_procedure_has_a_start_route_in_the_openapi(
    procedure: Procedure[Any], openapi: dict[str, Any]
) -> None:
    operation = openapi["paths"][f"/v1/{procedure.path}"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": f"#/components/schemas/{procedure.request.__name__}"}
    assert procedure.request.__name__ in openapi["components"]["schemas"]
    assert set(operation["responses"]) >= {"200", "202", "401", "403", "409", "415", "422"}


@pytest.mark.parametrize("procedure", PROCEDURES, ids=by_name)
async def test_every_procedure_start_refuses_other_roles_than_backend(
    procedure: Procedure[Any], http: httpx.AsyncClient, shop: Shop
) -> None:
    response = await http.post(
        f"/v1/{procedure.path}",
        json={"request_id": "r-1"},
        headers={"Authorization": f"Bearer {shop.tokens['agent-amy']}"},
    )
    assert response.status_code == 403, response.text
    assert response.json() == {"error": "forbidden", "detail": "role 'agent' may not start cases"}


async def test_cloudevent_types_are_the_registered_procedures(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    response = await http.post(
        "/v1/events",
        json={"specversion": "1.0", "id": "e-1", "source": "s", "type": "x.y", "data": {}},
        headers={
            "Authorization": f"Bearer {shop.tokens['backend']}",
            "Content-Type": "application/cloudevents+json",
        },
    )
    assert response.status_code == 422, response.text
    known = ", ".join(sorted(p.event_type for p in PROCEDURES))
    assert response.json()["detail"] == f"unknown event type 'x.y' (known: {known})"


async def test_the_case_event_route_documents_every_event_type(openapi: dict[str, Any]) -> None:
    operation = openapi["paths"]["/v1/cases/{case_id}/events"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["type"]["enum"] == sorted(EVENTS)


@pytest.mark.parametrize("event", ALL_EVENTS, ids=by_name)
async def test_every_event_body_is_documented_without_its_actor_field(
    event: Event, openapi: dict[str, Any]
) -> None:
    operation = openapi["paths"]["/v1/cases/{case_id}/events"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    documented = {
        variant["title"]: variant for variant in body["oneOf"]
    }  # one variant per event type, titled by it
    variant = documented[event.name]
    fields = variant["properties"]
    assert fields["type"] == {"const": event.name, "type": "string"}
    assert event.actor not in fields  # the entry point fills it from the token
    assert event.actor not in variant.get("required", [])
    expected = set(event.model.model_fields) - {event.actor}
    assert expected <= set(fields)


@pytest.mark.parametrize("procedure", PROCEDURES, ids=by_name)
async def test_every_procedure_state_is_documented_for_get_case(
    procedure: Procedure[Any], openapi: dict[str, Any]
) -> None:
    schemas = openapi["components"]["schemas"]
    for name in procedure.state.model_fields:
        documented = [s for s in schemas.values() if name in s.get("properties", {})]
        assert documented, f"{name} of {procedure.state.__name__} is not in the OpenAPI"


# ---- who may send each event ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "role"), [(e, r) for e in ALL_EVENTS for r in ROLES], ids=by_name
)
def test_every_event_is_accepted_from_exactly_its_roles(event: Event, role: str) -> None:
    sender = StaffMember(
        id=f"{role}-1", name=role, email=f"{role}@x.test", role=role, approval_limit=Decimal(0)
    )
    if role in event.roles:
        # A field of the event's own may be missing: the role itself must be accepted.
        with contextlib.suppress(ValidationError):
            parse_event(event.name, {"event_id": "evt-1"}, sender)
    else:
        with pytest.raises(EventForbidden):
            parse_event(event.name, {"event_id": "evt-1"}, sender)


@pytest.mark.parametrize("event", ALL_EVENTS, ids=by_name)
async def test_every_event_from_a_role_not_allowed_is_403_over_http(
    event: Event, http: httpx.AsyncClient, shop: Shop
) -> None:
    staff_of_role = {"agent": "agent-amy", "backend": "backend", "warehouse": "warehouse-wes"}
    staff_of_role |= {"supervisor": "sup-sam", "manager": "mgr-mia", "qa": "qa-quinn"}
    staff_of_role |= {"accounting": "acct-ana"}
    for role in ROLES:
        if role in event.roles:
            continue
        response = await http.post(
            "/v1/cases/refund-nobody/events",
            json={"type": event.name, "event_id": "evt-1"},
            headers={"Authorization": f"Bearer {shop.tokens[staff_of_role[role]]}"},
        )
        assert response.status_code == 403, (role, response.text)
        assert response.json()["error"] == "forbidden"


def test_event_roles_are_staff_roles() -> None:
    for event in EVENTS.values():
        assert set(event.roles) <= set(ROLES), event.name


# ---- the CLI -------------------------------------------------------------------------------


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("procedure", PROCEDURES, ids=by_name)
def test_every_procedure_has_a_cli_command_for_each_request_field(
    procedure: Procedure[Any],
) -> None:
    command = _commands(build_parser())[procedure.command]
    options = {action.dest for action in command._actions}
    callers_fields = set(procedure.request.model_fields) - set(procedure.handed_over)
    assert callers_fields <= options
    # A link to the case that handed the work over is never a caller's to set.
    assert not set(procedure.handed_over) & options


@pytest.mark.parametrize("procedure", [p for p in PROCEDURES if p.handed_over], ids=by_name)
async def test_a_caller_may_not_set_a_handed_over_field(
    http: httpx.AsyncClient, procedure: Procedure[Any], shop: Shop
) -> None:
    for name in procedure.handed_over:
        response = await http.post(
            f"/v1/{procedure.path}",
            json={"request_id": "req-handed-over", name: "some-case"},
            headers=shop.auth("backend"),
        )
        assert response.status_code == 422, response.text
        assert response.json()["fields"] == [
            {
                "field": name,
                "message": "set by the case that hands the work over, never by a caller",
            }
        ]


@pytest.mark.parametrize("procedure", PROCEDURES, ids=by_name)
def test_every_choice_field_offers_its_values_on_the_cli(procedure: Procedure[Any]) -> None:
    command = _commands(build_parser())[procedure.command]
    by_dest = {action.dest: action for action in command._actions}
    for name, field in procedure.request.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, enum.Enum):
            assert by_dest[name].choices == [member.value for member in field.annotation]


def test_the_registry_lookups_agree() -> None:
    assert tuple(p.workflow for p in PROCEDURES) == registry.WORKFLOWS
    assert {p.case_type for p in PROCEDURES} == set(registry.BY_CASE_TYPE)
    assert len({p.path for p in PROCEDURES}) == len(PROCEDURES)
    assert len({p.command for p in PROCEDURES}) == len(PROCEDURES)


def test_the_api_docs_list_every_event_with_its_roles() -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    for event in EVENTS.values():
        roles = ", ".join(f"`{role}`" for role in event.roles)
        assert f"| `{event.name}` | {roles} | `{event.actor}` = the caller |" in docs

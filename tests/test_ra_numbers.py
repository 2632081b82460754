"""RA numbers: minted by the database, once per case, never shared, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.carrier import LocalCarrier
from activities.cases import CaseActivities
from activities.orders import LocalOrderSystem
from activities.payments import LocalPaymentGateway
from settings import Settings
from tests.conftest import Cases, Shop
from tests.return_helpers import awaiting_return, delivered_order, ra_rows, return_of, start
from worker import WORKFLOWS, build_activities, build_worker
from workflows.models import CaseOpening, CaseType
from workflows.return_models import RaIssue, RaIssued, RaStatus, ReturnItem
from workflows.sandbox import workflow_runner

T = TypeVar("T")
BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def open_cases(activities: CaseActivities, order_id: str, count: int) -> list[str]:
    case_ids = [f"return-{order_id}-{n}" for n in range(count)]
    for case_id in case_ids:
        activities.open_case(
            CaseOpening(
                case_id=case_id,
                case_type=CaseType.RETURN,
                order_id=order_id,
                customer_id="C-100",
                amount=None,
                requested_by="agent-amy",
                request={},
                opened_at=NOW,
            )
        )
    return case_ids


def mint(case_id: str, order_id: str, sku: str = "BISON-RIBEYE", quantity: int = 1) -> RaIssue:
    return RaIssue(
        case_id=case_id,
        order_id=order_id,
        customer_id="C-100",
        items=(ReturnItem(sku=sku, quantity=quantity),),
        issued_at=NOW,
        expires_at=NOW + timedelta(days=30),
    )


def all_at_once(calls: list[Callable[[], T]]) -> list[T]:
    """Run every call on its own thread, released together."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


# ---- the activity, called concurrently ------------------------------------------------------


@BOTH
def test_concurrent_returns_never_share_an_ra_number(
    activities: CaseActivities, shop: Shop
) -> None:
    shop.add_order("ORD-RA", "1600.00", lines=(("BISON-RIBEYE", 16, "100.00"),))
    case_ids = open_cases(activities, "ORD-RA", 16)

    results = all_at_once(
        [lambda c=c: activities.issue_ra_number(mint(c, "ORD-RA")) for c in case_ids]  # type: ignore[misc]
    )

    numbers = [issued.ra.ra_number for issued in results if issued.ra]
    assert len(numbers) == len(set(numbers)) == 16
    rows = ra_rows(shop)
    assert len(rows) == 16
    for row in rows:
        assert row.ra_number == f"RA-2026-{row.id:06d}"
        assert re.fullmatch(r"RA-2026-\d{6}", row.ra_number)


@BOTH
def test_concurrent_attempts_for_one_case_mint_one_ra(
    activities: CaseActivities, shop: Shop
) -> None:
    shop.add_order("ORD-RA", "100.00", lines=(("BISON-RIBEYE", 1, "100.00"),))
    [case_id] = open_cases(activities, "ORD-RA", 1)

    results = all_at_once([lambda: activities.issue_ra_number(mint(case_id, "ORD-RA"))] * 8)

    assert {issued.ra.ra_number for issued in results if issued.ra} == {ra_rows(shop)[0].ra_number}
    assert len(ra_rows(shop)) == 1


@BOTH
def test_concurrent_returns_of_the_same_items_get_one_ra(
    activities: CaseActivities, shop: Shop
) -> None:
    shop.add_order("ORD-RA", "200.00", lines=(("BISON-RIBEYE", 2, "100.00"),))
    case_ids = open_cases(activities, "ORD-RA", 6)

    results: list[RaIssued] = all_at_once(
        [lambda c=c: activities.issue_ra_number(mint(c, "ORD-RA", quantity=2)) for c in case_ids]  # type: ignore[misc]
    )

    assert sum(1 for issued in results if issued.ra) == 1
    refusals = {issued.refusal for issued in results if not issued.ra}
    assert refusals == {"every BISON-RIBEYE on this order is already being returned"}
    assert len(ra_rows(shop)) == 1


def test_an_expired_ra_frees_its_items(activities: CaseActivities, shop: Shop) -> None:
    shop.add_order("ORD-RA", "100.00", lines=(("BISON-RIBEYE", 1, "100.00"),))
    first, second = open_cases(activities, "ORD-RA", 2)
    assert activities.issue_ra_number(mint(first, "ORD-RA")).ra is not None
    assert activities.issue_ra_number(mint(second, "ORD-RA")).ra is None

    activities.returns.mark(first, RaStatus.EXPIRED, NOW + timedelta(days=30))

    assert activities.issue_ra_number(mint(second, "ORD-RA")).ra is not None


# ---- through the workflow: a lost answer never mints a second RA ----------------------------


class MintThenFailFirstAttempt(CaseActivities):
    """Mints, then fails its first attempt: the answer is lost after the row is written."""

    attempts = 0

    @activity.defn(name="issue_ra_number")
    def issue_ra_number(self, request: RaIssue) -> RaIssued:
        self.attempts += 1
        issued = super().issue_ra_number(request)
        if activity.info().attempt == 1:
            raise RuntimeError("connection lost after the RA was minted")
        return issued


class MintThenStop(CaseActivities):
    """Mints, then never answers: the worker stops before it can report the RA."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.minted = threading.Event()

    @activity.defn(name="issue_ra_number")
    def issue_ra_number(self, request: RaIssue) -> RaIssued:
        super().issue_ra_number(request)
        self.minted.set()
        activity.wait_for_worker_shutdown_sync()
        raise RuntimeError("worker stopped before reporting the RA")


def local_activities(cls: type[CaseActivities], shop: Shop, settings: Settings) -> CaseActivities:
    return cls(
        shop.db,
        orders=LocalOrderSystem(shop.db),
        payments=LocalPaymentGateway(shop.db),
        carrier=LocalCarrier(shop.db),
        settings=settings,
    )


async def test_ra_minted_once_when_the_activity_is_retried_after_minting(
    env: WorkflowEnvironment, client: Client, shop: Shop, settings: Settings
) -> None:
    flaky = local_activities(MintThenFailFirstAttempt, shop, settings)
    cases = Cases(client, settings.task_queue)
    async with build_worker(client, activities=flaky, settings=settings):
        try:
            handle = await start(cases, return_of(await delivered_order(env, shop)))
            ra_number = await awaiting_return(client, handle)
        finally:
            await cases.close_all()

    assert isinstance(flaky, MintThenFailFirstAttempt) and flaky.attempts == 2
    [row] = ra_rows(shop)
    assert row.ra_number == ra_number


async def test_ra_minted_once_when_the_worker_stops_right_after_minting(
    env: WorkflowEnvironment, client: Client, shop: Shop, settings: Settings
) -> None:
    stopping = local_activities(MintThenStop, shop, settings)
    cases = Cases(client, settings.task_queue)
    try:
        # No workflow cache: a stopped worker's sticky queue would otherwise hold the case's
        # next task (and every query) until the server times it out.
        async with Worker(
            client,
            task_queue=settings.task_queue,
            workflows=list(WORKFLOWS),
            workflow_runner=workflow_runner(),
            activities=stopping.all(),
            activity_executor=ThreadPoolExecutor(max_workers=2),
            max_cached_workflows=0,
        ):
            handle = await start(cases, return_of(await delivered_order(env, shop)))
            assert isinstance(stopping, MintThenStop)
            assert await asyncio.to_thread(stopping.minted.wait, 10)
        [minted] = ra_rows(shop)

        # A new worker process: its own activities, the same database.
        async with build_worker(
            client, activities=build_activities(shop.db, settings), settings=settings
        ):
            ra_number = await awaiting_return(client, handle)
            await cases.close_all()  # while a worker can still finish in-flight tasks
    finally:
        await cases.close_all()

    [row] = ra_rows(shop)
    assert row.ra_number == minted.ra_number == ra_number

"""My work and the case page, driven in headless Chromium over uvicorn, the time-skipping
server and the real worker: each role's flow, on a phone (390 px) and a wide screen
(1440 px), with screenshots kept in tests/artifacts/my-work/ (not committed) and an axe-core
accessibility check. My work took over the approvals page: its decisions with a note, the
server's refusals shown as given, decisions taken elsewhere, and its old links."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, expect
from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from infra.db import Delegation
from settings import Settings
from starter import case_state, decide
from starter.api import create_app
from starter.api.pages import PAGE_HEADERS
from tests.browser_helpers import PHONE, WIDE, chromium, open_page, screenshot, serious_violations
from tests.case_helpers import state_of
from tests.complaint_helpers import state_when
from tests.conftest import Cases, Shop
from tests.http_helpers import serve
from tests.rush_helpers import rush_state
from tests.work_helpers import (
    add_staff,
    complaint_waiting_for_qa,
    delegate,
    recorded_status,
    refund_waiting,
    return_waiting,
    rush_waiting_for_customer,
    set_approval_limit,
)
from workflows.models import ApprovalStatus, CaseStatus, Decision, DecisionKind
from workflows.return_models import ReturnState

ON_BOTH_DATABASES = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def site(
    client: Client, cases: Cases, settings: Settings, database_url: str
) -> AsyncIterator[str]:
    async with serve(create_app(client, database_url=database_url, settings=settings)) as url:
        yield url


async def sign_in(page: Page, token: str, path: str = "/work") -> None:
    await page.goto(path)
    await page.get_by_label("Your API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()


def listed(page: Page, case_id: str) -> Locator:
    return page.locator("#items .item").filter(has_text=case_id)


async def keep(page: Page, name: str) -> None:
    await screenshot(page, "my-work", name)


async def no_serious_violations(page: Page) -> None:
    assert await serious_violations(page) == []


async def in_viewport(page: Page, selector: str) -> None:
    box = await page.locator(selector).first.bounding_box()
    viewport = page.viewport_size
    assert box is not None and viewport is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], box
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], box


async def test_a_manager_approves_from_the_list_with_the_keyboard(
    browser: Browser, site: str, cases: Cases, shop: Shop, client: Client
) -> None:
    shop.add_order("ORD-3001", "3000.00", customer_id="C-200")
    first = await refund_waiting(cases, shop, "2500.00", order_id="ORD-3001", customer_id="C-200")
    second = await refund_waiting(cases, shop, "750.00")
    page = await open_page(browser, site, WIDE)
    await sign_in(page, shop.tokens["mgr-mia"])

    items = page.locator("#items .item")
    await expect(items).to_have_count(2)
    await expect(page.locator("#summary")).to_contain_text("2 waiting for you")
    top = items.nth(0)
    await expect(top.locator(".amount")).to_have_text("$2,500.00")
    await expect(top).to_contain_text("Grace Hopper (C-200)")
    await expect(top).to_contain_text("VIP")
    await expect(top.locator(".clock")).to_contain_text("escalates in")
    # The wide screen shows the first case beside the list: its order and money.
    detail = page.locator("#detail-pane")
    await expect(page.locator("#detail-title")).to_contain_text(first)
    await expect(detail).to_contain_text("Already refunded")
    await expect(detail).to_contain_text("$3,000.00")
    await expect(detail).to_contain_text("thawed on arrival")
    # The deadline in business time, and the instant on the business clock, zone named.
    await expect(page.locator("#detail-clock")).to_have_text(
        re.compile(r"escalates in \d+ business \w+ \(.* E[SD]T\)")
    )
    await keep(page, "work-manager-1440")
    await no_serious_violations(page)

    await page.keyboard.press("a")  # approve the case shown
    await expect(page.locator("#notice")).to_have_text(f"Approved {first} ($2,500.00).")
    await expect(page.locator("#detail-title")).to_contain_text(second)
    await page.keyboard.press("k")  # back to the top: the same one, now the only one
    await expect(page.locator("#detail-actions form.decide")).to_be_visible()
    await page.keyboard.press("r")  # reject it
    await expect(page.locator("#notice")).to_have_text(f"Rejected {second} ($750.00).")
    await expect(page.locator("#summary")).to_have_text("Nothing is waiting for you.")

    approved = (await case_state(client, first)).approval
    rejected = (await case_state(client, second)).approval
    assert approved is not None and rejected is not None
    assert (approved.status, approved.decided_by) == (ApprovalStatus.APPROVED, "mgr-mia")
    assert (rejected.status, rejected.decided_by) == (ApprovalStatus.REJECTED, "mgr-mia")

    await recorded_status(shop, first, CaseStatus.COMPLETED)  # its audit lines written
    await page.get_by_role("button", name="Done by me").click()
    await expect(page.locator("#done")).to_contain_text(f"Approval approved on {first}")
    await page.context.close()


async def test_on_a_phone_the_approve_button_is_in_view_without_scrolling(
    browser: Browser, site: str, cases: Cases, shop: Shop, client: Client
) -> None:
    case_id = await refund_waiting(cases, shop, "750.00")
    page = await open_page(browser, site, PHONE)
    await sign_in(page, shop.tokens["mgr-mia"])
    await expect(page.locator("#items .item")).to_have_count(1)
    await keep(page, "work-list-390")
    await no_serious_violations(page)
    await page.locator("#items .item .open").first.click()
    await expect(page.locator("#detail-summary")).to_have_text("$750.00 · Ada Lovelace (C-100)")
    approve = page.get_by_role("button", name="Approve", exact=True)
    await expect(approve).to_be_visible()
    await in_viewport(page, "form.decide button.approve")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    await keep(page, "work-manager-390")
    await no_serious_violations(page)
    await approve.click()
    await expect(page.locator("#notice")).to_have_text(f"Approved {case_id} ($750.00).")
    state = await case_state(client, case_id)
    assert state.approval is not None and state.approval.status is ApprovalStatus.APPROVED
    await page.context.close()


async def test_the_warehouse_records_a_receipt_through_the_generated_form(
    browser: Browser,
    site: str,
    cases: Cases,
    shop: Shop,
    client: Client,
    env: WorkflowEnvironment,
) -> None:
    await refund_waiting(cases, shop, "750.00")  # not the warehouse's: never listed
    case_id, ra = await return_waiting(cases, shop, await env.get_current_time())
    page = await open_page(browser, site, PHONE)
    await sign_in(page, shop.tokens["warehouse-wes"])

    items = page.locator("#items .item")
    await expect(items).to_have_count(1)
    await expect(items.first).to_contain_text(ra)
    await expect(items.first.locator(".clock")).to_contain_text("RA expires in")
    await items.first.locator(".open").click()
    form = page.locator('form[data-event="package_received"]')
    await expect(form).to_be_visible()
    await in_viewport(page, 'form[data-event="package_received"] button[type="submit"]')

    await form.get_by_label("Ra Number (required)").fill("not an RA")
    await form.get_by_role("button", name="Send: package received").click()
    error = form.locator(".field-error").first
    await expect(error).to_contain_text("String should match pattern")
    await expect(form.get_by_label("Ra Number (required)")).to_have_attribute(
        "aria-invalid", "true"
    )
    await keep(page, "work-warehouse-390-invalid")
    await no_serious_violations(page)

    await form.get_by_label("Ra Number (required)").fill(ra)
    await form.get_by_label("Note").fill("box intact")
    await form.get_by_role("button", name="Send: package received").click()
    await expect(page.locator("#notice")).to_have_text(f"Package received recorded on {case_id}.")
    await recorded_status(shop, case_id, CaseStatus.INSPECTING)
    state = await case_state(client, case_id, ReturnState)
    assert state.ra_received_at is not None
    assert any(e.event == "package_received" and e.actor == "warehouse-wes" for e in state.timeline)

    # Next, the inspection: a checkbox and an amount, from the model's schema.
    await page.get_by_role("button", name="Refresh").click()
    await page.locator("#items .item .open").first.click()
    inspect = page.locator('form[data-event="inspection_completed"]')
    await inspect.get_by_label("Passed (required)").check()
    await inspect.get_by_label("Refund Amount").fill("12.345")
    await inspect.get_by_role("button", name="Send: inspection completed").click()
    amount_error = inspect.locator('[id$="-refund_amount-error"]')
    await expect(amount_error).to_contain_text("no more than 2 decimal places")
    await inspect.get_by_label("Refund Amount").fill("250.00")
    await inspect.get_by_role("button", name="Send: inspection completed").click()
    await expect(page.locator("#notice")).to_have_text(
        f"Inspection completed recorded on {case_id}."
    )
    await recorded_status(shop, case_id, CaseStatus.COMPLETED)
    # The row is written by the closing email; the case sets its outcome once that returns.
    done = await state_of(client, case_id, ReturnState, lambda state: state.outcome is not None)
    assert done.outcome is not None and done.outcome.amount == Decimal("250.00")
    await page.context.close()


async def test_the_case_page_shows_the_timeline_and_who_decided_read_only(
    browser: Browser, site: str, cases: Cases, shop: Shop, client: Client
) -> None:
    case_id = await refund_waiting(cases, shop, "750.00")
    await decide(client, case_id, Decision(approver_id="mgr-max", decision=DecisionKind.APPROVE))
    await recorded_status(shop, case_id, CaseStatus.COMPLETED)
    for viewport, name in ((PHONE, "390"), (WIDE, "1440")):
        page = await open_page(browser, site, viewport)
        await sign_in(page, shop.tokens["agent-amy"], "/case")
        await page.get_by_label("Case id, order, customer or RA number").fill(case_id)
        await page.get_by_role("button", name="Find").click()
        await expect(page.locator("#case-title")).to_have_text(f"Refund {case_id}")
        await expect(page.locator("#case-status")).to_contain_text("Completed")
        await expect(page.locator("#case-approval")).to_contain_text("mgr-max")
        await expect(page.locator("#case-approval")).to_contain_text("$750.00")
        await expect(page.locator("#case-timeline")).to_contain_text("case opened")
        await expect(page.locator("#case-timeline")).to_contain_text("approval approved (mgr-max)")
        await expect(page.locator("#case-outcome")).to_contain_text("completed")
        await expect(page.locator("#case-emails")).to_contain_text("to ")
        await expect(page.locator("#case-actions")).to_have_text(
            "Read-only: nothing on this case waits for you."
        )
        link = await page.locator("#temporal-link").get_attribute("href")
        assert link is not None and link.endswith(f"/workflows/{case_id}")
        await keep(page, f"case-{name}")
        await no_serious_violations(page)
        await page.context.close()


async def test_the_case_page_offers_the_decision_to_who_may_take_it(
    browser: Browser, site: str, cases: Cases, shop: Shop, client: Client
) -> None:
    case_id = await refund_waiting(cases, shop, "750.00")
    page = await open_page(browser, site, PHONE)
    await sign_in(page, shop.tokens["mgr-mia"], f"/case#{case_id}")
    await expect(page.locator("#case-clocks")).to_contain_text("escalates in")
    await in_viewport(page, "#case-actions form.decide button.approve")
    await page.get_by_label("Note").fill("checked the photos")
    await page.get_by_role("button", name="Approve", exact=True).click()
    await expect(page.locator("#notice")).to_have_text("Approved by mgr-mia.")
    approval = (await case_state(client, case_id)).approval
    assert approval is not None and approval.note == "checked the photos"
    await page.context.close()


async def test_qa_sends_its_findings_and_an_agent_relays_the_customers_answer(
    browser: Browser, site: str, cases: Cases, shop: Shop, client: Client
) -> None:
    complaint_id = await complaint_waiting_for_qa(cases, shop)
    rush_id = await rush_waiting_for_customer(cases, shop)

    page = await open_page(browser, site, PHONE)
    await sign_in(page, shop.tokens["qa-quinn"])
    await expect(page.locator("#items .item")).to_have_count(1)
    await page.locator("#items .item .open").first.click()
    form = page.locator('form[data-event="qa_findings"]')
    await form.get_by_label("Root Cause").fill("cold chain break in transit")
    await form.get_by_label("Lot Affected").check()
    await form.get_by_role("button", name="Send: qa findings").click()
    await expect(page.locator("#notice")).to_have_text(f"Qa findings recorded on {complaint_id}.")
    state = await state_when(client, complaint_id, lambda s: s.qa_root_cause is not None)
    assert state.qa_root_cause == "cold chain break in transit"
    await page.context.close()

    page = await open_page(browser, site, WIDE)
    await sign_in(page, shop.tokens["agent-amy"])
    await expect(page.locator("#items .item")).to_have_count(1)
    accept = page.locator('form[data-event="fee_accepted"]')
    await expect(accept.get_by_label("On Behalf Of")).to_have_value("C-100")
    await expect(page.locator('form[data-event="fee_declined"]')).to_be_visible()
    await keep(page, "work-agent-1440")
    await no_serious_violations(page)
    await accept.get_by_role("button", name="Send: fee accepted").click()
    await expect(page.locator("#notice")).to_have_text(f"Fee accepted recorded on {rush_id}.")
    rush = await rush_state(client, rush_id, lambda s: s.status is not CaseStatus.AWAITING_CUSTOMER)
    assert rush.status in (CaseStatus.PRIORITY, CaseStatus.IN_TRANSIT)
    assert any(e.event == "fee_accepted" and e.actor == "agent-amy" for e in rush.timeline)
    await page.context.close()


async def test_bulk_approval_on_the_page_reports_each_refusal(
    browser: Browser, site: str, cases: Cases, shop: Shop, client: Client, env: WorkflowEnvironment
) -> None:
    within = await refund_waiting(cases, shop, "750.00")
    add_staff(shop, "agent-al", "agent", limit="800.00")
    await delegate(env, shop, "mgr-mia", "agent-al")
    also = await refund_waiting(cases, shop, "780.00")
    page = await open_page(browser, site, WIDE)
    await sign_in(page, shop.tokens["sup-sam"])
    await expect(page.locator("#items .item")).to_have_count(2)
    # agent-al stands in for mgr-mia and decides the second before sup-sam approves both.
    await decide(client, also, Decision(approver_id="agent-al", decision=DecisionKind.APPROVE))
    for case_id in (within, also):
        await page.get_by_label(f"Select {case_id} for bulk approval").check()
    await page.get_by_role("button", name="Approve selected").click()
    await expect(page.locator("#notice")).to_contain_text("Approved 1 of 2.")
    await expect(page.locator("#notice")).to_contain_text(f"{also}: no decision is pending")
    approval = (await case_state(client, within)).approval
    assert approval is not None and approval.decided_by == "sup-sam"
    await page.context.close()


async def test_a_manager_names_who_stands_in_and_ends_it_from_the_page(
    browser: Browser, site: str, shop: Shop
) -> None:
    page = await open_page(browser, site, PHONE)
    await sign_in(page, shop.tokens["mgr-mia"], "/")  # the home page is My work
    await expect(page).to_have_url(f"{site}/work")
    await page.get_by_role("button", name="Delegation").click()
    await page.get_by_label("Staff id of the person standing in").fill("sup-sam")
    await page.get_by_label("From (your local time)").fill("2026-01-01T08:00")
    await page.get_by_label("Until (your local time)").fill("2099-01-01T08:00")
    await page.get_by_role("button", name="Name the delegate").click()
    await expect(page.locator("#delegations")).to_contain_text("sup-sam stands in for you")
    await expect(page.locator("#delegations")).to_contain_text("(now)")
    await no_serious_violations(page)
    await keep(page, "work-delegation-390")

    await page.get_by_label("Staff id of the person standing in").fill("nobody")
    await page.get_by_role("button", name="Name the delegate").click()
    await expect(page.locator("#delegate-error")).to_contain_text("no active staff member")

    await page.get_by_role("button", name="End the delegation to sup-sam now").click()
    await expect(page.locator("#delegations")).to_have_text("None.")
    with shop.db.transaction() as session:
        ends = session.scalars(select(Delegation.ends_at)).all()
    assert len(ends) == 1 and ends[0] <= datetime.now(UTC)
    await page.context.close()


async def test_a_link_to_a_case_opens_it_in_my_work(
    browser: Browser, site: str, cases: Cases, shop: Shop
) -> None:
    case_id = await refund_waiting(cases, shop, "750.00")
    page = await open_page(browser, site, PHONE)
    await sign_in(page, shop.tokens["sup-sam"], f"/work#{case_id}")
    await expect(page.locator("#detail-title")).to_contain_text(case_id)
    await expect(page.locator("#detail-actions form.decide")).to_be_visible()
    await in_viewport(page, "form.decide button.approve")
    await page.context.close()


# ---- what the approvals page did, now on My work -----------------------------------------------


async def test_a_manager_approves_one_case_and_rejects_another_with_a_note(
    browser: Browser, site: str, cases: Cases, shop: Shop, client: Client
) -> None:
    approve_id = await refund_waiting(cases, shop, "750.00")
    reject_id = await refund_waiting(cases, shop, "800.00")
    page = await open_page(browser, site, PHONE)
    await sign_in(page, shop.tokens["mgr-mia"])

    await expect(page.locator("#items .item")).to_have_count(2)
    summary = page.locator("#summary")
    await expect(summary).to_have_text("2 waiting for you · nearest deadline.")
    first = listed(page, approve_id)
    await expect(first.locator(".amount")).to_have_text("$750.00")
    await expect(first.locator(".meta")).to_contain_text("ORD-1001")

    await first.locator(".open").click()
    await expect(page.locator("#detail-title")).to_contain_text(approve_id)
    # The timeline, read from the workflow when opened, on the business clock (zone named).
    await page.locator("#detail-timeline summary").click()
    await expect(page.locator("#detail-entries")).to_contain_text(
        re.compile(r"E[SD]T — case opened \(agent-amy\)")
    )
    decide_form = page.locator("#detail-actions form.decide")
    await decide_form.get_by_label("Note").fill("regular customer")
    await decide_form.get_by_role("button", name="Approve", exact=True).click()
    await expect(page.locator("#notice")).to_have_text(f"Approved {approve_id} ($750.00).")
    await expect(listed(page, approve_id)).to_have_count(0)

    # The next case comes up at once, its timeline closed.
    await expect(page.locator("#detail-title")).to_contain_text(reject_id)
    await expect(page.locator("#detail-timeline")).not_to_have_attribute("open", "")
    await decide_form.get_by_label("Note").fill("outside policy")
    await decide_form.get_by_role("button", name="Reject", exact=True).click()
    await expect(page.locator("#notice")).to_have_text(f"Rejected {reject_id} ($800.00).")
    await expect(page.locator("#items .item")).to_have_count(0)
    await expect(summary).to_have_text("Nothing is waiting for you.")

    approved = (await case_state(client, approve_id)).approval
    rejected = (await case_state(client, reject_id)).approval
    assert approved is not None and rejected is not None
    assert (approved.status, approved.decided_by, approved.note) == (
        ApprovalStatus.APPROVED,
        "mgr-mia",
        "regular customer",
    )
    assert (rejected.status, rejected.decided_by, rejected.note) == (
        ApprovalStatus.REJECTED,
        "mgr-mia",
        "outside policy",
    )
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    await page.context.close()


@ON_BOTH_DATABASES
async def test_a_refused_decision_shows_the_servers_reason(
    browser: Browser, site: str, cases: Cases, shop: Shop, client: Client
) -> None:
    case_id = await refund_waiting(cases, shop, "750.00")
    page = await open_page(browser, site, PHONE)
    # sup-sam (limit 1000.00) follows a link to the case kept from the old approvals page...
    await sign_in(page, shop.tokens["sup-sam"], f"/approvals#case/{case_id}")
    await expect(page).to_have_url(f"{site}/work#case/{case_id}")
    await expect(page.locator("#detail-title")).to_contain_text(case_id)
    decide_form = page.locator("#detail-actions form.decide")
    await expect(decide_form).to_be_visible()
    # ...and the directory lowers their limit below the amount while the case is open.
    set_approval_limit(shop, "sup-sam", "600.00")
    await decide_form.get_by_role("button", name="Approve", exact=True).click()
    await expect(decide_form.get_by_role("alert")).to_have_text(
        "sup-sam's approval limit 600.00 is below 750.00"
    )
    await expect(decide_form.get_by_role("button", name="Approve", exact=True)).to_be_enabled()
    await expect(page.locator("#notice")).to_have_text("")
    state = await case_state(client, case_id)
    assert state.approval is not None and state.approval.status is ApprovalStatus.PENDING
    await page.context.close()


@ON_BOTH_DATABASES
async def test_a_decision_taken_elsewhere_leaves_the_list_and_the_case_shown(
    browser: Browser, site: str, cases: Cases, shop: Shop, client: Client
) -> None:
    case_id = await refund_waiting(cases, shop, "750.00")
    page = await open_page(browser, site, WIDE)
    await sign_in(page, shop.tokens["mgr-mia"])
    await expect(listed(page, case_id)).to_have_count(1)
    # The wide screen shows it beside the list, its decision offered.
    await expect(page.locator("#detail-actions form.decide")).to_be_visible()

    await decide(client, case_id, Decision(approver_id="mgr-max", decision=DecisionKind.APPROVE))
    await recorded_status(shop, case_id, CaseStatus.COMPLETED)
    await page.get_by_role("button", name="Refresh").click()
    await expect(listed(page, case_id)).to_have_count(0)
    await expect(page.locator("#summary")).to_have_text("Nothing is waiting for you.")
    # Its decision is no longer offered beside the list: it was taken.
    await expect(page.locator("#detail-actions")).to_have_text(
        "Done elsewhere: nothing on this case waits for you now."
    )
    await expect(page.locator("#notice")).to_have_text(
        f"{case_id} was done elsewhere and has left your list."
    )
    approval = (await case_state(client, case_id)).approval
    assert approval is not None and approval.decided_by == "mgr-max"
    await page.context.close()


async def test_a_bad_token_is_refused_on_the_sign_in_form(browser: Browser, site: str) -> None:
    page = await open_page(browser, site, PHONE)
    await sign_in(page, "cw_not-a-token")
    await expect(page.locator("#sign-in-form").get_by_role("alert")).to_have_text(
        "the token is not valid"
    )
    await expect(page.get_by_label("Your API token")).to_be_visible()
    await expect(page.locator("#app")).to_be_hidden()
    await page.context.close()


async def test_a_case_with_nothing_for_the_caller_says_so_when_linked(
    browser: Browser, site: str, cases: Cases, shop: Shop
) -> None:
    case_id = await refund_waiting(cases, shop, "750.00")
    page = await open_page(browser, site, PHONE)
    # sup-low's limit (600.00) is below the amount: the case is shown, no decision offered.
    await sign_in(page, shop.tokens["sup-low"], f"/work#case/{case_id}")
    await expect(page.locator("#detail-title")).to_contain_text(case_id)
    await expect(page.locator("#detail-actions")).to_have_text(
        "Nothing on this case waits for you."
    )
    await expect(page.locator("#detail-actions form.decide")).to_have_count(0)
    await page.context.close()


async def test_the_pages_keep_their_security_headers_and_old_addresses_lead_to_my_work(
    site: str,
) -> None:
    async with httpx.AsyncClient(base_url=site) as http:
        for path in ("/work", "/case"):
            served = await http.get(path)
            assert served.status_code == 200
            assert {name: served.headers[name] for name in PAGE_HEADERS} == PAGE_HEADERS
        old = await http.get("/approvals")
        home = await http.get("/")
    assert (old.status_code, old.headers["location"]) == (301, "/work")
    assert (home.status_code, home.headers["location"]) == (307, "/work")

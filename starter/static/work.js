// My work: the open cases waiting for the signed-in person (GET /v1/work), one case at a
// time beside the list (or instead of it on a phone), its action first: a decision, or a
// form generated from the event's model. Done by me, and delegation for managers.

import { api, session, setUpSignIn } from "./session.js";
import { ago, money, title, when, words } from "./format.js";
import { decisionForm } from "./decision.js";
import { eventForm, loadForms } from "./forms.js";
import { caseFacts, timelineItems } from "./facts.js";
import { loadDone } from "./work_done.js";
import { delegate, loadDelegations } from "./work_delegation.js";

const POLL_MS = 20000;
// The list reads the database, which records a decision or an event a moment after the
// case takes it: hide what was done here until the list has caught up.
const HIDE_DONE_MS = 120000;

const $ = (id) => document.getElementById(id);
const state = {
  page: 1,
  pageSize: 25,
  total: 0,
  items: [],
  current: null, // case id shown in the detail pane
  picked: new Set(), // case ids selected for bulk approval
  doneHere: new Map(), // case id -> { at, names: the actions done here }
  currency: "USD",
  timezone: "UTC",
  donePage: 1,
  filtersFilled: false,
  timer: null,
  asked: 0, // list requests sent
};

function notice(text) {
  $("notice").textContent = text;
}

// ---- the list -------------------------------------------------------------------------------

function query() {
  const params = new URLSearchParams({ page: state.page, page_size: state.pageSize });
  for (const name of ["q", "procedure", "status", "min_amount", "max_amount", "sort"]) {
    const value = $(name).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

function fillFilters(page) {
  if (state.filtersFilled) return;
  state.filtersFilled = true;
  for (const [id, values] of [["procedure", page.procedures], ["status", page.statuses]]) {
    for (const value of values) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = title(value);
      $(id).append(option);
    }
  }
}

async function refresh() {
  if (!session.me) return;
  // Answers may come back out of order (a poll, a click): only the latest request's counts.
  const asked = ++state.asked;
  let page;
  try {
    page = await api(`/v1/work?${query()}`);
  } catch (err) {
    if (asked === state.asked) notice(err.message);
    return;
  }
  if (asked !== state.asked) return;
  const wasListed = state.items.some((i) => i.case_id === state.current);
  fillFilters(page);
  state.currency = page.currency;
  state.timezone = page.timezone;
  const now = Date.now();
  for (const [caseId, { at }] of state.doneHere) {
    if (now - at > HIDE_DONE_MS) state.doneHere.delete(caseId);
  }
  // Hidden while the list still offers only what was just done; the case's next step shows.
  const stale = (item) => {
    const done = state.doneHere.get(item.case_id);
    return done !== undefined && item.actions.every((a) => done.names.has(a.name));
  };
  state.items = page.items.filter((item) => !stale(item));
  state.total = Math.max(0, page.total - (page.items.length - state.items.length));
  renderList();
  if (state.current && !state.items.some((i) => i.case_id === state.current)) {
    if ($("open-view").dataset.showing !== "detail") clearDetail();
    else if (wasListed) recheck(state.current);
  }
}

// The case shown left the list: decided or moved on elsewhere (another person, another tab),
// or only filtered out. Its context says which; a form it no longer takes is not left offered.
async function recheck(caseId) {
  let context;
  try {
    context = await api(`/v1/work/cases/${encodeURIComponent(caseId)}`);
  } catch {
    return; // the next poll asks again
  }
  if (state.current !== caseId || context.actions.length) return;
  settled(caseId, "Done elsewhere: nothing on this case waits for you now.");
  notice(`${caseId} was done elsewhere and has left your list.`);
}

function settled(caseId, text) {
  if (state.current === caseId) $("detail-actions").replaceChildren(muted(text));
}

function whatFor(item) {
  if (item.actions.some((a) => a.kind === "decision")) return "Decide";
  return item.actions.map((a, i) => (i ? a.title.toLowerCase() : a.title)).join(" or ");
}

function renderList() {
  const list = $("items");
  const kept = new Set(state.items.map((i) => i.case_id));
  for (const id of [...state.picked]) if (!kept.has(id)) state.picked.delete(id);
  list.replaceChildren(...state.items.map(itemNode));
  const count = state.items.length;
  const pages = Math.max(1, Math.ceil(state.total / state.pageSize));
  $("summary").textContent =
    state.total === 0
      ? "Nothing is waiting for you."
      : `${state.total} waiting for you · ${words($("sort").selectedOptions[0].textContent).toLowerCase()}.`;
  $("page-label").textContent = `Page ${state.page} of ${pages}`;
  $("prev").disabled = state.page <= 1;
  $("next-page").disabled = state.page >= pages;
  $("bulk").hidden = !state.items.some(decides);
  updateBulk();
  if (count && !state.current && window.matchMedia("(min-width: 1024px)").matches) {
    show(state.items[0].case_id);
  }
}

const decides = (item) => item.actions.some((a) => a.kind === "decision");

function itemNode(item) {
  const li = document.createElement("li");
  li.className = "item";
  li.dataset.caseId = item.case_id;
  if (item.case_id === state.current) li.setAttribute("aria-current", "true");
  if (decides(item)) {
    const pick = document.createElement("input");
    pick.type = "checkbox";
    pick.className = "pick";
    pick.checked = state.picked.has(item.case_id);
    pick.setAttribute("aria-label", `Select ${item.case_id} for bulk approval`);
    pick.addEventListener("change", () => {
      if (pick.checked) state.picked.add(item.case_id);
      else state.picked.delete(item.case_id);
      updateBulk();
    });
    li.append(pick);
  } else {
    li.append(document.createElement("span"));
  }
  const open = document.createElement("button");
  open.type = "button";
  open.className = "open";
  const line1 = document.createElement("span");
  line1.className = "line1";
  const amount = document.createElement("span");
  amount.className = "amount";
  amount.textContent = item.amount === null ? "" : money(item.amount, state.currency);
  const what = document.createElement("span");
  what.className = "what";
  what.textContent = `${whatFor(item)} · ${title(item.type)}`;
  line1.append(amount, what);
  if (item.vip) line1.append(badge("VIP", "vip"));
  if (item.standing_in_for.length) line1.append(badge(`for ${item.standing_in_for.join(", ")}`));
  const meta = document.createElement("span");
  meta.className = "meta";
  const who = item.customer_name ? `${item.customer_name} (${item.customer_id})` : item.customer_id;
  meta.textContent = [item.case_id, item.order_id, who, item.ra_number].filter(Boolean).join(" · ");
  const clock = document.createElement("span");
  clock.className = `clock ${clockClass(item.clock)}`.trim();
  clock.textContent = item.clock
    ? `${item.clock.warning ? "At risk: " : ""}${item.clock.label} · waiting since ${ago(item.waiting_since)}`
    : `waiting since ${ago(item.waiting_since)}`;
  if (item.clock) clock.title = item.clock.local;
  open.append(line1, meta, clock);
  open.addEventListener("click", () => show(item.case_id, { focus: true }));
  li.append(open);
  return li;
}

const clockClass = (c) => (!c ? "" : c.overdue ? "overdue" : c.warning ? "warning" : "");

function badge(text, kind = "") {
  const span = document.createElement("span");
  span.className = `badge ${kind}`.trim();
  span.textContent = text;
  return span;
}

function updateBulk() {
  const n = state.picked.size;
  $("bulk-count").textContent = n ? `${n} selected` : "Select cases to approve them together.";
  $("bulk-approve").disabled = n === 0;
}

async function bulkApprove() {
  const ids = [...state.picked];
  if (!ids.length) return;
  $("bulk-approve").disabled = true;
  try {
    const answer = await api("/v1/work/approve", { method: "POST", body: { case_ids: ids } });
    const refused = answer.items.filter((r) => !r.ok);
    for (const r of answer.items) {
      if (r.ok) {
        done(r.case_id, "decision");
        settled(r.case_id, "Approved with the selection.");
      }
      state.picked.delete(r.case_id);
    }
    notice(
      `Approved ${answer.approved} of ${answer.items.length}.` +
        refused.map((r) => ` ${r.case_id}: ${r.detail}`).join(""),
    );
  } catch (err) {
    notice(err.message);
  }
  renderList();
  refresh();
}

function done(caseId, name) {
  const names = state.doneHere.get(caseId)?.names ?? new Set();
  names.add(name);
  state.doneHere.set(caseId, { at: Date.now(), names });
  const before = state.items.length;
  state.items = state.items.filter((i) => i.case_id !== caseId);
  state.total = Math.max(0, state.total - (before - state.items.length));
}

// ---- one case -------------------------------------------------------------------------------

function clearDetail() {
  state.current = null;
  $("detail").hidden = true;
  $("detail-empty").hidden = false;
  delete $("open-view").dataset.showing;
}

async function show(caseId, { focus = false } = {}) {
  const item = state.items.find((i) => i.case_id === caseId);
  state.current = caseId;
  for (const li of $("items").children) {
    if (li.dataset.caseId === caseId) li.setAttribute("aria-current", "true");
    else li.removeAttribute("aria-current");
  }
  $("open-view").dataset.showing = "detail";
  $("detail-empty").hidden = true;
  $("detail").hidden = false;
  $("detail-title").textContent = `${title(item ? item.type : "case")} ${caseId}`;
  $("detail-summary").textContent = item
    ? [
        item.amount === null ? "" : money(item.amount, state.currency),
        item.customer_name ? `${item.customer_name} (${item.customer_id})` : item.customer_id,
        item.vip ? "VIP" : "",
        item.standing_in_for.length ? `for ${item.standing_in_for.join(", ")}` : "",
      ]
        .filter(Boolean)
        .join(" · ")
    : "";
  const clock = $("detail-clock");
  clock.textContent = item && item.clock ? `${item.clock.label} (${item.clock.local})` : "";
  clock.className = `clock ${clockClass(item && item.clock)}`.trim();
  $("detail-actions").replaceChildren();
  $("detail-timeline").open = false;
  $("detail-entries").replaceChildren();
  $("detail-facts").replaceChildren(loading());
  let context;
  try {
    context = await api(`/v1/work/cases/${encodeURIComponent(caseId)}`);
  } catch (err) {
    $("detail-facts").replaceChildren(errorLine(err.message));
    return;
  }
  if (state.current !== caseId) return; // another case was chosen meanwhile
  const forms = await loadForms();
  const actions = context.actions.map((action) => {
    if (action.kind === "decision") {
      return decisionForm(caseId, {
        onDecided: (approval) => {
          const verb = approval.status === "approved" ? "Approved" : "Rejected";
          finished(caseId, "decision", `${verb} ${caseId} (${money(approval.amount, state.currency)}).`);
        },
      });
    }
    const form = forms.get(action.name);
    const prefill = {};
    // An agent relays the customer's own answer: on behalf of the case's customer.
    if (session.me.role === "agent" && form && "on_behalf_of" in form.schema.properties) {
      prefill.on_behalf_of = item ? item.customer_id : "";
    }
    return form
      ? eventForm(form, caseId, {
          prefill,
          onSent: (sent) => finished(caseId, sent.name, `${sent.title} recorded on ${caseId}.`),
        })
      : errorLine(`No form for ${action.name}.`);
  });
  if (!actions.length) actions.push(muted("Nothing on this case waits for you."));
  $("detail-actions").replaceChildren(...actions);
  $("detail-facts").replaceChildren(caseFacts(context, item, { timezone: state.timezone }));
  if (focus) {
    const first = $("detail-actions").querySelector("textarea, input, select, button");
    (first || $("detail-title")).focus({ preventScroll: false });
  }
}

function finished(caseId, name, message) {
  notice(message);
  const index = state.items.findIndex((i) => i.case_id === caseId);
  done(caseId, name);
  renderList();
  const next = state.items[Math.min(index, state.items.length - 1)];
  if (next) show(next.case_id);
  else clearDetail();
  refresh();
}

function muted(text) {
  const p = document.createElement("p");
  p.className = "muted";
  p.textContent = text;
  return p;
}

const loading = () => muted("Loading…");

// The timeline (GET /v1/cases/{id}, the workflow's own) is read only when opened.
async function loadTimeline(caseId) {
  const list = $("detail-entries");
  const line = (text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  };
  list.replaceChildren(line("Loading…"));
  let found;
  try {
    found = await api(`/v1/cases/${encodeURIComponent(caseId)}`);
  } catch (err) {
    if (state.current === caseId) list.replaceChildren(line(err.message));
    return;
  }
  if (state.current !== caseId) return; // another case was chosen meanwhile
  list.replaceChildren(...timelineItems(found.timeline, state.timezone));
}

function errorLine(text) {
  const p = document.createElement("p");
  p.className = "error";
  p.textContent = text;
  return p;
}

// ---- keyboard: j/k next and previous, a approve, r reject, / search ---------------------------

function move(step) {
  if (!state.items.length) return;
  const index = state.items.findIndex((i) => i.case_id === state.current);
  const next = Math.min(state.items.length - 1, Math.max(0, index + step));
  show(state.items[index === -1 ? 0 : next].case_id);
  const li = $("items").children[index === -1 ? 0 : next];
  li?.scrollIntoView({ block: "nearest" });
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
  if ($("open-view").hidden) return;
  const form = $("detail-actions").querySelector("form.decide");
  switch (event.key) {
    case "j":
    case "ArrowDown":
      event.preventDefault();
      move(1);
      break;
    case "k":
    case "ArrowUp":
      event.preventDefault();
      move(-1);
      break;
    case "a":
      if (form) {
        event.preventDefault();
        form.decide("approve");
      }
      break;
    case "r":
      if (form) {
        event.preventDefault();
        form.decide("reject");
      }
      break;
    case "/":
      event.preventDefault();
      $("q").focus();
      break;
    default:
  }
}

// ---- views ----------------------------------------------------------------------------------

function showDone() {
  loadDone(state.donePage, { currency: state.currency, timezone: state.timezone });
}

function view(name) {
  for (const [tab, section] of [["tab-open", "open-view"], ["tab-done", "done-view"], ["tab-away", "away-view"]]) {
    const on = section === `${name}-view`;
    $(tab).setAttribute("aria-pressed", String(on));
    $(section).hidden = !on;
  }
  if (name === "open") refresh();
  if (name === "done") showDone();
  if (name === "away") loadDelegations(state.timezone);
}

// /work#<case id> opens that case beside the list (a link from an email or another page);
// so does /work#case/<case id>, the form links to the approvals page (now /work) took.
function linkedCase() {
  const hash = decodeURIComponent(location.hash.slice(1));
  return hash.startsWith("case/") ? hash.slice("case/".length) : hash;
}

function openLinked() {
  const caseId = linkedCase();
  if (caseId && session.me) {
    view("open");
    show(caseId, { focus: true });
  }
}

async function ready(me) {
  $("tab-away").hidden = me.role !== "manager";
  view("open");
  openLinked();
  clearInterval(state.timer);
  state.timer = setInterval(() => {
    if (document.visibilityState === "visible" && !$("open-view").hidden) refresh();
  }, POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    state.page = 1;
    refresh();
  });
  for (const id of ["procedure", "status", "sort"]) {
    $(id).addEventListener("change", () => {
      state.page = 1;
      refresh();
    });
  }
  $("refresh").addEventListener("click", refresh);
  $("prev").addEventListener("click", () => {
    state.page = Math.max(1, state.page - 1);
    refresh();
  });
  $("next-page").addEventListener("click", () => {
    state.page += 1;
    refresh();
  });
  $("bulk-approve").addEventListener("click", bulkApprove);
  $("back").addEventListener("click", () => {
    delete $("open-view").dataset.showing;
    const li = [...$("items").children].find((n) => n.dataset.caseId === state.current);
    li?.querySelector(".open")?.focus();
  });
  $("tab-open").addEventListener("click", () => view("open"));
  $("tab-done").addEventListener("click", () => view("done"));
  $("tab-away").addEventListener("click", () => view("away"));
  $("done-prev").addEventListener("click", () => {
    state.donePage = Math.max(1, state.donePage - 1);
    showDone();
  });
  $("done-next").addEventListener("click", () => {
    state.donePage += 1;
    showDone();
  });
  $("delegate-form").addEventListener("submit", (event) =>
    delegate(event, { timezone: state.timezone, notice }),
  );
  $("detail-timeline").addEventListener("toggle", () => {
    if ($("detail-timeline").open && state.current) loadTimeline(state.current);
  });
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", openLinked);
  setUpSignIn(ready);
});

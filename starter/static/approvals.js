// The approvals page: a thin client of the JSON API (/v1/me, /v1/approvals, /v1/cases).
// Everything the server sends is shown with textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "casework.token";
const POLL_MS = 15000;
// The list is the database's view, which records a decision a moment after the workflow
// takes it; hide what was decided here until the list has caught up.
const HIDE_DECIDED_MS = 120000;

const state = { token: sessionStorage.getItem(TOKEN_KEY), me: null, timer: null };
const decidedHere = new Map(); // case id -> when

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

async function api(path, { method = "GET", body, headers = {} } = {}) {
  const request = { method, headers: { Accept: "application/json", ...headers } };
  request.headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) {
    request.headers["Content-Type"] = "application/json";
    request.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, request);
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached. Check your connection.");
  }
  const payload = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = payload && payload.detail ? payload.detail : `HTTP ${response.status}`;
    if (response.status === 401) signOut("Your token was not accepted. Sign in again.");
    throw new ApiError(response.status, payload && payload.error, detail);
  }
  return payload;
}

// ---- formatting ---------------------------------------------------------------------------

const when = (iso) =>
  new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });

function ago(iso) {
  const minutes = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 60000));
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min ago`;
  return `${Math.floor(hours / 24)} days ago`;
}

const words = (text) => String(text).replaceAll("_", " ");

// ---- signing in ---------------------------------------------------------------------------

async function signIn(token) {
  state.token = token;
  const me = await api("/v1/me");
  if (!me.may_decide) {
    state.token = null;
    throw new ApiError(403, "forbidden", `${me.id} (${me.role}) may not decide approvals.`);
  }
  state.me = me;
  sessionStorage.setItem(TOKEN_KEY, token);
}

function signOut(message = "") {
  state.token = null;
  state.me = null;
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(state.timer);
  state.timer = null;
  $("sign-in-error").textContent = message;
  show("sign-in");
}

function show(section) {
  for (const id of ["sign-in", "queue", "single"]) $(id).hidden = id !== section;
  $("who").hidden = section === "sign-in";
  if (state.me) {
    $("who-name").textContent =
      `${state.me.name} · ${state.me.role} · up to ${state.me.approval_limit}`;
  }
  if (section === "sign-in") $("token").focus();
}

// ---- one card per case ----------------------------------------------------------------------

// The fields a card shows, from a list item or from a case's approval.
function fromListItem(item) {
  return { ...item, pending: true };
}

function fromCase(found) {
  const approval = found.approval;
  return {
    case_id: found.case_id,
    type: found.type,
    order_id: found.order_id,
    customer_id: found.customer_id,
    amount: approval.amount,
    reason: approval.reason,
    requested_by: approval.requested_by,
    requested_at: approval.requested_at,
    escalate_at: approval.escalate_at,
    due_at: approval.due_at,
    pending: approval.status === "pending",
    status: approval.status,
    decided_by: approval.decided_by,
    note: approval.note,
  };
}

function card(item, { onDecided }) {
  const node = $("card-template").content.firstElementChild.cloneNode(true);
  const field = (selector, text) => {
    node.querySelector(selector).textContent = text;
  };
  node.dataset.caseId = item.case_id;
  field(".amount", item.amount);
  field(".type", words(item.type));
  field(".case-id", item.case_id);
  field(".order", item.order_id);
  field(".customer", item.customer_id);
  field(".reason", item.reason);
  field(".requester", item.requested_by);
  field(".since", ago(item.requested_at));
  node.querySelector(".since").title = when(item.requested_at);
  field(".escalates", when(item.escalate_at));
  field(".due", when(item.due_at));
  const late = new Date(item.escalate_at).getTime() <= Date.now();
  const badge = node.querySelector(".badge");
  badge.hidden = !(late && item.pending);
  badge.textContent = "escalated";

  const timeline = node.querySelector(".timeline");
  timeline.addEventListener("toggle", () => {
    if (timeline.open) loadTimeline(item.case_id, timeline.querySelector(".entries"));
  });

  const form = node.querySelector(".decide");
  if (!item.pending) {
    form.hidden = true;
    const decided = node.querySelector(".decided");
    decided.hidden = false;
    const by = item.decided_by ? ` by ${item.decided_by}` : "";
    const status = words(item.status);
    const said = item.note ? `: ${item.note}` : "";
    decided.textContent = `${status[0].toUpperCase()}${status.slice(1)}${by}${said}`;
    return node;
  }
  // One key per card: a retried click (lost answer) gets the first decision's answer back.
  const idempotencyKey = `page-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const decision = event.submitter ? event.submitter.value : "approve";
    const error = form.querySelector(".error");
    const buttons = form.querySelectorAll("button");
    error.textContent = "";
    buttons.forEach((b) => (b.disabled = true));
    try {
      const approval = await api(`/v1/cases/${encodeURIComponent(item.case_id)}/decision`, {
        method: "POST",
        body: { decision, note: form.elements.note.value },
        headers: { "Idempotency-Key": idempotencyKey },
      });
      onDecided(item, approval);
    } catch (err) {
      error.textContent = err.message;
      buttons.forEach((b) => (b.disabled = false));
    }
  });
  return node;
}

async function loadTimeline(caseId, list) {
  list.replaceChildren(entryNode("Loading…"));
  try {
    const found = await api(`/v1/cases/${encodeURIComponent(caseId)}`);
    list.replaceChildren(
      ...found.timeline.map((entry) => {
        const details = Object.entries(entry.detail)
          .filter(([, value]) => value)
          .map(([key, value]) => `${words(key)}: ${value}`)
          .join("; ");
        const line = `${when(entry.at)} — ${words(entry.event)} (${entry.actor})`;
        return entryNode(details ? `${line}. ${details}` : line);
      }),
    );
  } catch (err) {
    list.replaceChildren(entryNode(err.message));
  }
}

function entryNode(text) {
  const li = document.createElement("li");
  li.textContent = text;
  return li;
}

// ---- the list -----------------------------------------------------------------------------

function decided(item, approval) {
  decidedHere.set(item.case_id, Date.now());
  const verb = approval.status === "approved" ? "Approved" : "Rejected";
  $("notice").textContent = `${verb} ${item.case_id} (${item.amount}).`;
  const node = document.querySelector(`#approvals [data-case-id="${CSS.escape(item.case_id)}"]`);
  if (node) node.remove();
  updateSummary(document.querySelectorAll("#approvals .card").length);
  refresh();
}

function updateSummary(count) {
  $("summary").textContent =
    count === 0
      ? "Nothing is waiting for you."
      : `${count} waiting for your decision, oldest first.`;
}

async function refresh() {
  if (!state.token) return;
  try {
    const { items } = await api("/v1/approvals");
    const now = Date.now();
    for (const [caseId, at] of decidedHere) {
      if (now - at > HIDE_DECIDED_MS) decidedHere.delete(caseId);
    }
    const shown = items.filter((item) => !decidedHere.has(item.case_id));
    const list = $("approvals");
    // Keep cards someone is working on (a typed note, an open timeline); replace the rest.
    const existing = new Map([...list.children].map((n) => [n.dataset.caseId, n]));
    list.replaceChildren(
      ...shown.map((item) => {
        const kept = existing.get(item.case_id);
        return kept || card(fromListItem(item), { onDecided: decided });
      }),
    );
    updateSummary(shown.length);
  } catch (err) {
    $("notice").textContent = err.message;
  }
}

async function openCase(caseId) {
  show("single");
  $("single-error").textContent = "";
  $("single-card").replaceChildren();
  try {
    const found = await api(`/v1/cases/${encodeURIComponent(caseId)}`);
    if (!found.approval) {
      $("single-error").textContent = `${caseId} has no approval request.`;
      return;
    }
    $("single-card").replaceChildren(
      card(fromCase(found), {
        // Shown again from the workflow, which already holds the decision.
        onDecided: (item) => {
          decidedHere.set(item.case_id, Date.now());
          openCase(caseId);
        },
      }),
    );
  } catch (err) {
    $("single-error").textContent = err.message;
  }
}

// ---- routing: #case/<id> opens one case (links in emails); anything else is the list ------

function route() {
  if (!state.me) return show("sign-in");
  const match = location.hash.match(/^#case\/(.+)$/);
  if (match) return openCase(decodeURIComponent(match[1]));
  show("queue");
  refresh();
}

function startPolling() {
  clearInterval(state.timer);
  state.timer = setInterval(() => {
    if (document.visibilityState === "visible" && !$("queue").hidden) refresh();
  }, POLL_MS);
}

document.addEventListener("DOMContentLoaded", async () => {
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = event.target.querySelector("button");
    button.disabled = true;
    $("sign-in-error").textContent = "";
    try {
      await signIn($("token").value.trim());
      $("token").value = "";
      startPolling();
      route();
    } catch (err) {
      signOut(err.message);
    } finally {
      button.disabled = false;
    }
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("refresh").addEventListener("click", refresh);
  $("back").addEventListener("click", (event) => {
    event.preventDefault();
    history.pushState(null, "", location.pathname);
    route();
  });
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && !$("queue").hidden) refresh();
  });

  if (state.token) {
    try {
      await signIn(state.token);
      startPolling();
    } catch (err) {
      signOut(err.status === 401 ? "Sign in again." : err.message);
      return;
    }
  }
  route();
});

// The case page: any staff member finds a case by id, order, customer or RA number and reads
// all of it (status and step, deadlines, the approval and who decided, the outcome, the
// timeline from the audit trail, emails, linked cases, the Temporal UI link). Read-only,
// unless the case waits for something the person may do: then that comes first.

import { api, setUpSignIn, session } from "./session.js";
import { money, title, when, words } from "./format.js";
import { decisionForm } from "./decision.js";
import { eventForm, loadForms } from "./forms.js";
import { casesSection, factList, orderSection, photosSection, timelineItems } from "./facts.js";

const $ = (id) => document.getElementById(id);

function li(text) {
  const node = document.createElement("li");
  if (text instanceof Node) node.append(text);
  else node.textContent = text;
  return node;
}

function para(text, className = "muted") {
  const p = document.createElement("p");
  p.className = className;
  p.textContent = text;
  return p;
}

async function find(term) {
  $("find-error").textContent = "";
  $("matches").replaceChildren();
  if (!term) return;
  let found;
  try {
    found = await api(`/v1/work/find?q=${encodeURIComponent(term)}`);
  } catch (err) {
    $("find-error").textContent = err.message;
    return;
  }
  if (found.items.length === 1 || (found.items[0] && found.items[0].case_id === term)) {
    const hash = `#${encodeURIComponent(found.items[0].case_id)}`;
    if (location.hash === hash) open(found.items[0].case_id);
    else location.hash = hash;
    return;
  }
  if (!found.items.length) {
    $("find-error").textContent = `No case matches “${term}”.`;
    return;
  }
  $("matches").replaceChildren(
    ...found.items.map((c) => {
      const a = document.createElement("a");
      a.href = `#${encodeURIComponent(c.case_id)}`;
      a.textContent = c.case_id;
      const node = li(a);
      node.append(` — ${words(c.type)}, ${words(c.status)}${c.amount ? `, ${money(c.amount)}` : ""}`);
      return node;
    }),
  );
}

async function open(caseId) {
  $("matches").replaceChildren();
  $("find-error").textContent = "";
  $("notice").textContent = "";
  let found;
  let context;
  try {
    [found, context] = await Promise.all([
      api(`/v1/cases/${encodeURIComponent(caseId)}`),
      api(`/v1/work/cases/${encodeURIComponent(caseId)}`),
    ]);
  } catch (err) {
    $("case").hidden = true;
    $("find-error").textContent = err.message;
    return;
  }
  const currency = context.currency;
  const timezone = context.timezone;
  document.title = `${caseId} · casework`;
  $("case").hidden = false;
  $("case-title").textContent = `${title(found.type)} ${caseId}`;
  $("case-status").textContent = `${title(found.status)} — ${found.step}`;

  // What the person may do, first; read-only otherwise.
  // The workflow's own state is ahead of the database's: a decision it already holds is no
  // longer offered, even if the database has not recorded it yet.
  const decided = found.approval && found.approval.status !== "pending";
  const openActions = context.actions.filter((a) => !(a.kind === "decision" && decided));
  const forms = openActions.length ? await loadForms() : new Map();
  const actions = openActions.map((action) => {
    if (action.kind === "decision") {
      return decisionForm(caseId, {
        onDecided: async (approval) => {
          await open(caseId);
          $("notice").textContent = `${title(approval.status)} by ${approval.decided_by}.`;
        },
      });
    }
    const form = forms.get(action.name);
    return form
      ? eventForm(form, caseId, {
          onSent: async (sent) => {
            await open(caseId);
            $("notice").textContent = `${sent.title} recorded.`;
          },
        })
      : para(`No form for ${action.name}.`);
  });
  $("case-actions").replaceChildren(
    ...(actions.length ? actions : [para("Read-only: nothing on this case waits for you.")]),
  );

  const customer = context.customer;
  $("case-facts").replaceChildren(
    factList([
      ["Case", caseId],
      ["Procedure", title(found.type)],
      ["Status", words(found.status)],
      ["Step", found.step],
      ["Amount", found.amount ? money(found.amount, currency) : ""],
      ["Order", found.order_id],
      ["Customer", customer ? `${customer.name} (${customer.id})${customer.vip ? " · VIP" : ""}` : found.customer_id],
      ["Requested by", found.requested_by],
      ["RA number", found.ra_number],
      ["Opened", found.opened_at ? when(found.opened_at, timezone) : ""],
      ["Last moved", found.updated_at ? when(found.updated_at, timezone) : ""],
      ["Source", found.source === "database" ? "the audit copy (Temporal did not answer)" : ""],
    ]),
  );
  $("case-clocks").replaceChildren(
    ...(context.clocks.length
      ? context.clocks.map((c) => {
          const node = li(`${c.label} (${c.local})`);
          if (c.overdue) node.className = "overdue";
          return node;
        })
      : [li("No deadline running.")]),
  );
  const approval = found.approval;
  $("case-approval").replaceChildren(
    approval
      ? factList([
          ["Status", words(approval.status)],
          ["Amount", money(approval.amount, currency)],
          ["Reason", approval.reason],
          ["Requested by", approval.requested_by],
          ["Requested", when(approval.requested_at, timezone)],
          ["Decided by", approval.decided_by],
          ["Decided", approval.decided_at ? when(approval.decided_at, timezone) : ""],
          ["Note", approval.note],
          ["Could decide", (approval.eligible_approvers || []).join(", ")],
        ])
      : para("No approval was asked for."),
  );
  const outcome = found.outcome;
  $("case-outcome").replaceChildren(
    outcome
      ? factList([
          ["Ended", words(outcome.status)],
          ["Why", outcome.reason],
          ["Amount", outcome.amount ? money(outcome.amount, currency) : ""],
          ["Method", outcome.method ? words(outcome.method) : ""],
          ["Reference", outcome.reference],
          ["Timeline", outcome.timeline],
        ])
      : para("Still open."),
  );
  const extra = [];
  if (context.order) extra.push(orderSection(context.order, currency));
  extra.push(casesSection("Linked cases", context.linked_cases, { currency, timezone }));
  extra.push(casesSection("Other cases of this customer", context.earlier_cases, { currency, timezone }));
  if (context.photos.length) extra.push(photosSection(context.photos));
  $("case-context").replaceChildren(...extra);

  $("case-timeline").replaceChildren(...timelineItems(found.timeline, timezone));
  $("case-emails").replaceChildren(
    ...(context.emails.length
      ? context.emails.map((e) =>
          li(`${when(e.created_at, timezone)} — ${e.subject} (to ${e.to}; ${words(e.template)}, ${e.status})`),
        )
      : [li("None.")]),
  );
  $("temporal-link").href = context.temporal_url;
}

function route() {
  if (!session.me) return;
  const id = decodeURIComponent(location.hash.slice(1));
  if (id) {
    $("q").value = id;
    open(id);
  } else {
    $("case").hidden = true;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("find").addEventListener("submit", (event) => {
    event.preventDefault();
    find($("q").value.trim());
  });
  window.addEventListener("hashchange", route);
  setUpSignIn(async () => route());
});

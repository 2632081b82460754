// What a person needs around a case (GET /v1/work/cases/{id}): the order's lines and money,
// the customer, their other cases, linked cases and photos. Shared by both pages.

import { ago, money, title, when, words } from "./format.js";

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

export function factList(rows) {
  const dl = el("dl", undefined, "facts");
  for (const [term, value] of rows) {
    if (value === undefined || value === null || value === "") continue;
    dl.append(el("dt", term));
    const dd = el("dd");
    if (value instanceof Node) dd.append(value);
    else dd.textContent = value;
    dl.append(dd);
  }
  return dl;
}

export function caseLink(caseId) {
  const a = el("a", caseId);
  a.href = `/case#${encodeURIComponent(caseId)}`;
  return a;
}

export function orderSection(order, currency) {
  const section = el("section");
  section.append(el("h3", `Order ${order.order_id} (${words(order.status)})`));
  if (order.lines.length) {
    const table = el("table");
    const head = el("tr");
    head.append(el("th", "Item"), el("th", "Qty", "num"), el("th", "Unit price", "num"));
    const caption = el("caption", "Order lines", "visually-hidden");
    table.append(caption, el("thead"), el("tbody"));
    table.tHead.append(head);
    for (const line of order.lines) {
      const row = el("tr");
      row.append(
        el("td", line.description === line.sku ? line.sku : `${line.description} (${line.sku})`),
        el("td", String(line.quantity), "num"),
        el("td", money(line.unit_price, currency), "num"),
      );
      table.tBodies[0].append(row);
    }
    section.append(table);
  }
  section.append(
    factList([
      ["Order total", money(order.total, currency)],
      ["Already refunded", money(order.refunded, currency)],
      ["Reserved (in flight)", money(order.reserved, currency)],
      ["Still refundable", money(order.refundable, currency)],
    ]),
  );
  return section;
}

export function casesSection(heading, cases, { currency, timezone }) {
  const section = el("section");
  section.append(el("h3", heading));
  if (!cases.length) {
    section.append(el("p", "None.", "muted"));
    return section;
  }
  const list = el("ul");
  for (const c of cases) {
    const li = el("li");
    const amount = c.amount ? `, ${money(c.amount, currency)}` : "";
    li.append(caseLink(c.case_id), ` — ${words(c.type)}, ${words(c.status)}${amount}, opened ${when(c.opened_at, timezone)}`);
    list.append(li);
  }
  section.append(list);
  return section;
}

export function photosSection(photos) {
  const section = el("section");
  section.append(el("h3", "Photos"));
  const list = el("ul");
  photos.forEach((url, i) => {
    const a = el("a", `Photo ${i + 1}`);
    a.href = url;
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    const li = el("li");
    li.append(a);
    list.append(li);
  });
  section.append(list);
  return section;
}

/** The detail pane's facts: the work item's summary, then the case's context. */
/** A case's timeline (GET /v1/cases/{id}): one line per entry, on the business clock. */
export function timelineItems(timeline, timezone) {
  return timeline.map((entry) => {
    const details = Object.entries(entry.detail)
      .filter(([, value]) => value)
      .map(([key, value]) => `${words(key)}: ${value}`)
      .join("; ");
    const line = `${when(entry.at, timezone)} — ${words(entry.event)} (${entry.actor})`;
    return el("li", details ? `${line}. ${details}` : line);
  });
}

export function caseFacts(context, item, { timezone }) {
  const currency = context.currency;
  const wrap = el("div");
  const customer = context.customer;
  const who = customer ? `${customer.name} (${customer.id})${customer.vip ? " · VIP" : ""}` : item?.customer_id;
  const approval = item && item.approval;
  wrap.append(
    factList([
      ["Case", caseLink(context.case_id)],
      ["Status", item ? `${words(item.status)} — ${item.step}` : words(context.status)],
      ["Amount", approval ? money(approval.amount, currency) : item && item.amount ? money(item.amount, currency) : ""],
      ["Customer", who],
      ["Requested by", approval ? approval.requested_by : item?.requested_by],
      ["Reason", approval ? approval.reason : ""],
      ["Asks for", approval && approval.kind !== "authorization" ? `${words(approval.kind)}${approval.rule ? ` (${approval.rule})` : ""}` : ""],
      ["RA number", item?.ra_number],
      ["Waiting since", item ? `${when(item.waiting_since, timezone)} (${ago(item.waiting_since)})` : ""],
      ["Expires", approval ? when(approval.due_at, timezone) : ""],
    ]),
  );
  if (context.order) wrap.append(orderSection(context.order, currency));
  wrap.append(casesSection("Earlier cases of this customer", context.earlier_cases, { currency, timezone }));
  if (context.linked_cases.length) wrap.append(casesSection("Linked cases", context.linked_cases, { currency, timezone }));
  if (context.photos.length) wrap.append(photosSection(context.photos));
  const more = el("p");
  const link = el("a", "Open the case page (timeline, emails)");
  link.href = `/case#${encodeURIComponent(context.case_id)}`;
  more.append(link);
  wrap.append(more);
  return wrap;
}

export { title };

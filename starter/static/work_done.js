// Done by me (GET /v1/work/done): what the signed-in person did, newest first, a page at a
// time, each line linking to its case page.

import { api } from "./session.js";
import { money, title, when, words } from "./format.js";

const $ = (id) => document.getElementById(id);

function line(text, className) {
  const li = document.createElement("li");
  li.className = className;
  li.textContent = text;
  return li;
}

export async function loadDone(number, { currency, timezone }) {
  let page;
  try {
    page = await api(`/v1/work/done?page=${number}&page_size=25`);
  } catch (err) {
    $("done").replaceChildren(line(err.message, "error"));
    return;
  }
  $("done").replaceChildren(
    ...page.items.map((d) => {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = `/case#${encodeURIComponent(d.case_id)}`;
      link.textContent = d.case_id;
      const note = d.detail && d.detail.note ? ` “${d.detail.note}”` : "";
      li.append(
        `${when(d.at, timezone)} — ${title(d.event)}${note} on `,
        link,
        ` (${words(d.type)}${d.amount ? `, ${money(d.amount, currency)}` : ""}; now ${words(d.status)})`,
      );
      return li;
    }),
  );
  if (!page.items.length) $("done").replaceChildren(line("Nothing yet.", "muted"));
  const pages = Math.max(1, Math.ceil(page.total / page.page_size));
  $("done-page").textContent = `Page ${page.page} of ${pages}`;
  $("done-prev").disabled = page.page <= 1;
  $("done-next").disabled = page.page >= pages;
}

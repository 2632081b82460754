// Delegation (managers): who stands in while the signed-in manager is away, named and
// ended through /v1/delegations; everyone sees whom they stand in for.

import { api, session } from "./session.js";
import { when } from "./format.js";

const $ = (id) => document.getElementById(id);

export async function loadDelegations(timezone, answer) {
  const list = answer || (await api("/v1/delegations").catch(() => ({ given: [], received: [] })));
  const rows = [
    ...list.given.map((d) => [d, `${d.delegate_id} stands in for you`]),
    ...list.received.map((d) => [d, `You stand in for ${d.staff_id}`]),
  ];
  $("delegations").replaceChildren(
    ...rows.map(([d, text]) => {
      const li = document.createElement("li");
      li.append(
        `${text} from ${when(d.starts_at, timezone)} until ${when(d.ends_at, timezone)}` +
          (d.active ? " (now)" : " (planned)"),
      );
      if (d.staff_id === session.me.id) {
        const end = document.createElement("button");
        end.type = "button";
        end.className = "quiet";
        end.textContent = "End now";
        end.setAttribute("aria-label", `End the delegation to ${d.delegate_id} now`);
        end.addEventListener("click", async () => {
          try {
            loadDelegations(timezone, await api(`/v1/delegations/${d.id}/end`, { method: "POST" }));
          } catch (err) {
            $("delegate-error").textContent = err.message;
          }
        });
        li.append(" ", end);
      }
      return li;
    }),
  );
  if (!rows.length) {
    const li = document.createElement("li");
    li.textContent = "None.";
    $("delegations").replaceChildren(li);
  }
}

export async function delegate(event, { timezone, notice }) {
  event.preventDefault();
  $("delegate-error").textContent = "";
  const from = $("away_from").value;
  const until = $("away_until").value;
  if (!from || !until) {
    $("delegate-error").textContent = "Give both the start and the end.";
    return;
  }
  try {
    const answer = await api("/v1/delegations", {
      method: "POST",
      body: {
        delegate_id: $("delegate_id").value.trim(),
        starts_at: new Date(from).toISOString(),
        ends_at: new Date(until).toISOString(),
      },
    });
    notice(`${$("delegate_id").value.trim()} stands in for you from ${from.replace("T", " ")}.`);
    loadDelegations(timezone, answer);
  } catch (err) {
    $("delegate-error").textContent = err.message;
  }
}

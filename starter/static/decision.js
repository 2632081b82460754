// The decision form (a note, Approve, Reject), shared by My work and the case page; it posts
// to /v1/cases/{id}/decision, one Idempotency-Key per form shown (a retried click is answered
// with the first decision).

import { api } from "./session.js";

export function decisionForm(caseId, { onDecided } = {}) {
  const key = `page-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
  const form = document.createElement("form");
  form.className = "decide";
  form.noValidate = true;
  const noteId = `note-${key}`;
  const label = document.createElement("label");
  label.htmlFor = noteId;
  label.textContent = "Note";
  const note = document.createElement("textarea");
  note.id = noteId;
  note.name = "note";
  note.rows = 2;
  note.maxLength = 2000;
  const actions = document.createElement("div");
  actions.className = "actions";
  const approve = document.createElement("button");
  approve.type = "submit";
  approve.value = "approve";
  approve.className = "approve";
  approve.textContent = "Approve";
  approve.setAttribute("aria-keyshortcuts", "a");
  const reject = document.createElement("button");
  reject.type = "submit";
  reject.value = "reject";
  reject.className = "reject";
  reject.textContent = "Reject";
  reject.setAttribute("aria-keyshortcuts", "r");
  actions.append(approve, reject);
  const error = document.createElement("p");
  error.className = "error";
  error.setAttribute("role", "alert");
  form.append(label, note, actions, error);

  const send = async (decision) => {
    error.textContent = "";
    approve.disabled = reject.disabled = true;
    try {
      const approval = await api(`/v1/cases/${encodeURIComponent(caseId)}/decision`, {
        method: "POST",
        body: { decision, note: note.value },
        headers: { "Idempotency-Key": key },
      });
      onDecided?.(approval);
    } catch (err) {
      error.textContent = err.message;
    } finally {
      approve.disabled = reject.disabled = false;
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send(event.submitter ? event.submitter.value : "approve");
  });
  form.decide = send;
  return form;
}

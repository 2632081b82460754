// A form for an event, generated from the JSON schema of its model (GET /v1/work/forms) and
// posted to the case's event route, so the validation and the refusals are the API's own:
// the page checks nothing itself (novalidate) and shows the API's messages by each field.

import { api } from "./session.js";
import { title } from "./format.js";

let forms = null;

/** The forms the signed-in person may fill in, by event name (fetched once). */
export async function loadForms() {
  if (forms === null) {
    const { items } = await api("/v1/work/forms");
    forms = new Map(items.map((f) => [f.name, f]));
  }
  return forms;
}

export function forgetForms() {
  forms = null;
}

function resolve(schema, root) {
  if (schema.$ref) return resolve(root.$defs[schema.$ref.split("/").pop()], root);
  if (schema.allOf && schema.allOf.length === 1) return { ...schema, ...resolve(schema.allOf[0], root) };
  if (schema.anyOf) {
    const options = schema.anyOf.map((s) => resolve(s, root)).filter((s) => s.type !== "null");
    const types = new Set(options.map((s) => s.type));
    if (types.has("number") && types.has("string")) return { ...schema, type: "money" };
    if (options.length === 1) return { ...schema, ...options[0], nullable: true };
  }
  return schema;
}

let counter = 0;

function input(spec) {
  if (spec.enum) {
    const select = document.createElement("select");
    const blank = document.createElement("option");
    blank.value = "";
    blank.textContent = "Choose…";
    select.append(blank);
    for (const value of spec.enum) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = title(value);
      if (spec.default === value) option.selected = true;
      select.append(option);
    }
    return select;
  }
  if (spec.type === "boolean") {
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = spec.default === true;
    return box;
  }
  if (spec.type === "array" || (spec.maxLength && spec.maxLength > 200)) {
    const area = document.createElement("textarea");
    area.rows = 2;
    if (spec.type === "array") area.placeholder = "One per line";
    return area;
  }
  const field = document.createElement("input");
  field.type = "text";
  if (spec.type === "money") field.inputMode = "decimal";
  if (spec.type === "integer") field.inputMode = "numeric";
  if (typeof spec.default === "string") field.value = spec.default;
  field.autocomplete = "off";
  field.spellcheck = false;
  return field;
}

function value(spec, element) {
  if (spec.type === "boolean") return element.checked;
  const text = element.value.trim();
  if (text === "") return undefined;
  if (spec.type === "array") return text.split("\n").map((l) => l.trim()).filter(Boolean);
  if (spec.type === "integer" && /^-?\d+$/.test(text)) return Number(text);
  return text; // money stays a decimal string: never a float
}

/**
 * A <form> for ``form`` (an EventForm) on ``caseId``. ``prefill`` sets initial values by
 * field; ``onSent(form, answer)`` runs when the API accepts it.
 */
export function eventForm(form, caseId, { prefill = {}, onSent, submitLabel } = {}) {
  const root = form.schema;
  const key = `f${++counter}`;
  // One id per form shown: sending it twice (a lost answer, a double click) applies once.
  const eventId = `web-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
  const node = document.createElement("form");
  node.className = "event-form";
  node.noValidate = true;
  node.dataset.event = form.name;
  const heading = document.createElement("h3");
  heading.textContent = form.title;
  node.append(heading);
  const required = new Set(root.required || []);
  const fields = new Map();
  for (const [name, raw] of Object.entries(root.properties || {})) {
    const spec = resolve(raw, root);
    const id = `${key}-${name}`;
    const wrap = document.createElement("div");
    wrap.className = spec.type === "boolean" ? "field check" : "field";
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = (spec.title || title(name)) + (required.has(name) ? " (required)" : "");
    const element = input(spec);
    element.id = id;
    element.name = name;
    if (required.has(name)) element.setAttribute("aria-required", "true");
    if (prefill[name] !== undefined) element.value = prefill[name];
    const described = [];
    if (spec.description) {
      const hint = document.createElement("p");
      hint.className = "hint";
      hint.id = `${id}-hint`;
      hint.textContent = spec.description;
      described.push(hint);
    }
    const error = document.createElement("p");
    error.className = "field-error";
    error.id = `${id}-error`;
    element.setAttribute("aria-describedby", [...described.map((d) => d.id), error.id].join(" "));
    if (spec.type === "boolean") wrap.append(element, label, ...described, error);
    else wrap.append(label, element, ...described, error);
    node.append(wrap);
    fields.set(name, { spec, element, error });
  }
  const alert = document.createElement("p");
  alert.className = "error";
  alert.setAttribute("role", "alert");
  const submit = document.createElement("button");
  submit.type = "submit";
  submit.className = "primary";
  submit.textContent = submitLabel || `Send: ${form.title.toLowerCase()}`;
  node.append(submit, alert);

  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    for (const { element, error } of fields.values()) {
      error.textContent = "";
      element.removeAttribute("aria-invalid");
    }
    const body = { type: form.name, event_id: eventId };
    for (const [name, { spec, element }] of fields) {
      const v = value(spec, element);
      if (v !== undefined) body[name] = v;
    }
    submit.disabled = true;
    try {
      const answer = await api(`/v1/cases/${encodeURIComponent(caseId)}/events`, {
        method: "POST",
        body,
      });
      onSent?.(form, answer);
    } catch (err) {
      let placed = false;
      for (const problem of err.fields || []) {
        const target = fields.get(problem.field.split(".")[0]);
        if (target) {
          target.error.textContent = problem.message;
          target.element.setAttribute("aria-invalid", "true");
          if (!placed) target.element.focus();
          placed = true;
        }
      }
      alert.textContent = err.message;
    } finally {
      submit.disabled = false;
    }
  });
  return node;
}

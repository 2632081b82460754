// Signing in with a staff token (kept for the tab's session only) and calling the JSON API
// as that person. Everything the server sends is shown with textContent, never as HTML.

const TOKEN_KEY = "casework.token";

export class ApiError extends Error {
  constructor(status, code, detail, fields = []) {
    super(detail);
    this.status = status;
    this.code = code;
    this.fields = fields || [];
  }
}

export const session = { token: sessionStorage.getItem(TOKEN_KEY), me: null };
const listeners = [];

export function onSignedOut(listener) {
  listeners.push(listener);
}

export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const request = { method, headers: { Accept: "application/json", ...headers } };
  request.headers.Authorization = `Bearer ${session.token}`;
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
    if (response.status === 401 && session.me) signOut("Your token was not accepted. Sign in again.");
    throw new ApiError(response.status, payload && payload.error, detail, payload && payload.fields);
  }
  return payload;
}

export async function signIn(token) {
  session.token = token;
  try {
    session.me = await api("/v1/me");
  } catch (err) {
    session.token = null;
    throw err;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  return session.me;
}

export function signOut(message = "") {
  session.token = null;
  session.me = null;
  sessionStorage.removeItem(TOKEN_KEY);
  for (const listener of listeners) listener(message);
}

/** Wire the sign-in form (#sign-in-form, #token, #sign-in-error); ``ready`` runs once signed in. */
export async function setUpSignIn(ready) {
  const form = document.getElementById("sign-in-form");
  const error = document.getElementById("sign-in-error");
  const showForm = (message) => {
    error.textContent = message;
    document.body.dataset.signedIn = "false";
    document.getElementById("sign-in").hidden = false;
    document.getElementById("app").hidden = true;
    document.getElementById("who").hidden = true;
    document.getElementById("token").focus();
  };
  onSignedOut(showForm);
  const enter = async () => {
    document.getElementById("sign-in").hidden = true;
    document.getElementById("app").hidden = false;
    document.getElementById("who").hidden = false;
    document.getElementById("who-name").textContent =
      `${session.me.name} · ${session.me.role}`;
    document.body.dataset.signedIn = "true";
    await ready(session.me);
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    error.textContent = "";
    try {
      await signIn(document.getElementById("token").value.trim());
      document.getElementById("token").value = "";
      await enter();
    } catch (err) {
      showForm(err.message);
    } finally {
      button.disabled = false;
    }
  });
  document.getElementById("sign-out").addEventListener("click", () => signOut());
  if (session.token) {
    try {
      await signIn(session.token);
      await enter();
      return;
    } catch (err) {
      showForm(err.status === 401 ? "Sign in again." : err.message);
      return;
    }
  }
  showForm("");
}

"use strict";
// The codec sign-in page: the API sets an HttpOnly cookie the Web UI's codec calls carry.
const result = document.getElementById("result");
document.getElementById("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = document.getElementById("token").value.trim();
  const answer = await fetch("/codec/session", {
    method: "POST", headers: { Authorization: `Bearer ${token}` },
  });
  if (answer.ok) {
    result.textContent = "Signed in: the Web UI may now show decrypted payloads.";
  } else {
    const body = await answer.json().catch(() => ({}));
    result.textContent = `Not signed in: ${body.detail || answer.status}`;
  }
  document.getElementById("token").value = "";
});
document.getElementById("sign-out").addEventListener("click", async () => {
  await fetch("/codec/session", { method: "DELETE" });
  result.textContent = "Signed out.";
});

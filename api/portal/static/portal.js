// deskpool portal: the little the server cannot do. Sign-in posts to the API's own
// POST /auth/login (which sets the HttpOnly session cookie); sign-out to POST /auth/logout.
"use strict";
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (form.id !== "login") return;
  event.preventDefault();
  const error = document.getElementById("login-error");
  const button = form.querySelector("button[type=submit]");
  error.textContent = "";
  button.disabled = true;
  try {
    const response = await fetch("/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ username: form.username.value, password: form.password.value }),
    });
    if (response.ok) {
      window.location.assign(form.dataset.next || "/portal");
      return;
    }
    const body = await response.json().catch(() => ({}));
    const detail = typeof body.detail === "string" ? body.detail : "enter your user name and password";
    error.textContent = `Sign-in failed: ${detail}`;
    form.password.focus();
  } catch (err) {
    error.textContent = "Sign-in failed: the server cannot be reached";
  } finally {
    button.disabled = false;
  }
});
document.addEventListener("click", async (event) => {
  if (!event.target.closest("[data-logout]")) return;
  await fetch("/auth/logout", { method: "POST", credentials: "same-origin" });
  window.location.assign("/portal/login");
});
// After an htmx swap that replaced the focused control, keep keyboard users in the card.
document.addEventListener("htmx:afterSwap", (event) => {
  if (document.activeElement === document.body && event.detail.target && event.detail.target.isConnected) {
    const next = event.detail.target.querySelector("button, a[href], input, select");
    if (next && event.detail.requestConfig && event.detail.requestConfig.verb !== "get") next.focus();
  }
});

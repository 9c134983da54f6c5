// Sign in with a bearer token; the gateway's self endpoint says who it belongs to.

import { ApiError, api, session } from "../api.js";
import { h } from "../dom.js";

export function renderLogin(root) {
  const input = h("input", { id: "token", name: "token", type: "password",
                             autocomplete: "current-password", required: true });
  const error = h("span", { class: "field-error", "data-error-for": "token" });
  const form = h(
    "form",
    { class: "card narrow", onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = "";
      session.setToken(input.value.trim());
      try {
        session.self = await api.self();
      } catch (err) {
        session.setToken("");
        session.self = null;
        error.textContent = err instanceof ApiError && err.status === 401
          ? refusal(err.message) : `Cannot sign in: ${err.message}`;
        return;
      }
      window.dispatchEvent(new CustomEvent("ccloud:signed-in"));
    } },
    h("h2", {}, "Sign in"),
    h("p", { class: "hint" },
      "Paste your API token (the local runner prints the admin token on first start) or an " +
      "ID token from your identity provider."),
    h("div", { class: "field" }, h("label", { for: "token" }, "Token"), input, error),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Sign in")),
  );
  root.append(form);
  input.focus();
}

// The gateway's reason ("Unauthorized: token expired") as a sentence: "Token expired."
function refusal(message) {
  const why = message.replace(/^Unauthorized:\s*/, "") || "unknown or revoked token";
  return `${why[0].toUpperCase()}${why.slice(1)}${why.endsWith(".") ? "" : "."}`;
}

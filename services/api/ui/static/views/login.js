// Sign in with a bearer token, or through the IdP when the gateway has one (sso.js); the
// gateway's self endpoint says who the token belongs to.

import { ApiError, api, session } from "../api.js";
import { h } from "../dom.js";
import { finishSignIn, startSignIn, takeCallback } from "../sso.js";

export function renderLogin(root) {
  const input = h("input", { id: "token", name: "token", type: "password",
                             autocomplete: "current-password", required: true });
  const error = h("span", { class: "field-error", "data-error-for": "token" });
  const ssoError = h("p", { class: "error", role: "alert", "data-error-for": "sso" });
  const ssoStatus = h("p", { class: "notice", role: "status" });
  const ssoButton = h("button", { type: "button", class: "secondary", id: "sso", hidden: true },
    "Sign in with single sign-on");
  const form = h(
    "form",
    { class: "card narrow", onsubmit: (e) => {
      e.preventDefault();
      error.textContent = "";
      signIn(input.value.trim(), error);
    } },
    h("h2", {}, "Sign in"),
    h("p", { class: "hint" },
      "Paste your API token (the local runner prints the admin token on first start) or an " +
      "ID token from your identity provider."),
    h("div", { class: "field" }, h("label", { for: "token" }, "Token"), input, error),
    h("div", { class: "actions" }, ssoButton, h("button", { type: "submit" }, "Sign in")),
    ssoStatus,
    ssoError,
  );
  root.append(form);
  input.focus();

  api.authConfig().then(({ oidc }) => {
    form.dataset.sso = oidc ? "on" : "off";
    if (!oidc) return;
    ssoButton.hidden = false;
    ssoButton.onclick = async () => {
      ssoError.textContent = "";
      ssoButton.disabled = true;
      try {
        await startSignIn(oidc); // leaves the page when it works
      } catch (err) {
        ssoError.textContent = err.message;
        ssoButton.disabled = false;
      }
    };
  }).catch(() => { form.dataset.sso = "off"; }); // the token field still works

  const callback = takeCallback();
  if (callback) {
    ssoStatus.textContent = "Signing in with single sign-on…";
    finishSignIn(callback)
      .then((token) => signIn(token, ssoError))
      .catch((err) => { ssoError.textContent = err.message; })
      .finally(() => { ssoStatus.textContent = ""; });
  }
}

// Use `token` as the session's if the gateway knows it; else say why in `error`.
async function signIn(token, error) {
  session.setToken(token);
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
}

// The gateway's reason ("Unauthorized: token expired") as a sentence: "Token expired."
function refusal(message) {
  const why = message.replace(/^Unauthorized:\s*/, "") || "unknown or revoked token";
  return `${why[0].toUpperCase()}${why.slice(1)}${why.endsWith(".") ? "" : "."}`;
}

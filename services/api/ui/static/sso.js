// Single sign-on: the OpenID Connect authorization code flow with PKCE, as a public client.
//
// The browser goes to the IdP's authorization endpoint and comes back to the console's own
// URL with ?code=&state= (or ?error=); the console redeems the code at the token endpoint
// itself (the IdP must allow the console's origin) and uses the ID token as its session
// token. The gateway checks that token's signature, issuer, audience and expiry on every
// call, so here only state and nonce are checked: they tie the answer to the sign-in this
// tab started (no forged callback links, no replayed tokens).

const PENDING_KEY = "ccloud.sso";
let answer = null;

export class SsoError extends Error {}

// The console's URL without query or hash: what the IdP must know as a redirect URI.
function redirectUri() {
  return `${location.origin}${location.pathname}`;
}

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const random = () => base64url(crypto.getRandomValues(new Uint8Array(32)));

async function fetchJSON(url, init, what) {
  let response;
  try {
    response = await fetch(url, { ...init,
                                  headers: { Accept: "application/json", ...init.headers } });
  } catch {
    // The browser tells no more: network, TLS, or the IdP not allowing this origin (CORS).
    throw new SsoError(`Cannot reach the identity provider's ${what} at ${url} (is it up, ` +
      `and does it allow ${location.origin} as a web origin?).`);
  }
  const body = await response.json().catch(() => null);
  return { ok: response.ok, status: response.status, body };
}

async function discover(issuer) {
  const url = `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
  const { ok, status, body } = await fetchJSON(url, {}, "discovery document");
  if (!ok || !body) throw new SsoError(`The identity provider's discovery document at ${url} ` +
    `answered ${ok ? "no JSON" : `HTTP ${status}`}.`);
  if (body.issuer !== issuer || !body.authorization_endpoint || !body.token_endpoint) {
    throw new SsoError(`The identity provider's discovery document at ${url} is not for ` +
      `${issuer} or lacks its authorization and token endpoints.`);
  }
  return body;
}

// Go to the IdP; `oidc` is the gateway's /ui/auth-config answer.
export async function startSignIn({ issuer, clientID, scopes }) {
  if (!crypto.subtle) {
    throw new SsoError("Single sign-on needs the console served over HTTPS.");
  }
  const idp = await discover(issuer);
  const pending = { state: random(), nonce: random(), verifier: random(), clientID,
                    tokenEndpoint: idp.token_endpoint };
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(pending.verifier));
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(idp.authorization_endpoint);
  for (const [key, value] of Object.entries({
    response_type: "code", client_id: clientID, redirect_uri: redirectUri(), scope: scopes,
    state: pending.state, nonce: pending.nonce, code_challenge: base64url(digest),
    code_challenge_method: "S256",
  })) url.searchParams.set(key, value);
  location.assign(url);
}

// At load: take the IdP's answer off the URL (a reload must not replay it); true if any.
export function captureCallback() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return false;
  answer = params;
  history.replaceState(null, "", `${location.pathname}#/login`);
  return true;
}

// The answer captureCallback kept, once.
export function takeCallback() {
  const params = answer;
  answer = null;
  return params;
}

function claims(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

// The ID token for the IdP's answer `params`; SsoError says why there is none.
export async function finishSignIn(params) {
  let pending = null;
  try {
    pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || "null");
  } catch { /* unreadable: as if no sign-in was started */ }
  sessionStorage.removeItem(PENDING_KEY); // one answer per sign-in started
  if (params.has("error")) {
    const error = params.get("error");
    const why = params.get("error_description");
    throw new SsoError(
      `The identity provider refused the sign-in: ${why ? `${why} (${error})` : error}.`);
  }
  if (!pending || params.get("state") !== pending.state) {
    throw new SsoError("Single sign-on refused: the answer does not belong to a sign-in " +
      "started in this tab (state mismatch). Sign in again.");
  }
  const { ok, status, body } = await fetchJSON(pending.tokenEndpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code", code: params.get("code"), redirect_uri: redirectUri(),
      client_id: pending.clientID, code_verifier: pending.verifier,
    }),
  }, "token endpoint");
  if (!ok) {
    const why = body?.error_description || body?.error || `HTTP ${status}`;
    throw new SsoError(`The identity provider did not accept the sign-in: ${why}` +
      `${body?.error && body.error_description ? ` (${body.error})` : ""}.`);
  }
  if (typeof body?.id_token !== "string") {
    throw new SsoError(
      "The identity provider answered no ID token (is the openid scope allowed?).");
  }
  if (claims(body.id_token).nonce !== pending.nonce) {
    throw new SsoError("Single sign-on refused: the ID token was not issued for this sign-in " +
      "(nonce mismatch). Sign in again.");
  }
  return body.id_token;
}

"""``ccctl login`` / ``logout``: OpenID Connect sign-in for the CLI, as kubelogin does it.

The gateway's public ``/ui/auth-config`` names the IdP (issuer, client ID, scopes: the
console's single sign-on and ccctl share that public client). The login is the
authorization code flow with PKCE (S256) of a native app (RFC 8252): a listener on
127.0.0.1 (a port the OS picks, or ``--listen-port`` for an IdP that registers exact
redirect URIs) takes the browser's return at ``http://127.0.0.1:<port>/callback``. ``state``
ties that answer to this login, ``nonce`` the ID token to it. The tokens go to the config
file's ``oidc`` key (see ``services.cli.config``). The gateway checks the ID token's
signature, issuer and audience on every request, so here it is only decoded, for ``exp``
and ``nonce``.

Before each request, an ID token that has expired or will within ``EXPIRY_MARGIN`` is
renewed with the refresh token (RFC 6749 section 6) and the new tokens saved; when that
fails, the session is over and the user is told to run ``ccctl login``. The IdP rotates
refresh tokens (the old one is spent), so ccctl processes renewing the same session at once
take turns: ``fresh`` holds an exclusive ``flock`` on the sibling file ``<config>.lock``
(mode 0600, left in place: removing a lock file races with its next user) while it re-reads
the stored session, uses an ID token another ccctl stored meanwhile, or else refreshes and
stores the result, so only one refresh reaches the IdP. If a refresh is refused all the
same (a ccctl that takes no lock renewed first), the ID token stored meanwhile is taken.

``logout`` revokes the refresh token at the IdP (RFC 7009: ``token``, ``token_type_hint``
and ``client_id`` posted to the discovery document's optional ``revocation_endpoint``, with
the TLS trust of the token endpoint) and then removes the session from the config file
whatever came of that: the user is logged out locally in any case, and ``LoggedOut`` says
whether the IdP revoked the token or why not (no revocation endpoint, unreachable, an OAuth
error), in which case the refresh token stays valid until it expires. It holds the same
lock (as ``login`` does to store a new session), so that a renewal running meanwhile cannot
store the old session again behind it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import html
import json
import os
import queue
import secrets
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

import jwt

from services.cli.client import ApiFailure, Client
from services.cli.config import SESSION_KEY, Config, read_document, session_of, write_document
from services.cli.errors import CliError

AUTH_CONFIG_PATH = "/ui/auth-config"  # served by services.api.ui (not imported: aiohttp)
SELF_PATH = "/apis/ccloud/v1/self"  # services.api.ui.selfinfo: who the gateway says we are
DISCOVERY_PATH = "/.well-known/openid-configuration"
CALLBACK_PATH = "/callback"
DEFAULT_TIMEOUT = 300.0
EXPIRY_MARGIN = 30.0  # renew this long before exp: the token must outlive the request
IDP_TIMEOUT = 30.0  # seconds per request to the IdP
MAX_ANSWER = 1 << 20  # discovery documents and token answers are a few KiB
VERDICT_WAIT = 120.0  # how long the browser's page waits for the code's redemption
PAGE_SENT_WAIT = 5.0  # how long ccctl waits for the browser to get that page
LOCK_WAIT = 2 * IDP_TIMEOUT + 10  # a renewal holds the lock for two IdP requests at most
LOCK_POLL = 0.05  # seconds between attempts to take the lock


def _system_browser(url: str) -> bool:
    """``webbrowser.open``, but not where only a console browser could start: lynx would
    take over the terminal (SSH sessions), and the printed URL serves better there."""
    graphical = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not graphical and not os.environ.get("BROWSER"):
        return False
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


open_browser: Callable[[str], bool] = _system_browser  # tests put a scripted browser here


class OAuthError(CliError):
    """An OAuth error answer of the IdP (RFC 6749 5.2)."""

    def __init__(self, error: str, description: str) -> None:
        self.error, self.description = error, description
        super().__init__(f"{description} ({error})" if description else error)


@dataclass(frozen=True)
class Provider:
    """What discovery says about the IdP, and how to trust its TLS."""

    issuer: str
    client_id: str
    authorization_endpoint: str
    token_endpoint: str
    tls: ssl.SSLContext
    revocation_endpoint: str | None = None  # RFC 7009, optional in discovery (RFC 8414)


def _tls(ca_file: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as e:
        raise CliError(f"cannot use {ca_file} as the identity provider's CA: {e}") from None


def _fetch_json(request: urllib.request.Request, tls: ssl.SSLContext, what: str) -> tuple[int, Any]:
    """The status and decoded JSON body (None if not JSON) of one call to the IdP."""
    try:
        with urllib.request.urlopen(request, timeout=IDP_TIMEOUT, context=tls) as resp:  # noqa: S310
            status, raw = resp.status, resp.read(MAX_ANSWER)
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read(MAX_ANSWER)
    except OSError as e:  # URLError, TLS, timeouts, refused connections
        reason = getattr(e, "reason", None) or e
        raise CliError(
            f"cannot reach the identity provider's {what} at {request.full_url}: {reason}"
        ) from None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def discover(issuer: str, client_id: str, ca_file: str | None) -> Provider:
    """The IdP's endpoints from its discovery document, which must be for ``issuer``."""
    tls = _tls(ca_file)
    url = issuer.rstrip("/") + DISCOVERY_PATH
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    status, body = _fetch_json(request, tls, "discovery document")
    if status != 200 or not isinstance(body, dict):
        said = "no JSON" if status == 200 else f"HTTP {status}"
        raise CliError(f"the identity provider's discovery document at {url} answered {said}")
    endpoints = body.get("authorization_endpoint"), body.get("token_endpoint")
    if body.get("issuer") != issuer or not all(isinstance(e, str) and e for e in endpoints):
        raise CliError(
            f"the discovery document at {url} is not for {issuer} (it names "
            f"{body.get('issuer')!r}) or lacks its authorization and token endpoints"
        )
    revocation = body.get("revocation_endpoint")
    return Provider(issuer, client_id, endpoints[0], endpoints[1], tls,  # type: ignore[arg-type]
                    revocation if isinstance(revocation, str) and revocation else None)


def _post_form(
    provider: Provider, url: str, form: dict[str, str], what: str
) -> tuple[int, Any]:
    """POST ``form`` to one of the IdP's endpoints (a public client: no secret)."""
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(form).encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "Accept": "application/json"},
    )
    return _fetch_json(request, provider.tls, what)


def _token_request(provider: Provider, form: dict[str, str]) -> dict[str, Any]:
    """POST ``form`` to the token endpoint; its JSON answer."""
    status, body = _post_form(provider, provider.token_endpoint, form, "token endpoint")
    if status == 200 and isinstance(body, dict):
        return body
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        raise OAuthError(body["error"], str(body.get("error_description") or ""))
    raise CliError(f"the identity provider's token endpoint at {provider.token_endpoint} "
                   f"answered HTTP {status} without an OAuth error")


def _revoke(provider: Provider, refresh_token: str) -> None:
    """Revoke ``refresh_token`` (RFC 7009 2.1); CliError (OAuthError) says why it is not."""
    url = provider.revocation_endpoint
    if url is None:
        raise CliError(f"the identity provider at {provider.issuer} offers no revocation "
                       "endpoint (its discovery document names no revocation_endpoint)")
    form = {"token": refresh_token, "token_type_hint": "refresh_token",
            "client_id": provider.client_id}
    try:
        status, body = _post_form(provider, url, form, "revocation endpoint")
    except ValueError as e:  # not a URL urllib can fetch
        raise CliError(f"the identity provider's revocation endpoint {url!r} is not usable: "
                       f"{e}") from None
    if status == 200:  # revoked, or a token the IdP does not know (RFC 7009 2.2)
        return
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        raise OAuthError(body["error"], str(body.get("error_description") or ""))
    raise CliError(f"the identity provider's revocation endpoint at {url} answered HTTP "
                   f"{status} without an OAuth error")


def claims(token: str) -> dict[str, Any]:
    """The ID token's payload, unverified (the gateway verifies it)."""
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise CliError(f"the ID token is not a JWT: {e}") from None
    return payload if isinstance(payload, dict) else {}


def _expiry(token: str) -> float | None:
    try:
        exp = claims(token).get("exp")
    except CliError:
        return None  # not ours to judge: the gateway will say what is wrong with it
    return float(exp) if isinstance(exp, int | float) else None


def _expiring(token: str, margin: float = EXPIRY_MARGIN) -> bool:
    exp = _expiry(token)
    return exp is not None and exp - margin <= time.time()


def _when(exp: float | None) -> str:
    if exp is None:
        return "an unknown time"
    return datetime.fromtimestamp(exp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- what the gateway trusts -------------------------------------------------------------


def gateway_idp(config: Config, timeout: float) -> tuple[str, str, str]:
    """The issuer, client ID and scopes the gateway's ``oidc:`` section names."""
    client = Client(replace(config, token="", session=None), timeout=timeout)
    try:
        body = client.request("GET", AUTH_CONFIG_PATH)
    except ApiFailure as e:
        if e.code == 404:
            raise CliError(
                f"the API server at {config.server} serves no {AUTH_CONFIG_PATH} (an older "
                "gateway, or one without its web UI), so ccctl cannot learn its identity "
                "provider: use a token"
            ) from None
        raise
    oidc = body.get("oidc") if isinstance(body, dict) else None
    if oidc is None:
        raise CliError(
            f"the API server at {config.server} has no single sign-on (OIDC) configured "
            "(no oidc: section in its tokens file): use a token (--token, or token: in "
            f"{config.source})"
        )
    fields = [oidc.get(k) if isinstance(oidc, dict) else None
              for k in ("issuer", "clientID", "scopes")]
    if not all(isinstance(f, str) and f for f in fields):
        raise CliError(f"the API server at {config.server} answered {AUTH_CONFIG_PATH} "
                       "without an issuer, client ID and scopes")
    return fields[0], fields[1], fields[2]  # type: ignore[return-value]


# --- the browser's return ----------------------------------------------------------------


def _page(title: str, message: str) -> str:
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><title>ccctl login</title>"
            "</head><body style=\"font-family: sans-serif; margin: 3em\">"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>")


@dataclass
class _Answer:
    """The IdP's answer the browser brought; its page waits for ccctl's verdict."""

    params: dict[str, str]
    page: tuple[int, str] = (500, "")
    judged: threading.Event = field(default_factory=threading.Event)
    sent: threading.Event = field(default_factory=threading.Event)

    def reply(self, ok: bool, message: str) -> None:
        """Let the browser's request have its page, and give it a moment to get it."""
        title = "Signed in" if ok else "Sign-in failed"
        self.page = (200 if ok else 400, _page(title, message))
        self.judged.set()
        self.sent.wait(PAGE_SENT_WAIT)


class _Listener:
    """The loopback redirect listener (RFC 8252 7.3): the first answer is the one."""

    def __init__(self, port: int) -> None:
        self.answers: queue.Queue[_Answer] = queue.Queue()
        self._taken = False
        self._lock = threading.Lock()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a connection that sends no request is dropped

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                listener._handle(self)

            def log_message(self, *_: Any) -> None:
                pass  # no access log on the user's terminal (the URL holds the code)

        try:
            self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        except OSError as e:
            raise CliError(f"cannot listen on 127.0.0.1:{port} for the browser's return: "
                           f"{e.strerror or e}") from None
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    def __enter__(self) -> _Listener:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, timeout: float) -> _Answer | None:
        try:
            return self.answers.get(timeout=timeout)
        except queue.Empty:
            return None

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(request.path)
        params = dict(urllib.parse.parse_qsl(url.query))
        if url.path != CALLBACK_PATH:
            _send(request, 404, _page("Not found", "ccctl login only listens at /callback."))
            return
        if "code" not in params and "error" not in params:
            _send(request, 400, _page("Sign-in failed", "This address only takes the "
                                      "identity provider's answer to ccctl login."))
            return
        with self._lock:
            taken, self._taken = self._taken, True
        if taken:
            _send(request, 409, _page("Already answered", "ccctl login already had its "
                                      "answer: see the terminal."))
            return
        answer = _Answer(params)
        self.answers.put(answer)
        if answer.judged.wait(VERDICT_WAIT):
            _send(request, *answer.page)
        else:
            _send(request, 504, _page("Sign-in failed", "ccctl gave no verdict: see the "
                                      "terminal."))
        answer.sent.set()


def _send(request: BaseHTTPRequestHandler, status: int, page: str) -> None:
    body = page.encode()
    try:
        request.send_response(status)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.send_header("Cache-Control", "no-store")
        request.send_header("Referrer-Policy", "no-referrer")  # the URL holds the code
        request.end_headers()
        request.wfile.write(body)
    except OSError:
        pass  # the browser went away: the terminal says what happened


# --- login, refresh, logout --------------------------------------------------------------


@dataclass(frozen=True)
class _Pending:
    """What this login sent to the IdP, to check its answer against."""

    provider: Provider
    redirect_uri: str
    state: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    def authorization_url(self, scope: str) -> str:
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": self.provider.client_id,
            "redirect_uri": self.redirect_uri, "scope": scope, "state": self.state,
            "nonce": self.nonce, "code_challenge": challenge, "code_challenge_method": "S256",
        })
        endpoint = self.provider.authorization_endpoint
        return endpoint + ("&" if urllib.parse.urlsplit(endpoint).query else "?") + query

    def redeem(self, params: dict[str, str]) -> dict[str, Any]:
        """The token answer for the IdP's answer ``params``; CliError says why there is none."""
        if "error" in params:
            why = params.get("error_description")
            error = params["error"]
            raise CliError("the identity provider refused the sign-in: "
                           + (f"{why} ({error})" if why else error))
        if not secrets.compare_digest(params.get("state", "").encode(), self.state.encode()):
            raise CliError("the answer the browser brought does not belong to this login "
                           "(state mismatch): run ccctl login again")
        try:
            answer = _token_request(self.provider, {
                "grant_type": "authorization_code", "code": params.get("code", ""),
                "redirect_uri": self.redirect_uri, "client_id": self.provider.client_id,
                "code_verifier": self.verifier,
            })
        except OAuthError as e:
            raise CliError(f"the identity provider did not accept the sign-in: {e}") from None
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise CliError("the identity provider answered no ID token (is openid among the "
                           "client's scopes?)")
        if claims(id_token).get("nonce") != self.nonce:
            raise CliError("the ID token does not belong to this login (nonce mismatch): run "
                           "ccctl login again")
        return answer


def login(
    config: Config, *, path: Path, ca_file: str | None = None, listen_port: int = 0,
    timeout: float = DEFAULT_TIMEOUT, browser: bool = True, extra_scopes: list[str] | None = None,
    err: TextIO,
) -> str:
    """Sign in through the browser and store the tokens in ``path``; what to tell the user."""
    issuer, client_id, scopes = gateway_idp(config, IDP_TIMEOUT)
    if ca_file:
        ca_file = str(Path(ca_file).expanduser().resolve())  # refreshes run from anywhere
    provider = discover(issuer, client_id, ca_file)
    scope = " ".join(dict.fromkeys([*scopes.split(), *(extra_scopes or [])]))
    with _Listener(listen_port) as listener:
        pending = _Pending(provider, listener.redirect_uri)
        url = pending.authorization_url(scope)
        err.write(f"Open this URL in a browser to sign in (waiting up to {timeout:g}s):\n\n"
                  f"    {url}\n\n")
        err.flush()
        if browser and not open_browser(url):
            err.write("(no browser could be started: open the URL yourself)\n")
            err.flush()
        answer = listener.wait(timeout)
        if answer is None:
            raise CliError(f"timed out after {timeout:g}s waiting for the browser to come back "
                           f"to {listener.redirect_uri}: run ccctl login again (--timeout to "
                           "wait longer)")
        try:
            tokens = pending.redeem(answer.params)
            session: dict[str, Any] = {"issuer": issuer, "client-id": client_id}
            if ca_file:
                session["idp-certificate-authority"] = ca_file
            session["id-token"] = tokens["id_token"]
            if isinstance(tokens.get("refresh_token"), str) and tokens["refresh_token"]:
                session["refresh-token"] = tokens["refresh_token"]
            with _locked(path):  # not behind a renewal of the previous session
                _store(path, session, server=config.server)
        except BaseException as e:
            answer.reply(False, str(e) if isinstance(e, CliError) else "ccctl login stopped")
            raise
        answer.reply(True, "ccctl is signed in: you can close this tab.")
    return _signed_in(config, path, session)


def _signed_in(config: Config, path: Path, session: dict[str, Any]) -> str:
    """Who the gateway takes the new ID token for (it checks what ccctl only decoded)."""
    token = session["id-token"]
    client = Client(replace(config, token=token, session=session))
    try:
        user = str(client.request("GET", SELF_PATH).get("user") or "")
    except ApiFailure as e:
        if e.code != 404:  # a gateway without the self endpoint: say what the token says
            raise CliError(f"signed in at the identity provider and stored the tokens in "
                           f"{path}, but the API server refuses the ID token: "
                           f"{str(e).splitlines()[0]}") from None
        user = ""
    payload = claims(token)
    user = user or str(payload.get("preferred_username") or payload.get("sub") or "?")
    then = ("then renewed with the refresh token" if "refresh-token" in session
            else "then run ccctl login again")
    return (f"Signed in as {user}; tokens stored in {path} (the ID token is valid until "
            f"{_when(_expiry(token))}, {then})")


def _store(path: Path, session: dict[str, Any] | None, *, server: str | None = None) -> None:
    """Write (or, None, remove) the session, keeping the file's other keys."""
    doc = read_document(path)
    if session is None:
        doc.pop(SESSION_KEY, None)
    else:
        doc[SESSION_KEY] = session
    if server and not doc.get("server"):
        doc["server"] = server
    write_document(path, doc)


def _refreshed(session: dict[str, Any], token: str) -> dict[str, Any]:
    """The session after renewing its ID token with the refresh token; CliError says why not."""
    refresh_token = session.get("refresh-token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise CliError(f"the ID token expires at {_when(_expiry(token))} and the identity "
                       "provider gave no refresh token")
    issuer, client_id = session.get("issuer"), session.get("client-id")
    if not isinstance(issuer, str) or not isinstance(client_id, str):
        raise CliError("the stored login names no issuer and client-id")
    provider = discover(issuer, client_id, session.get("idp-certificate-authority"))
    try:
        answer = _token_request(provider, {"grant_type": "refresh_token",
                                           "refresh_token": refresh_token,
                                           "client_id": client_id})
    except OAuthError as e:
        raise CliError(f"the identity provider refused the refresh token: {e}") from None
    id_token = answer.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise CliError("the identity provider renewed the session without an ID token")
    if _expiring(id_token, margin=0):
        raise CliError(f"the renewed ID token expired at {_when(_expiry(id_token))} (is this "
                       "machine's clock right?)")
    renewed = {**session, "id-token": id_token}
    if isinstance(answer.get("refresh_token"), str) and answer["refresh_token"]:
        renewed["refresh-token"] = answer["refresh_token"]  # rotated: the old one is spent
    return renewed


def _lock_path(path: Path) -> Path:
    """``<config>.lock`` beside the file the config is (through a symlink too)."""
    target = path.resolve()
    return target.with_name(target.name + ".lock")


def _acquire(fd: int, lock: Path) -> None:
    """Take the exclusive lock on ``fd``, waiting up to LOCK_WAIT for whoever holds it."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise CliError(f"another ccctl has held {lock} for over {LOCK_WAIT:g}s (is one "
                               "stopped while renewing the session?)") from None
            time.sleep(LOCK_POLL)
        except OSError as e:
            raise CliError(f"cannot lock {lock}: {e.strerror or e}") from None


def _lock(path: Path) -> int:
    """An open descriptor of ``path``'s lock file, holding its exclusive flock (released
    when it is closed). flock, not fcntl's POSIX locks: those of one process do not exclude
    each other, these exclude every other open of the file, threads included."""
    lock = _lock_path(path)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise CliError(f"cannot open the lock file {lock}: {e.strerror or e}") from None
    try:
        _acquire(fd, lock)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Only one ccctl at a time reads-and-writes the session in ``path`` in this block."""
    fd = _lock(path)
    try:
        yield
    finally:
        os.close(fd)


def fresh(config: Config) -> Config:
    """``config`` with an ID token good for more than EXPIRY_MARGIN: renewed and saved if
    need be (a no-op for static tokens). Under the lock, so one refresh serves every ccctl
    that finds the token expiring at the same time."""
    if config.session is None or not _expiring(config.token):
        return config
    path = Path(config.source)
    with _locked(path):
        # The stored session, as the ccctl that held the lock before may have left it.
        current = session_of(read_document(path))
        if current is None:
            raise CliError(f"session expired: run ccctl login ({path} no longer holds the "
                           "session of ccctl login)")
        if not _expiring(current["id-token"]):
            return replace(config, token=current["id-token"], session=current)
        try:
            session = _refreshed(current, current["id-token"])
        except CliError as e:
            # Safety net: a ccctl that takes no lock may have renewed it meanwhile, spending
            # the refresh token we hold.
            stored = session_of(read_document(path))
            if stored is not None and stored["id-token"] != current["id-token"] \
                    and not _expiring(stored["id-token"]):
                return replace(config, token=stored["id-token"], session=stored)
            raise CliError(f"session expired: run ccctl login ({e})") from None
        _store(path, session)
    return replace(config, token=session["id-token"], session=session)


@dataclass(frozen=True)
class LoggedOut:
    """What ``logout`` did: the session is gone from the config file in any case."""

    revoked_at: str | None = None  # the issuer that revoked the refresh token
    not_revoked: str | None = None  # why a refresh token could not be revoked


def _revocation(section: Any) -> LoggedOut:
    """Revoke the session's refresh token at its IdP; what came of it (never raises)."""
    refresh_token = section.get("refresh-token") if isinstance(section, dict) else None
    if not isinstance(refresh_token, str) or not refresh_token:
        return LoggedOut()  # nothing the IdP could renew the session with
    issuer, client_id = section.get("issuer"), section.get("client-id")
    if not isinstance(issuer, str) or not isinstance(client_id, str):
        return LoggedOut(not_revoked="the stored login names no issuer and client-id")
    try:
        provider = discover(issuer, client_id, section.get("idp-certificate-authority"))
        _revoke(provider, refresh_token)
    except OAuthError as e:
        return LoggedOut(not_revoked=f"the identity provider at {issuer} refused to revoke "
                                     f"it: {e}")
    except CliError as e:
        return LoggedOut(not_revoked=str(e))
    return LoggedOut(revoked_at=issuer)


def logout(path: Path) -> LoggedOut | None:
    """Revoke the stored login's refresh token at the IdP, then remove the login from
    ``path`` whatever the IdP said (or if it could not be asked); None when there was none."""
    if SESSION_KEY not in read_document(path):
        return None
    try:
        fd: int | None = _lock(path)
    except CliError:
        fd = None  # logging out matters more than keeping out of a renewal's way
    try:
        doc = read_document(path)
        if SESSION_KEY not in doc:
            return None  # another ccctl logged out meanwhile
        try:
            return _revocation(doc[SESSION_KEY])
        finally:
            _store(path, None)
    finally:
        if fd is not None:
            os.close(fd)

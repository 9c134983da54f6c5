"""``ccctl login``/``logout`` and token refresh, against the fake IdP (tests.fakes.oidc) and a
real gateway whose ``oidc:`` section trusts it.

The browser is scripted: ccctl's opener (``services.cli.login.open_browser``) is replaced by
one that, on the test's event loop, GETs the authorization URL at the IdP (which "logs in"
at once and redirects back) and follows that redirect to ccctl's loopback listener, keeping
the page it got. Tampering happens on that way, between ccctl and the IdP.
"""

from __future__ import annotations

import asyncio
import fcntl
import io
import os
import re
import ssl
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import yaml
from aiohttp.test_utils import TestServer
from yarl import URL

from services.api import create_app
from services.api.audit import AuditLog
from services.api.auth import Authenticator
from services.cli import login
from services.cli.config import load
from services.cli.main import main
from shared.models import Cluster, convert
from shared.natsserver import free_port
from shared.store.kv import KVStore
from tests.api.conftest import TOKENS, cluster, users_doc
from tests.cli.conftest import Gateway
from tests.fakes.oidc import FakeIdP
from tests.waiting import eventually

CALLBACK = re.compile(r"http://127\.0\.0\.1:(\d+)/callback")


@dataclass
class Result:
    code: int
    out: str
    err: str


async def ccctl(config: Path, *args: str, err: io.StringIO | None = None) -> Result:
    """``ccctl --config CONFIG ARGS`` in a thread, as a user runs it (no --token)."""
    out, err = io.StringIO(), err or io.StringIO()
    code = await asyncio.to_thread(main, ["--config", str(config), *args], out=out, err=err)
    return Result(code, out.getvalue(), err.getvalue())


@dataclass
class Page:
    status: int
    text: str


@dataclass
class Browser:
    """The user's browser. ``request_changes`` rewrite the query ccctl sends the IdP,
    ``answer_changes`` the IdP's redirect back to ccctl."""

    loop: asyncio.AbstractEventLoop
    tls: ssl.SSLContext
    request_changes: dict[str, str] = field(default_factory=dict)
    answer_changes: dict[str, str] = field(default_factory=dict)
    opened: list[str] = field(default_factory=list)
    visits: list[Future[Page]] = field(default_factory=list)

    def __call__(self, url: str) -> bool:
        """ccctl's opener: returns at once, as webbrowser.open does."""
        self.opened.append(url)
        self.visits.append(asyncio.run_coroutine_threadsafe(self.visit(url), self.loop))
        return True

    async def visit(self, url: str) -> Page:
        async with aiohttp.ClientSession() as session:
            authorize = URL(url, encoded=True).update_query(self.request_changes)
            async with session.get(authorize, ssl=self.tls, allow_redirects=False) as r:
                assert r.status == 302, await r.text()
                back = URL(r.headers["Location"], encoded=True).update_query(self.answer_changes)
            assert CALLBACK.fullmatch(str(back.with_query(None))), back
            async with session.get(back) as r:
                return Page(r.status, await r.text())

    async def page(self, timeout: float = 10.0) -> Page:
        [visit] = self.visits
        return await asyncio.wait_for(asyncio.wrap_future(visit), timeout)


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CCLOUD_TOKEN", "CCLOUD_SERVER", "CCLOUD_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def browser(idp: FakeIdP, monkeypatch: pytest.MonkeyPatch) -> Browser:
    scripted = Browser(asyncio.get_running_loop(), ssl.create_default_context(
        cafile=str(idp.ca_file)))
    monkeypatch.setattr(login, "open_browser", scripted)
    return scripted


@asynccontextmanager
async def serve(store: KVStore, tmp_path: Path, doc: dict[str, Any]) -> AsyncIterator[str]:
    """A gateway with its UI (so /ui/auth-config) authenticating by tokens file ``doc``."""
    app = create_app(store, Authenticator.from_dict(doc), audit=AuditLog(tmp_path / "audit.log"))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def sso_url(kv_store: KVStore, tmp_path: Path, idp: FakeIdP) -> AsyncIterator[str]:
    """Group team-a-readers reads team-a; clusters alpha (team-a) and beta (team-b)."""
    oidc = {"issuerURL": idp.issuer, "clientID": idp.client_id, "caFile": str(idp.ca_file),
            "groups": {"team-a-readers": {"roles": {"team-a": "reader"}}}}
    await kv_store.create(convert(Cluster, cluster("alpha", "team-a")))
    await kv_store.create(convert(Cluster, cluster("beta", "team-b")))
    idp.login_as("carol", ["team-a-readers"])
    async with serve(kv_store, tmp_path, {**users_doc(), "oidc": oidc}) as url:
        yield url


@pytest.fixture
def config(tmp_path: Path, sso_url: str) -> Path:
    """A config with a static token (of ``nobody``, who may read no clusters) beside what
    the login will add."""
    path = tmp_path / "home" / "config.yaml"
    path.parent.mkdir()
    path.write_text(f"server: {sso_url}\nnamespace: team-a\ntoken: {TOKENS['nobody']}\n")
    path.chmod(0o600)
    return path


def raw(config: Path) -> bytes:
    return config.read_bytes()


def stored(config: Path) -> dict[str, Any]:
    return yaml.safe_load(config.read_text())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def set_id_token(config: Path, token: str | None = None, **changes: Any) -> None:
    """Edit the stored session, as time passing would (an expired ID token...)."""
    doc = stored(config)
    if token is not None:
        doc["oidc"]["id-token"] = token
    doc["oidc"].update(changes)
    doc["oidc"] = {k: v for k, v in doc["oidc"].items() if v is not None}
    config.write_text(yaml.safe_dump(doc))


async def log_in(config: Path, idp: FakeIdP, *args: str) -> Result:
    result = await ccctl(config, "login", "--idp-certificate-authority", str(idp.ca_file),
                         "--timeout", "30", *args)
    assert result.code == 0, result.err
    return result


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# --- login -------------------------------------------------------------------------------


async def test_login_stores_the_id_token_and_ccctl_uses_it(
    config: Path, idp: FakeIdP, browser: Browser, sso_url: str
) -> None:
    result = await log_in(config, idp)
    assert result.out.startswith("Signed in as oidc:carol; tokens stored in ")
    [url] = browser.opened
    assert url in result.err  # printed for the user too
    page = await browser.page()
    assert page.status == 200 and "you can close this tab" in page.text

    auth = idp.code_flow()
    port = CALLBACK.fullmatch(auth["redirect_uri"])
    assert port and int(port.group(1)) > 0  # an OS-chosen port

    doc = stored(config)
    session = doc["oidc"]
    assert claims(session["id-token"])["nonce"] == auth["nonce"]
    assert claims(session["id-token"])["preferred_username"] == "carol"
    assert session["refresh-token"]
    assert session["issuer"] == idp.issuer and session["client-id"] == "ccloud"
    assert session["idp-certificate-authority"] == str(idp.ca_file.resolve())
    assert (doc["server"], doc["namespace"], doc["token"]) == (sso_url, "team-a",
                                                               TOKENS["nobody"])
    assert mode(config) == 0o600

    with pytest.raises(OSError):  # the listener is gone
        await asyncio.open_connection("127.0.0.1", int(port.group(1)))

    # The session's ID token, not the file's static token (nobody reads no clusters).
    got = await ccctl(config, "get", "clusters")
    assert got.code == 0, got.err
    assert "alpha" in got.out and "beta" not in got.out
    other = await ccctl(config, "get", "clusters", "-n", "team-b")
    assert other.code == 1
    assert 'User "oidc:carol" cannot list' in other.err


async def test_the_idps_refusal_is_one_clear_line_and_stores_nothing(
    config: Path, idp: FakeIdP, browser: Browser
) -> None:
    before = raw(config)
    idp.refuse("access_denied", "The user did not consent")
    result = await ccctl(config, "login", "--idp-certificate-authority", str(idp.ca_file),
                         "--timeout", "30")
    assert result.code == 1
    assert last_line(result.err) == (
        "error: the identity provider refused the sign-in: The user did not consent "
        "(access_denied)")
    assert "Traceback" not in result.err and result.out == ""
    page = await browser.page()
    assert page.status == 400 and "The user did not consent" in page.text
    assert idp.token_requests == []
    assert raw(config) == before


@pytest.mark.parametrize(
    "changes, message, exchanges",
    [
        pytest.param({"answer_changes": {"state": "forged"}},
                     "error: the answer the browser brought does not belong to this login "
                     "(state mismatch): run ccctl login again", 0, id="state"),
        pytest.param({"request_changes": {"nonce": "replayed"}},
                     "error: the ID token does not belong to this login (nonce mismatch): run "
                     "ccctl login again", 1, id="nonce"),
    ],
)
async def test_a_tampered_answer_is_refused(
    config: Path, idp: FakeIdP, browser: Browser, changes: dict[str, Any], message: str,
    exchanges: int,
) -> None:
    before = raw(config)
    for name, value in changes.items():
        setattr(browser, name, value)
    result = await ccctl(config, "login", "--idp-certificate-authority", str(idp.ca_file),
                         "--timeout", "30")
    assert result.code == 1
    assert last_line(result.err) == message
    page = await browser.page()
    assert page.status == 400 and "mismatch" in page.text
    assert len(idp.token_requests) == exchanges
    assert raw(config) == before


async def test_without_a_browser_the_printed_url_signs_in_on_a_pinned_port(
    tmp_path: Path, idp: FakeIdP, browser: Browser, sso_url: str
) -> None:
    """The user copies the URL; the IdP knows only that one redirect URI; the config file
    does not exist yet."""
    port = free_port()
    idp.redirect_uris = {f"http://127.0.0.1:{port}/callback"}
    config = tmp_path / "new" / "config.yaml"
    err = io.StringIO()
    running = asyncio.create_task(ccctl(
        config, "--server", sso_url, "login", "--no-browser", "--listen-port", str(port),
        "--idp-certificate-authority", str(idp.ca_file), "--timeout", "30", err=err))
    found = await eventually(lambda: re.search(r"https://\S+/auth\?\S+", err.getvalue()),
                             what="the URL on stderr")
    page = await browser.visit(found.group(0))
    result = await asyncio.wait_for(running, 10)
    assert result.code == 0, result.err
    assert page.status == 200
    assert browser.opened == []
    doc = stored(config)
    assert doc["server"] == sso_url and claims(doc["oidc"]["id-token"])["sub"] == "sub-carol"
    assert mode(config) == 0o600


async def test_waiting_for_the_browser_times_out_with_a_message(
    config: Path, idp: FakeIdP, browser: Browser
) -> None:
    before = raw(config)
    result = await ccctl(config, "login", "--no-browser", "--timeout", "0.5",
                         "--idp-certificate-authority", str(idp.ca_file))
    assert result.code == 1
    assert re.fullmatch(r"error: timed out after 0\.5s waiting for the browser to come back "
                        r"to http://127\.0\.0\.1:\d+/callback: run ccctl login again "
                        r"\(--timeout to wait longer\)", last_line(result.err))
    assert browser.opened == [] and idp.authorize_requests == []
    assert raw(config) == before


async def test_a_gateway_without_oidc_says_so(
    kv_store: KVStore, tmp_path: Path, config: Path, browser: Browser
) -> None:
    async with serve(kv_store, tmp_path, users_doc()) as url:
        result = await ccctl(config, "--server", url, "login")
    assert result.code == 1
    assert last_line(result.err) == (
        f"error: the API server at {url} has no single sign-on (OIDC) configured (no oidc: "
        f"section in its tokens file): use a token (--token, or token: in {config})")
    assert browser.opened == []


async def test_a_gateway_without_its_ui_says_so(
    gateway: Gateway, config: Path, browser: Browser
) -> None:
    result = await ccctl(config, "--server", gateway.url, "login")
    assert result.code == 1
    assert "serves no /ui/auth-config" in last_line(result.err)
    assert browser.opened == []


# --- refresh -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["expired", "expiring within 30s"])
async def test_an_expiring_id_token_is_renewed_and_saved(
    config: Path, idp: FakeIdP, browser: Browser, how: str
) -> None:
    if how == "expiring within 30s":
        idp.id_token_lifetime = 20
    await log_in(config, idp)
    idp.id_token_lifetime = 300
    if how == "expired":
        set_id_token(config, idp.token("carol", groups=["team-a-readers"], exp_in=-60))
    old = stored(config)["oidc"]

    got = await ccctl(config, "get", "clusters")
    assert got.code == 0, got.err
    assert "alpha" in got.out
    refresh = idp.token_requests[-1]
    assert refresh == {"grant_type": "refresh_token", "refresh_token": old["refresh-token"],
                       "client_id": "ccloud"}
    new = stored(config)
    assert claims(new["oidc"]["id-token"])["exp"] > time.time() + 200
    assert new["oidc"]["refresh-token"] != old["refresh-token"]  # rotated, and kept
    assert (new["namespace"], new["token"]) == ("team-a", TOKENS["nobody"])
    assert mode(config) == 0o600

    # The renewed token is used as it is; and the saved refresh token is the live one.
    requests = len(idp.token_requests)
    assert (await ccctl(config, "get", "clusters")).code == 0
    assert len(idp.token_requests) == requests
    set_id_token(config, idp.token("carol", groups=["team-a-readers"], exp_in=-60))
    again = await ccctl(config, "get", "clusters")
    assert again.code == 0, again.err
    assert idp.token_requests[-1]["refresh_token"] == new["oidc"]["refresh-token"]


async def _session_ended(idp: FakeIdP, config: Path) -> None:
    idp.end_sessions()


async def _no_refresh_token(idp: FakeIdP, config: Path) -> None:
    set_id_token(config, **{"refresh-token": None})


async def _idp_down(idp: FakeIdP, config: Path) -> None:
    await idp.stop()


@pytest.mark.parametrize(
    "cause, reason",
    [
        pytest.param(_session_ended, r"the identity provider refused the refresh token: "
                     r"Session not active \(invalid_grant\)", id="session-ended"),
        pytest.param(_no_refresh_token, r"the ID token expires at \S+Z and the identity "
                     r"provider gave no refresh token", id="no-refresh-token"),
        pytest.param(_idp_down, r"cannot reach the identity provider's discovery document "
                     r"at https://127\.0\.0\.1:\d+/\.well-known/openid-configuration: .+",
                     id="idp-down"),
    ],
)
async def test_a_failed_refresh_says_to_run_ccctl_login(
    config: Path, idp: FakeIdP, browser: Browser,
    cause: Callable[[FakeIdP, Path], Any], reason: str,
) -> None:
    await log_in(config, idp)
    set_id_token(config, idp.token("carol", groups=["team-a-readers"], exp_in=-60))
    await cause(idp, config)
    before = raw(config)
    result = await ccctl(config, "get", "clusters")
    assert result.code == 1
    assert re.fullmatch(rf"error: session expired: run ccctl login \({reason}\)\n", result.err)
    assert result.out == ""
    assert raw(config) == before


async def test_a_token_another_ccctl_renewed_meanwhile_is_taken(
    config: Path, idp: FakeIdP, browser: Browser
) -> None:
    """A ccctl that read the config before another renewed the session uses the ID token
    the other saved, without spending its own (already spent) refresh token."""
    await log_in(config, idp)
    set_id_token(config, idp.token("carol", groups=["team-a-readers"], exp_in=-60))
    second = load(str(config))  # read before the first renews
    assert (await ccctl(config, "get", "clusters")).code == 0
    saved = stored(config)["oidc"]
    requests = len(idp.token_requests)
    renewed = await asyncio.to_thread(login.fresh, second)
    assert renewed.token == saved["id-token"] and renewed.session == saved
    assert len(idp.token_requests) == requests  # no refresh: the stored token serves


async def test_two_ccctl_renewing_at_once_refresh_only_once(
    config: Path, idp: FakeIdP, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second waits on the lock while the first's refresh is held back at the IdP, then
    takes what the first stored: one refresh request, one new token for both."""
    await log_in(config, idp)
    expired = idp.token("carol", groups=["team-a-readers"], exp_in=-60)
    set_id_token(config, expired)
    first, second = load(str(config)), load(str(config))
    requests = len(idp.token_requests)

    refreshing, release = asyncio.Event(), asyncio.Event()

    async def hold_back(form: dict[str, str]) -> None:
        refreshing.set()
        await release.wait()

    idp.token_hook = hold_back
    second_blocked = threading.Event()
    acquire = login._acquire

    def acquire_noting_contention(fd: int, lock: Path) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            second_blocked.set()  # someone else holds it: wait as ccctl does
            acquire(fd, lock)

    monkeypatch.setattr(login, "_acquire", acquire_noting_contention)
    one = asyncio.create_task(asyncio.to_thread(login.fresh, first))
    await asyncio.wait_for(refreshing.wait(), 10)  # the first holds the lock, mid refresh
    two = asyncio.create_task(asyncio.to_thread(login.fresh, second))
    # The second is at the lock (or, were there none, its refresh at the IdP, held back too).
    await eventually(lambda: second_blocked.is_set() or len(idp.token_requests) > requests + 1,
                     what="the second ccctl to meet the first's refresh")
    assert not two.done()
    release.set()
    renewed = await asyncio.wait_for(asyncio.gather(one, two), 10)

    refreshes = idp.token_requests[requests:]
    assert len(refreshes) == 1 and refreshes[0]["grant_type"] == "refresh_token"
    saved = stored(config)["oidc"]
    assert saved["id-token"] != expired
    assert [r.token for r in renewed] == [saved["id-token"]] * 2
    assert [r.session for r in renewed] == [saved] * 2
    lock = config.with_name("config.yaml.lock")
    assert mode(lock) == 0o600 and lock.read_bytes() == b""


async def test_a_refresh_lost_to_a_ccctl_without_the_lock_takes_the_token_it_stored(
    config: Path, idp: FakeIdP, browser: Browser
) -> None:
    """The safety net: a ccctl that takes no lock (an older one) renews while this one's
    refresh is on its way, spending the refresh token and storing its new ID token."""
    await log_in(config, idp)
    set_id_token(config, idp.token("carol", groups=["team-a-readers"], exp_in=-60))
    theirs = idp.token("carol", groups=["team-a-readers"], exp_in=300)

    async def renewed_elsewhere(form: dict[str, str]) -> None:
        idp.end_sessions()
        set_id_token(config, theirs, **{"refresh-token": "rotated-by-the-other"})

    idp.token_hook = renewed_elsewhere
    requests = len(idp.token_requests)
    renewed = await asyncio.to_thread(login.fresh, load(str(config)))
    assert renewed.token == theirs and renewed.session == stored(config)["oidc"]
    assert len(idp.token_requests) == requests + 1  # it tried its own, refused


# --- logout ------------------------------------------------------------------------------


async def refresh_at_idp(idp: FakeIdP, refresh_token: str) -> tuple[int, dict[str, Any]]:
    """What the IdP's token endpoint says to ``refresh_token`` now."""
    tls = ssl.create_default_context(cafile=str(idp.ca_file))
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
            "client_id": idp.client_id}
    async with aiohttp.ClientSession() as session, \
            session.post(f"{idp.issuer}/token", data=form, ssl=tls) as r:
        return r.status, await r.json()


async def test_logout_revokes_the_refresh_token_and_removes_the_tokens(
    config: Path, idp: FakeIdP, browser: Browser
) -> None:
    await log_in(config, idp)
    assert (await ccctl(config, "get", "clusters")).code == 0
    refresh_token = stored(config)["oidc"]["refresh-token"]

    result = await ccctl(config, "logout")
    assert result.code == 0
    assert result.out == (f"Logged out: removed the tokens of ccctl login from {config}; "
                          f"the refresh token was revoked at {idp.issuer}\n")
    assert result.err == ""
    assert idp.revocation_requests == [{"token": refresh_token,
                                        "token_type_hint": "refresh_token",
                                        "client_id": "ccloud"}]
    status, body = await refresh_at_idp(idp, refresh_token)
    assert (status, body["error"]) == (400, "invalid_grant")
    doc = stored(config)
    assert "oidc" not in doc and (doc["namespace"], doc["token"]) == ("team-a",
                                                                     TOKENS["nobody"])
    assert mode(config) == 0o600
    # Back to the file's static token: nobody may not list team-a's clusters.
    denied = await ccctl(config, "get", "clusters")
    assert denied.code == 1 and 'User "nobody" cannot list' in denied.err

    again = await ccctl(config, "logout")
    assert again.code == 0 and again.out.startswith("Not logged in:")


async def _no_revocation_endpoint(idp: FakeIdP) -> str:
    idp.offers_revocation = False
    return (rf"the identity provider at {re.escape(idp.issuer)} offers no revocation endpoint "
            r"\(its discovery document names no revocation_endpoint\)")


async def _unreachable(idp: FakeIdP) -> str:
    await idp.stop()
    return (r"cannot reach the identity provider's discovery document at "
            rf"{re.escape(idp.issuer)}/\.well-known/openid-configuration: .+")


async def _refused(idp: FakeIdP) -> str:
    idp.refuse_revocation("temporarily_unavailable", "Try again later", 503)
    return (rf"the identity provider at {re.escape(idp.issuer)} refused to revoke it: "
            r"Try again later \(temporarily_unavailable\)")


@pytest.mark.parametrize(
    "cause, revocations",
    [
        pytest.param(_no_revocation_endpoint, 0, id="no-revocation-endpoint"),
        pytest.param(_unreachable, 0, id="idp-unreachable"),
        pytest.param(_refused, 1, id="idp-refuses"),
    ],
)
async def test_logout_without_revocation_still_logs_out_and_says_why(
    config: Path, idp: FakeIdP, browser: Browser,
    cause: Callable[[FakeIdP], Any], revocations: int,
) -> None:
    await log_in(config, idp)
    refresh_token = stored(config)["oidc"]["refresh-token"]
    reason = await cause(idp)

    result = await ccctl(config, "logout")
    assert result.code == 0
    assert result.out == f"Logged out: removed the tokens of ccctl login from {config}\n"
    assert re.fullmatch(r"warning: the refresh token was not revoked, so it stays valid until "
                        rf"it expires: {reason}\n", result.err), result.err
    doc = stored(config)
    assert "oidc" not in doc and doc["token"] == TOKENS["nobody"]
    assert mode(config) == 0o600
    assert len(idp.revocation_requests) == revocations

    # What the message says: the IdP still renews with that refresh token.
    if cause is _unreachable:
        await idp.start()
    status, body = await refresh_at_idp(idp, refresh_token)
    assert status == 200 and body["id_token"]


def test_the_config_file_mode_is_kept_private_on_every_write(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("server: http://127.0.0.1:1\noidc: {id-token: x}\nextra: kept\n")
    os.chmod(path, 0o644)
    assert login.logout(path) == login.LoggedOut()  # no refresh token: nothing to revoke
    assert mode(path) == 0o600
    assert stored(path) == {"server": "http://127.0.0.1:1", "extra": "kept"}


def test_logout_of_a_session_without_a_refresh_token_says_so(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("server: http://127.0.0.1:1\noidc: {id-token: x, issuer: https://x}\n")
    out, err = io.StringIO(), io.StringIO()
    assert main(["--config", str(path), "logout"], out=out, err=err) == 0
    assert out.getvalue() == (f"Logged out: removed the tokens of ccctl login from {path}; "
                              "there was no refresh token to revoke\n")
    assert err.getvalue() == "" and stored(path) == {"server": "http://127.0.0.1:1"}

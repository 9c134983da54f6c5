"""OIDC ID tokens at the gateway, against a fake IdP at the HTTP boundary (tests.fakes.oidc).

Bindings used here: group ``team-a-devs`` writes team-a, ``team-a-readers`` reads it,
``platform-admins`` are operators, and user ``bob`` is admin in team-b by name.
JWKS refetches are rate-limited by a clock the tests drive, so no test sleeps for them.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import msgspec
import pytest
import yaml
from aiohttp.test_utils import TestServer
from nats.aio.client import Client as NATS
from yarl import URL

from services.api import create_app
from services.api.audit import AuditLog
from services.api.auth import AuthConfigError, Authenticator
from services.api.events import PROTOCOL
from services.api.oidc import ssl_context
from services.api.ui import AUTH_CONFIG_PATH
from services.api.ui.selfinfo import SELF_PATH
from shared.bus import Bus, event_for
from shared.models import Cluster, convert
from shared.store.kv import KVStore
from tests.api.conftest import BASE, TOKENS, cluster, ns_path, os_credential, region, users_doc
from tests.fakes.oidc import FakeIdP, s256

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Clock:
    """A monotonic clock the test moves: rate limits without sleeping."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def oidc_section(idp: FakeIdP, **overrides: Any) -> dict[str, Any]:
    return {
        "issuerURL": idp.issuer,
        "clientID": "ccloud",
        "caFile": str(idp.ca_file),
        "groups": {
            "platform-admins": {"operator": True},
            "team-a-devs": {"roles": {"team-a": "writer"}},
            "team-a-readers": {"roles": {"team-a": "reader"}},
        },
        "users": {"bob": {"roles": {"team-b": "admin"}}},
        **overrides,
    }


@dataclass
class OIDCGateway:
    url: str
    session: aiohttp.ClientSession
    audit_path: Path
    idp: FakeIdP
    clock: Clock

    async def call(
        self, method: str, path: str, token: str, *, json: Any = None
    ) -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.session.request(method, self.url + path, json=json,
                                        headers=headers) as r:
            return r.status, await r.json(content_type=None), r.headers

    def audit_users(self) -> list[tuple[str, str, int]]:
        import json as _json

        lines = self.audit_path.read_text().splitlines() if self.audit_path.exists() else []
        return [(e["user"], e["verb"], e["code"]) for e in map(_json.loads, lines)]


@pytest.fixture
async def gw(
    kv_store: KVStore, tmp_path: Path, nc: NATS, prefix: str, idp: FakeIdP
) -> AsyncIterator[OIDCGateway]:
    clock = Clock()
    doc = {**users_doc(), "oidc": oidc_section(idp)}
    auth = Authenticator.from_dict(doc, oidc_clock=clock)
    audit_path = tmp_path / "audit.log"
    app = create_app(kv_store, auth, audit=AuditLog(audit_path), nc=nc, bus_prefix=prefix)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield OIDCGateway(str(server.make_url("")).rstrip("/"), session, audit_path, idp, clock)
    await server.close()


# --- who may do what ---------------------------------------------------------------------


async def test_a_group_binding_writes_its_namespace_and_no_other(gw: OIDCGateway) -> None:
    token = gw.idp.token("alice", groups=["team-a-devs", "unrelated"])
    code, body, _ = await gw.call("POST", ns_path("clusters"), token, json=cluster("c1"))
    assert code == 201, body
    code, body, _ = await gw.call("POST", ns_path("clusters", "team-b"), token,
                                  json=cluster("c2", "team-b"))
    assert code == 403
    assert 'User "oidc:alice" cannot create' in body["message"]
    assert gw.audit_users() == [("oidc:alice", "create", 201), ("oidc:alice", "create", 403)]


async def test_the_highest_role_wins_over_groups_and_the_user_binding(gw: OIDCGateway) -> None:
    token = gw.idp.token("bob", groups=["team-a-readers", "team-a-devs"])
    code, body, _ = await gw.call("POST", ns_path("clusters"), token, json=cluster("c1"))
    assert code == 201, body  # writer beats reader in team-a
    code, body, _ = await gw.call("POST", ns_path("openstackcredentials", "team-b"), token,
                                  json=os_credential(ns="team-b"))
    assert code == 201, body  # admin in team-b by the user binding
    code, _, _ = await gw.call("POST", ns_path("openstackcredentials"), token,
                               json=os_credential())
    assert code == 403  # writers may not write credential kinds
    code, me, _ = await gw.call("GET", SELF_PATH, token)  # the UI's who-am-I, same middleware
    assert code == 200
    assert me["user"] == "oidc:bob" and not me["operator"]
    assert {p["name"]: p["role"] for p in me["projects"]} == {"team-a": "writer",
                                                              "team-b": "admin"}


async def test_a_user_without_bindings_reads_regions_only(gw: OIDCGateway) -> None:
    token = gw.idp.token("carol", groups=["someone-elses-group"])
    code, body, _ = await gw.call("GET", f"{BASE}/regions", token)
    assert code == 200, body
    code, body, _ = await gw.call("POST", f"{BASE}/regions", token, json=region("east"))
    assert code == 403 and 'User "oidc:carol"' in body["message"]
    code, _, _ = await gw.call("GET", ns_path("clusters"), token)
    assert code == 403


async def test_an_operator_group_may_do_everything(gw: OIDCGateway) -> None:
    token = gw.idp.token("dave", groups=["platform-admins"])
    code, body, _ = await gw.call("POST", f"{BASE}/regions", token, json=region("east"))
    assert code == 201, body
    code, body, _ = await gw.call("POST", ns_path("clusters", "team-z"), token,
                                  json=cluster("c9", "team-z"))
    assert code == 201, body


async def test_static_tokens_keep_working_and_never_touch_the_idp(gw: OIDCGateway) -> None:
    await gw.idp.stop()
    code, body, _ = await gw.call("POST", f"{BASE}/regions", TOKENS["ops"], json=region("r1"))
    assert code == 201, body
    code, body, _ = await gw.call("GET", f"{BASE}/regions", "not-a-known-token")
    assert code == 401 and body["message"] == "Unauthorized: unknown or revoked token"
    assert gw.idp.discovery_fetches == 0 and gw.idp.jwks_fetches == 0


@pytest.mark.parametrize("alg", ["ES256", "PS256"])
async def test_other_asymmetric_algorithms(gw: OIDCGateway, alg: str) -> None:
    gw.idp.rotate(alg=alg, keep_old=False)
    code, body, _ = await gw.call("GET", f"{BASE}/regions", gw.idp.token("erin", alg=alg))
    assert code == 200, body


# --- rejections --------------------------------------------------------------------------


def _tampered(idp: FakeIdP) -> str:
    header, _, signature = idp.token("alice").split(".")
    forged = idp.token("mallory", groups=["platform-admins"]).split(".")[1]
    return f"{header}.{forged}.{signature}"


REJECTED = {
    "expired": (lambda idp: idp.token(exp_in=-5), "token expired"),
    "audience": (lambda idp: idp.token(aud="another-client"),
                 "token audience does not include 'ccloud'"),
    "issuer": (lambda idp: idp.token(iss="https://evil.example"),
               "token issuer 'https://evil.example' is not"),
    "hs256": (lambda idp: idp.token(alg="HS256"), "token algorithm HS256 is not accepted"),
    "none": (lambda idp: idp.token(alg="none"), "token algorithm none is not accepted"),
    "tampered": (_tampered, "token signature is invalid"),
    "no exp": (lambda idp: idp.token(exp=None), "token has no 'exp' claim"),
    "future nbf": (lambda idp: idp.token(nbf=int(time.time()) + 600), "token not valid yet"),
    "no username": (lambda idp: idp.token(None),
                    "token claim 'preferred_username' must be a non-empty string"),
    "groups not a list": (lambda idp: idp.token(groups="team-a-devs"),  # type: ignore[arg-type]
                          "token claim 'groups' must be a list of strings"),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
async def test_bad_tokens_are_401_saying_why(gw: OIDCGateway, case: str) -> None:
    make, reason = REJECTED[case]
    code, body, headers = await gw.call("GET", f"{BASE}/regions", make(gw.idp))
    assert code == 401, body
    assert body["reason"] == "Unauthorized"
    assert body["message"].startswith(f"Unauthorized: {reason}"), body["message"]
    challenge = headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="ccloud", error="invalid_token"')
    assert reason.replace('"', "") in challenge


async def test_an_nbf_within_the_leeway_is_accepted(gw: OIDCGateway) -> None:
    token = gw.idp.token("alice", nbf=int(time.time()) + 10, iat=int(time.time()) + 10)
    assert (await gw.call("GET", f"{BASE}/regions", token))[0] == 200


# --- keys, rotation and the IdP's availability --------------------------------------------


async def test_rotation_refetches_once_and_unknown_kids_are_rate_limited(
    gw: OIDCGateway,
) -> None:
    idp = gw.idp
    first = idp.token("alice")
    assert (await gw.call("GET", f"{BASE}/regions", first))[0] == 200
    assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)
    for _ in range(3):  # verified tokens are remembered: no fetch, no signature check
        assert (await gw.call("GET", f"{BASE}/regions", first))[0] == 200
    assert idp.jwks_fetches == 1

    gw.clock.advance(31)
    old_kid = idp.current.kid
    idp.rotate()
    rotated = idp.token("alice")
    code, body, _ = await gw.call("GET", f"{BASE}/regions", rotated)
    assert code == 200, body
    assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 2)
    old = idp.token("alice", kid=old_kid, groups=["team-a-devs"])  # old key still served
    assert (await gw.call("GET", f"{BASE}/regions", old))[0] == 200
    assert idp.jwks_fetches == 2

    async def flood() -> list[tuple[int, str]]:
        tokens = [idp.token("mallory", kid=f"made-up-{i}") for i in range(20)]
        answers = await asyncio.gather(
            *(gw.call("GET", f"{BASE}/regions", t) for t in tokens)
        )
        return [(code, body["message"]) for code, body, _ in answers]

    unknown = (401, "Unauthorized: token signed by an unknown key")
    assert await flood() == [unknown] * 20
    assert idp.jwks_fetches == 2  # within 30 s of the last fetch: none
    gw.clock.advance(31)
    assert await flood() == [unknown] * 20
    assert idp.jwks_fetches == 3  # one fetch shared by the whole flood
    assert (await gw.call("GET", f"{BASE}/regions", rotated))[0] == 200


async def test_an_unreachable_idp_is_503_then_recovers(gw: OIDCGateway) -> None:
    idp = gw.idp
    await idp.stop()
    token = idp.token("alice", groups=["team-a-devs"])
    code, body, headers = await gw.call("GET", ns_path("clusters"), token)
    assert code == 503, body
    assert body["reason"] == "ServiceUnavailable"
    assert body["message"].startswith("cannot verify the token now: cannot fetch the "
                                      f"discovery document {idp.issuer}/.well-known/")
    assert 1 <= int(headers["Retry-After"]) <= 30

    await idp.start()
    code, body, _ = await gw.call("GET", ns_path("clusters"), token)
    assert code == 503, "retried only once the rate limit allows"
    gw.clock.advance(31)
    code, body, _ = await gw.call("GET", ns_path("clusters"), token)
    assert code == 200, body
    assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)

    await idp.stop()  # keys are cached: known tokens need no IdP
    fresh = idp.token("alice", groups=["team-a-devs"], jti="another")
    assert (await gw.call("GET", ns_path("clusters"), fresh))[0] == 200


async def test_a_discovery_document_for_another_issuer_is_refused(gw: OIDCGateway) -> None:
    gw.idp.discovery_issuer = "https://127.0.0.1:1/other"
    code, body, _ = await gw.call("GET", f"{BASE}/regions", gw.idp.token("alice"))
    assert code == 503
    assert "discovery document's issuer 'https://127.0.0.1:1/other' is not" in body["message"]


async def test_untrusted_idp_certificate_is_503_with_the_tls_reason(
    kv_store: KVStore, tmp_path: Path, idp: FakeIdP
) -> None:
    section = oidc_section(idp)
    del section["caFile"]  # the system's CAs do not know the test CA
    auth = Authenticator.from_dict({"oidc": section})
    app = create_app(kv_store, auth, audit=tmp_path / "audit.log", mount_ui=False)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.make_url(f"{BASE}/regions"),
                                   headers={"Authorization": f"Bearer {idp.token()}"}) as r:
                assert r.status == 503
                assert "TLS: " in (await r.json())["message"]
    finally:
        await server.close()


async def test_the_events_websocket_takes_an_oidc_token_as_subprotocol(
    gw: OIDCGateway, nc: NATS, prefix: str
) -> None:
    bus = Bus(nc, prefix=prefix)
    await bus.start()
    token = gw.idp.token("alice", groups=["team-a-readers"])
    encoded = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
    ws = await gw.session.ws_connect(
        gw.url + "/apis/events", params={"kind": "cl"},
        protocols=(PROTOCOL, f"base64url.bearer.authorization.k8s.io.{encoded}"),
    )
    try:
        obj = convert(Cluster, cluster("c1"))
        meta = msgspec.structs.replace(obj.metadata, uid="uid-c1", resource_version="1")
        await bus.publish(event_for("ADDED", msgspec.structs.replace(obj, metadata=meta)))
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        assert msg.json()["event"]["name"] == "c1"
    finally:
        await ws.close()


# --- configuration -----------------------------------------------------------------------


def _section(**overrides: Any) -> dict[str, Any]:
    return {"issuerURL": "https://idp.example/realms/cc", "clientID": "ccloud", **overrides}


@pytest.mark.parametrize(
    "section, message",
    [
        ("yes", "t.yaml: oidc must be a mapping"),
        (_section(issuerURL="http://idp.example"), "t.yaml: oidc.issuerURL must be an https URL"),
        (_section(issuerURL="https://"), "t.yaml: oidc.issuerURL must be an https URL"),
        (_section(issuerURL="https://idp.example/?x=1"),
         "t.yaml: oidc.issuerURL must be an https URL"),
        (_section(clientID=""), "t.yaml: oidc.clientID must be a non-empty string"),
        ({"issuerURL": "https://idp.example"}, "t.yaml: oidc.clientID must be a non-empty string"),
        (_section(usernameClaim=3), "t.yaml: oidc.usernameClaim must be a non-empty string"),
        (_section(usernamePrefix=""),
         't.yaml: oidc.usernamePrefix must be a non-empty string ("-" for none)'),
        (_section(issuerUrl="https://x"), "t.yaml: oidc: unknown key 'issuerUrl'"),
        (_section(caFile="/nonexistent/ca.pem"),
         "t.yaml: oidc.caFile: cannot read /nonexistent/ca.pem: No such file or directory"),
        (_section(groups=["a"]), "t.yaml: oidc.groups must map names to bindings"),
        (_section(groups={"devs": {"roles": {"team-a": "god"}}}),
         "t.yaml: oidc.groups.devs.roles.team-a: unknown role 'god' (reader, writer, admin)"),
        (_section(groups={"devs": {"role": {"team-a": "reader"}}}),
         "t.yaml: oidc.groups.devs: unknown key 'role' (operator, roles)"),
        (_section(groups={"ops": {"operator": "yes"}}),
         "t.yaml: oidc.groups.ops.operator must be true or false"),
        (_section(users={"alice": None}),
         "t.yaml: oidc.users.alice must be a mapping with operator and/or roles"),
        (_section(users={"alice": {"roles": ["team-a"]}}),
         "t.yaml: oidc.users.alice.roles must map namespace to role"),
        (_section(scopes=""), 't.yaml: oidc.scopes must be space-separated scopes'),
        (_section(scopes=["openid"]), 't.yaml: oidc.scopes must be space-separated scopes'),
        (_section(scopes='openid "x"'), 't.yaml: oidc.scopes must be space-separated scopes'),
        (_section(scopes="profile email"), "t.yaml: oidc.scopes must include openid"),
    ],
)
def test_oidc_config_errors_name_the_path(section: Any, message: str) -> None:
    with pytest.raises(AuthConfigError) as e:
        Authenticator.from_dict({"oidc": section}, source="t.yaml")
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def test_a_ca_file_without_a_certificate_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    with pytest.raises(AuthConfigError, match=r"oidc.caFile: .*ca.pem holds no PEM certificate"):
        Authenticator.from_dict({"oidc": _section(caFile="ca.pem")}, base_dir=tmp_path)


async def test_without_an_oidc_section_jwts_are_unknown_tokens(idp: FakeIdP) -> None:
    auth = Authenticator.from_dict(users_doc())
    assert auth.oidc is None
    assert await auth.authenticate(idp.token("alice")) is None
    assert idp.discovery_fetches == 0


def test_the_file_form_with_defaults_and_no_static_users(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(yaml.safe_dump({"oidc": {
        "issuerURL": "https://idp.example/realms/cc", "clientID": "ccloud",
        "usernamePrefix": "-", "groups": {"devs": {"roles": {"team-a": "writer"}}},
    }}))
    auth = Authenticator.from_file(tokens)
    assert auth.oidc is not None and auth.oidc.prefix == ""
    assert auth.oidc.verifier.username_claim == "preferred_username"
    assert auth.oidc.verifier.groups_claim == "groups"


async def test_the_entrypoint_exits_with_the_one_line_error(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(yaml.safe_dump({"oidc": {"issuerURL": "http://idp.example",
                                               "clientID": "ccloud"}}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.api", "--tokens-file", str(tokens),
        "--nats-url", "nats://127.0.0.1:1", "--data-dir", str(tmp_path),
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert out == b""
    assert err.decode() == f"error: {tokens}: oidc.issuerURL must be an https URL\n"


# --- the console's single sign-on ---------------------------------------------------------


async def test_auth_config_tells_the_console_the_idp_and_nothing_else(gw: OIDCGateway) -> None:
    async with gw.session.get(gw.url + AUTH_CONFIG_PATH) as r:  # no token: the page is public
        assert r.status == 200
        assert r.headers["Cache-Control"] == "no-cache"
        body = await r.json()
    assert body == {"oidc": {"issuer": gw.idp.issuer, "clientID": "ccloud",
                             "scopes": "openid profile email"}}


async def test_auth_config_without_oidc_offers_no_sso(kv_store: KVStore, tmp_path: Path) -> None:
    app = create_app(kv_store, Authenticator.from_dict(users_doc()),
                     audit=AuditLog(tmp_path / "audit.log"))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session, \
                session.get(str(server.make_url(AUTH_CONFIG_PATH))) as r:
            assert (r.status, await r.json()) == (200, {"oidc": None})
    finally:
        await server.close()


def test_scopes_are_normalised_and_default() -> None:
    auth = Authenticator.from_dict({"oidc": _section(scopes="  openid   groups\toffline_access ")})
    assert auth.oidc is not None and auth.oidc.scopes == "openid groups offline_access"
    auth = Authenticator.from_dict({"oidc": _section()})
    assert auth.oidc is not None and auth.oidc.scopes == "openid profile email"


async def test_the_fake_idps_code_flow_refuses_what_a_real_one_would(idp: FakeIdP) -> None:
    """The browser test covers the happy path; these are the fake's refusals."""
    redirect = "http://127.0.0.1:1/ui/"
    idp.redirect_uris.add(redirect)
    idp.web_origins.add("http://127.0.0.1:1")
    idp.login_as("carol", ["devs"])
    verifier = "v" * 43
    query = {"response_type": "code", "client_id": "ccloud", "redirect_uri": redirect,
             "scope": "openid", "state": "s1", "nonce": "n1",
             "code_challenge": s256(verifier), "code_challenge_method": "S256"}
    connector = aiohttp.TCPConnector(ssl=ssl_context(str(idp.ca_file)))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def authorize(**changes: str) -> tuple[int, dict[str, str]]:
            async with session.get(idp.issuer + "/auth", params={**query, **changes},
                                   allow_redirects=False) as r:
                location = URL(r.headers.get("Location", ""))
                return r.status, dict(location.query)

        async def redeem(code: str, **changes: str) -> tuple[int, Any]:
            form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
                    "client_id": "ccloud", "code_verifier": verifier, **changes}
            async with session.post(idp.issuer + "/token", data=form,
                                    headers={"Origin": "http://127.0.0.1:1"}) as r:
                assert r.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:1"
                return r.status, await r.json()

        assert (await authorize(client_id="other"))[0] == 400  # no redirect to the unknown
        assert (await authorize(redirect_uri="https://evil.example/"))[0] == 400
        assert await authorize(code_challenge_method="plain") == (
            302, {"error": "invalid_request", "error_description": "PKCE with S256 is required",
                  "state": "s1"})
        status, answer = await authorize()
        assert status == 302 and answer["state"] == "s1"
        code = answer["code"]
        assert await redeem(code, code_verifier="w" * 43) == (400, {
            "error": "invalid_grant", "error_description": "the PKCE code_verifier does not match"})
        assert (await redeem(code))[1]["error"] == "invalid_grant"  # one try per code

        _, answer = await authorize()
        assert (await redeem(answer["code"], client_id="other"))[0] == 401
        _, answer = await authorize()
        assert (await redeem(answer["code"], redirect_uri=redirect + "x"))[0] == 400
        _, answer = await authorize()
        status, tokens = await redeem(answer["code"])
        assert status == 200 and tokens["token_type"] == "Bearer"
        claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
        assert (claims["preferred_username"], claims["groups"], claims["nonce"]) == (
            "carol", ["devs"], "n1")

        async with session.options(idp.issuer + "/token", headers={
            "Origin": "http://127.0.0.1:1", "Access-Control-Request-Method": "POST",
        }) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:1"
        async with session.get(idp.issuer + "/.well-known/openid-configuration",
                               headers={"Origin": "https://elsewhere.example"}) as r:
            assert "Access-Control-Allow-Origin" not in r.headers

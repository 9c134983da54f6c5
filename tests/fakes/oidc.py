"""A fake OpenID Connect provider at the HTTP boundary, as Keycloak or Dex serve it.

An aiohttp HTTPS server on 127.0.0.1 (certificate from ``tests.attach.pki``; trust it with
``ca_file``) serving what a relying party fetches:

- ``/.well-known/openid-configuration``: the discovery document (``issuer``, ``jwks_uri``,
  signing algorithms...); ``discovery_issuer`` overrides its ``issuer`` to test a mismatch;
- ``/keys``: the JWKS, public JWKs of real keys (``kid``, ``alg``, ``use: sig``);
- ``/auth`` and ``/token``: the authorization code flow for a public client with PKCE
  (S256 only, required, as Keycloak's "PKCE method S256" setting). ``login_as(...)`` says
  who "logs in" at ``/auth`` (no login page: it redirects straight back with a code),
  ``refuse(...)`` makes it redirect back with an OAuth error instead. ``/token`` redeems a
  code once, for the same client, redirect URI and PKCE verifier, and answers an ID token
  carrying the request's nonce (valid ``id_token_lifetime`` seconds) and a refresh token;
  anything else is the OAuth error JSON with a 400/401. ``redirect_uris``, when not empty,
  are the only ones ``/auth`` accepts.
- ``/token`` with ``grant_type=refresh_token`` (RFC 6749 section 6, OIDC Core 12): a refresh
  token is bound to the client it was issued to and, if ``scope`` is given, to no more than
  the scopes first granted; it answers a new ID token for the same user (same nonce) and a
  new refresh token, the old one being spent (rotation, as the OAuth security BCP wants for
  public clients). ``end_sessions()`` makes every refresh token issued so far refused with
  ``invalid_grant``, as Keycloak's "Session not active" once the user's session is over.
  ``token_hook``, when set, is awaited with each ``/token`` form before it is handled (after
  it is recorded): a test holds the answer back there, to make requests overlap.
- ``/revoke``: token revocation (RFC 7009) for the public client, named in discovery as
  ``revocation_endpoint`` unless ``offers_revocation`` is False (then ``/revoke`` is a 404
  too). A refresh token issued to the requesting ``client_id`` is revoked (its
  grant removed: ``/token`` refuses it with ``invalid_grant``); a token it does not know
  also gets 200 (RFC 7009 2.2), one issued to another client ``invalid_grant``, an unknown
  client ``invalid_client`` (401). ``refuse_revocation(...)`` makes it answer that OAuth
  error instead; ``revocation_requests`` keeps the form of each call.

Browsers call discovery and ``/token`` from the console's origin: those in ``web_origins``
get CORS headers (and preflights an answer), as Keycloak does for a client's web origins.

``token(...)`` mints an ID token signed with the current key (or any alg/kid a test wants,
including HS256 and ``none``), ``rotate()`` makes a new key current, ``stop()``/``start()``
make the IdP unreachable and back on the same port, and ``discovery_fetches`` /
``jwks_fetches`` count what relying parties fetched; ``authorize_requests`` and
``token_requests`` keep the parameters of each call to ``/auth`` and ``/token``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from yarl import URL

from tests.attach.pki import CA

HMAC_SECRET = b"a-client-secret-that-is-long-enough!!"
CODE_LIFETIME = 60.0  # seconds, as Keycloak's default "client login timeout"
CORS_PATHS = ("/.well-known/openid-configuration", "/keys", "/token")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg[0] in "RP" else ECAlgorithm
        public = algorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}


def new_key(alg: str = "RS256") -> SigningKey:
    if alg.startswith(("RS", "PS")):
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[alg]
        private = ec.generate_private_key(curve)
    return SigningKey(kid=f"k-{uuid.uuid4().hex[:8]}", alg=alg, private=private)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier`` (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Grant:
    """What an issued authorization code stands for, until redeemed."""

    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    username: str
    groups: tuple[str, ...]
    expires: float
    scope: str = "openid"


@dataclass(frozen=True)
class RefreshGrant:
    """What an issued refresh token stands for, until spent or its session ends."""

    client_id: str
    scope: str
    nonce: str | None
    username: str
    groups: tuple[str, ...]


@dataclass
class Login:
    """Who ``/auth`` signs in, or the error it answers (``error`` set)."""

    username: str | None = None
    groups: list[str] = field(default_factory=list)
    error: str | None = None
    description: str = ""


class OAuthError(Exception):
    """An OAuth error answer of ``/token`` (RFC 6749 5.2)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


class FakeIdP:
    def __init__(self, workdir: Path, *, client_id: str = "ccloud", alg: str = "RS256") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        ca = CA("idp-ca")
        pair = ca.issue("idp", server=True)
        self.ca_file = workdir / "idp-ca.pem"
        self.ca_file.write_bytes(ca.pem)
        cert, key = workdir / "idp.crt", workdir / "idp.key"
        cert.write_bytes(pair.cert_pem)
        key.write_bytes(pair.key_pem)
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(cert, key)
        self.client_id = client_id
        self.keys: list[SigningKey] = [new_key(alg)]  # the last one signs
        self.discovery_issuer: str | None = None
        self.discovery_fetches = 0
        self.jwks_fetches = 0
        self.web_origins: set[str] = set()
        self.redirect_uris: set[str] = set()
        self.login = Login()
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self.token_hook: Callable[[dict[str, str]], Awaitable[None]] | None = None
        self.offers_revocation = True
        self.revocation_requests: list[dict[str, str]] = []
        self.revocation_refusal: OAuthError | None = None
        self._grants: dict[str, Grant] = {}
        self._refresh_grants: dict[str, RefreshGrant] = {}
        self.id_token_lifetime = 300.0  # seconds, of the ID tokens /token answers
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def issuer(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def current(self) -> SigningKey:
        return self.keys[-1]

    async def start(self) -> None:
        """Listen (again: on the same port, so the issuer URL stays valid)."""
        app = web.Application(middlewares=[self._cors])
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/keys", self._jwks)
        app.router.add_get("/auth", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_post("/revoke", self._revoke)
        for path in CORS_PATHS:
            app.router.add_route("OPTIONS", path, self._preflight)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self._tls)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def login_as(self, username: str, groups: list[str] | None = None) -> None:
        """The user ``/auth`` signs in from now on (as if they typed their password)."""
        self.login = Login(username=username, groups=list(groups or []))

    def code_flow(self) -> dict[str, str]:
        """Check that exactly one authorization code flow with PKCE happened as a public
        client must run it (S256, a long state and nonce, the code redeemed for the same
        redirect URI with the verifier of the challenge); its /auth parameters."""
        [auth] = self.authorize_requests
        assert auth["response_type"] == "code"
        assert auth["client_id"] == self.client_id
        assert auth["scope"] == "openid profile email"
        assert auth["code_challenge_method"] == "S256"
        assert len(auth["state"]) >= 32 and len(auth["nonce"]) >= 32
        [exchange] = self.token_requests
        assert exchange["grant_type"] == "authorization_code"
        assert exchange["redirect_uri"] == auth["redirect_uri"]
        assert s256(exchange["code_verifier"]) == auth["code_challenge"]
        return auth

    def refuse(self, error: str = "access_denied", description: str = "") -> None:
        """Make ``/auth`` redirect back with this OAuth error (the user said no, ...)."""
        self.login = Login(error=error, description=description)

    def refuse_revocation(self, error: str = "temporarily_unavailable", description: str = "",
                          status: int = 503) -> None:
        """Make ``/revoke`` answer this OAuth error (RFC 7009 2.2.1) to every request."""
        self.revocation_refusal = OAuthError(error, description, status)

    def end_sessions(self) -> None:
        """The users' sessions are over (logged out, revoked by an admin): every refresh
        token issued so far is refused from now on."""
        self._refresh_grants.clear()

    def rotate(self, *, keep_old: bool = True, alg: str | None = None) -> str:
        """Make a new key current; the JWKS keeps the old ones unless ``keep_old`` is False."""
        key = new_key(alg or self.current.alg)
        self.keys = [*self.keys, key] if keep_old else [key]
        return key.kid

    def token(
        self,
        username: str | None = "alice",
        *,
        groups: list[str] | None = None,
        aud: str | list[str] | None = None,
        exp_in: float = 300,
        kid: str | None = None,
        alg: str | None = None,
        **claims: Any,
    ) -> str:
        """An ID token for ``username``; claims given as None are left out.

        ``kid`` of a key this IdP has signs with that key, any other ``kid`` is only put in
        the header (signed with the current key); ``alg`` HS* signs with a shared secret,
        ``none`` not at all.
        """
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer, "sub": f"sub-{username}", "aud": aud or self.client_id,
            "iat": now, "exp": int(now + exp_in), "preferred_username": username,
            "groups": groups,
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        signer = next((k for k in self.keys if k.kid == kid), self.current)
        alg = alg or signer.alg
        headers = {"kid": kid or signer.kid}
        if alg == "none":
            return f"{_b64({'alg': 'none', 'typ': 'JWT', **headers})}.{_b64(payload)}."
        key = HMAC_SECRET if alg.startswith("HS") else signer.private
        return jwt.encode(payload, key, algorithm=alg, headers=headers)

    def discovery(self) -> dict[str, Any]:
        revocation = {
            "revocation_endpoint": f"{self.issuer}/revoke",
            "revocation_endpoint_auth_methods_supported": ["none"],
        } if self.offers_revocation else {}
        return {
            "issuer": self.discovery_issuer or self.issuer,
            "authorization_endpoint": f"{self.issuer}/auth",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/keys",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["openid", "profile", "email"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted({k.alg for k in self.keys}),
            **revocation,
        }

    async def _discovery(self, _: web.Request) -> web.Response:
        self.discovery_fetches += 1
        return web.json_response(self.discovery())

    async def _jwks(self, _: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return web.json_response({"keys": [k.jwk() for k in self.keys]})

    # --- authorization code flow ---------------------------------------------------------

    @web.middleware
    async def _cors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        origin = request.headers.get("Origin")
        if origin in self.web_origins and request.path in CORS_PATHS:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    async def _preflight(self, request: web.Request) -> web.Response:
        if request.headers.get("Origin") not in self.web_origins:
            return web.Response(status=403, text="origin not allowed")
        return web.Response(status=204, headers={
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": request.headers.get(
                "Access-Control-Request-Headers", "Content-Type"),
            "Access-Control-Max-Age": "600",
        })

    async def _authorize(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.authorize_requests.append(q)
        redirect_uri = q.get("redirect_uri", "")
        # Never redirect to a URI the client is not known for: show an error page instead.
        if q.get("client_id") != self.client_id:
            return web.Response(status=400, text=f"unknown client_id {q.get('client_id')!r}")
        if not redirect_uri or (self.redirect_uris and redirect_uri not in self.redirect_uris):
            return web.Response(status=400, text=f"invalid redirect_uri {redirect_uri!r}")

        def back(**params: str) -> web.HTTPFound:
            if "state" in q:
                params["state"] = q["state"]
            return web.HTTPFound(URL(redirect_uri).update_query(params))

        if q.get("response_type") != "code":
            raise back(error="unsupported_response_type",
                       error_description="only code is supported")
        if "openid" not in q.get("scope", "").split():
            raise back(error="invalid_scope", error_description="the openid scope is required")
        if not q.get("code_challenge") or q.get("code_challenge_method") != "S256":
            raise back(error="invalid_request", error_description="PKCE with S256 is required")
        if self.login.error is not None:
            raise back(error=self.login.error, error_description=self.login.description)
        if self.login.username is None:
            raise back(error="access_denied",
                       error_description="nobody logged in at the fake IdP")
        code = secrets.token_urlsafe(24)
        self._grants[code] = Grant(
            client_id=self.client_id, redirect_uri=redirect_uri,
            challenge=q["code_challenge"], nonce=q.get("nonce"),
            username=self.login.username, groups=tuple(self.login.groups),
            expires=time.time() + CODE_LIFETIME, scope=q["scope"],
        )
        raise back(code=code)

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        if self.token_hook is not None:
            await self.token_hook(form)
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        try:
            if form.get("grant_type") == "refresh_token":
                grant = self._refresh(form)
            else:
                code = self._redeem(form)
                grant = RefreshGrant(client_id=code.client_id, scope=code.scope,
                                     nonce=code.nonce, username=code.username,
                                     groups=code.groups)
        except OAuthError as e:
            body = {"error": e.error, "error_description": e.description}
            return web.json_response(body, status=e.status, headers=headers)
        refresh_token = secrets.token_urlsafe(32)
        self._refresh_grants[refresh_token] = grant
        lifetime = self.id_token_lifetime
        id_token = self.token(grant.username, groups=list(grant.groups), exp_in=lifetime,
                              nonce=grant.nonce)
        return web.json_response({
            "access_token": secrets.token_urlsafe(24), "id_token": id_token,
            "refresh_token": refresh_token, "token_type": "Bearer",
            "expires_in": int(lifetime), "scope": grant.scope,
        }, headers=headers)

    def _refresh(self, form: dict[str, str]) -> RefreshGrant:
        if form.get("client_id") != self.client_id:
            raise OAuthError("invalid_client", "unknown client_id", status=401)
        token = form.get("refresh_token", "")
        grant = self._refresh_grants.get(token)
        if grant is None:
            raise OAuthError("invalid_grant", "Session not active")
        if grant.client_id != form["client_id"]:
            raise OAuthError("invalid_grant", "the refresh token was issued to another client")
        wanted = form.get("scope")
        if wanted is not None and not set(wanted.split()) <= set(grant.scope.split()):
            raise OAuthError("invalid_scope", "scope exceeds what was granted")
        del self._refresh_grants[token]  # spent: the answer carries its successor
        return grant

    def _redeem(self, form: dict[str, str]) -> Grant:
        if form.get("grant_type") != "authorization_code":
            raise OAuthError("unsupported_grant_type",
                             "only authorization_code and refresh_token are supported")
        if form.get("client_id") != self.client_id:
            raise OAuthError("invalid_client", "unknown client_id", status=401)
        grant = self._grants.pop(form.get("code", ""), None)  # one use, even if refused
        if grant is None or grant.expires < time.time():
            raise OAuthError("invalid_grant", "the code is unknown, used or expired")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorization's")
        if s256(form.get("code_verifier", "")) != grant.challenge:
            raise OAuthError("invalid_grant", "the PKCE code_verifier does not match")
        return grant

    # --- token revocation (RFC 7009) -----------------------------------------------------

    async def _revoke(self, request: web.Request) -> web.Response:
        if not self.offers_revocation:
            raise web.HTTPNotFound()
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.revocation_requests.append(form)
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        try:
            self._revoke_token(form)
        except OAuthError as e:
            body = {"error": e.error, "error_description": e.description}
            return web.json_response(body, status=e.status, headers=headers)
        return web.Response(status=200, headers=headers)

    def _revoke_token(self, form: dict[str, str]) -> None:
        if self.revocation_refusal is not None:
            raise self.revocation_refusal
        if form.get("client_id") != self.client_id:
            raise OAuthError("invalid_client", "unknown client_id", status=401)
        token = form.get("token")
        if not token:
            raise OAuthError("invalid_request", "the token parameter is required")
        # token_type_hint only speeds up a real server's lookup: refresh tokens are all
        # this one keeps (its access tokens are not tracked, so "unknown": 200 as well).
        grant = self._refresh_grants.get(token)
        if grant is None:
            return  # unknown, expired or already revoked: 200 all the same (RFC 7009 2.2)
        if grant.client_id != form["client_id"]:
            raise OAuthError("invalid_grant", "the token was issued to another client")
        del self._refresh_grants[token]

"""A fake OpenID Connect provider at the HTTP boundary, as Keycloak or Dex serve it.

An aiohttp HTTPS server on 127.0.0.1 (certificate from ``tests.attach.pki``; trust it with
``ca_file``) serving what a relying party fetches:

- ``/.well-known/openid-configuration``: the discovery document (``issuer``, ``jwks_uri``,
  signing algorithms...); ``discovery_issuer`` overrides its ``issuer`` to test a mismatch;
- ``/keys``: the JWKS, public JWKs of real keys (``kid``, ``alg``, ``use: sig``).

``token(...)`` mints an ID token signed with the current key (or any alg/kid a test wants,
including HS256 and ``none``), ``rotate()`` makes a new key current, ``stop()``/``start()``
make the IdP unreachable and back on the same port, and ``discovery_fetches`` /
``jwks_fetches`` count what relying parties fetched.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.attach.pki import CA

HMAC_SECRET = b"a-client-secret-that-is-long-enough!!"


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
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/keys", self._jwks)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self._tls)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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
        return {
            "issuer": self.discovery_issuer or self.issuer,
            "authorization_endpoint": f"{self.issuer}/auth",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/keys",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted({k.alg for k in self.keys}),
        }

    async def _discovery(self, _: web.Request) -> web.Response:
        self.discovery_fetches += 1
        return web.json_response(self.discovery())

    async def _jwks(self, _: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return web.json_response({"keys": [k.jwk() for k in self.keys]})

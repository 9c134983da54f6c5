"""OpenID Connect ID tokens as bearer tokens, verified as kube-apiserver's ``--oidc-*`` do.

The gateway runs no login flow: users get an ID token from the IdP with its own tooling
(kubelogin, ``oidc-login``, ...) and send it as the bearer token. The verifier only needs
the IdP's public keys:

- the discovery document ``<issuerURL>/.well-known/openid-configuration`` is fetched at
  the first JWT-shaped token (not at start, so a gateway starts while the IdP is down);
  its ``issuer`` must equal issuerURL exactly (OIDC Discovery 4.3), its ``jwks_uri`` gives
  the keys. Both are cached;
- a token whose ``kid`` is not in the cached key set makes it fetch the JWKS again (the
  IdP rotated its keys), at most once per ``refresh_interval`` (30 s), so a flood of
  made-up ``kid``\\s cannot turn the gateway into a load generator against the IdP;
  concurrent requests share one fetch. A failed fetch is retried on a later request,
  rate-limited the same way; meanwhile tokens that need it get ``IdPUnavailable`` (a 503:
  the token may well be fine);
- tokens are verified with PyJWT: asymmetric algorithms only (an HS* token would be
  signed with a secret the IdP shares with clients, ``none`` with nothing), signature,
  ``iss``, ``aud`` containing the client ID, ``exp`` required and not passed (no leeway,
  as go-oidc), ``nbf``/``iat`` with a 30 s leeway for clock skew;
- verified tokens are remembered by their sha256 until their ``exp`` (bounded), so a UI
  polling with the same token costs a dict lookup, not a signature check. A key removed
  from the JWKS therefore does not revoke tokens already seen: revoke by expiry, as
  Kubernetes does.

Everything here is about *who* the token names (``Identity``); what they may do is
``services/api/auth.py``'s business.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
from jwt.algorithms import get_default_algorithms

log = logging.getLogger(__name__)

ACCEPTED_ALGORITHMS: frozenset[str] = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
KEY_TYPES: dict[str, str] = {
    **{a: "RSA" for a in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    **{a: "EC" for a in ("ES256", "ES384", "ES512")},
    "EdDSA": "OKP",
}
EC_CURVES: dict[str, str] = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
LEEWAY = 30.0  # seconds of clock skew allowed for nbf and iat
DEFAULT_REFRESH_INTERVAL = 30.0
DEFAULT_FETCH_TIMEOUT = 10.0
MAX_DOCUMENT = 1 << 20  # discovery documents and key sets are a few KiB
TOKEN_CACHE_SIZE = 4096
DISCOVERY_PATH = "/.well-known/openid-configuration"

_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class InvalidToken(Exception):
    """The token is not acceptable (a 401); the message says why, for the user to fix."""


class IdPUnavailable(Exception):
    """The IdP's keys could not be had, so the token could not be judged (a 503)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _FetchError(Exception):
    pass


@dataclass(frozen=True)
class Identity:
    """Who a verified token names; ``expires`` is its ``exp`` (epoch seconds)."""

    username: str
    groups: tuple[str, ...]
    expires: float


@dataclass(frozen=True)
class _Key:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None  # the JWK's declared algorithm, if any: then only that one
    key: Any  # a cryptography public key

    def fits(self, alg: str) -> bool:
        if self.alg is not None and self.alg != alg:
            return False
        if KEY_TYPES.get(alg) != self.kty:
            return False
        return alg not in EC_CURVES or self.crv == EC_CURVES[alg]


def looks_like_jwt(token: str) -> bool:
    """Three base64url segments: worth handing to the verifier (static tokens never are)."""
    return _JWT_SHAPE.fullmatch(token) is not None


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """Trust for the IdP's TLS: only ``ca_file`` when given, else the system's CAs.

    Raises OSError when the file cannot be read, ssl.SSLError when it holds no certificate.
    """
    return ssl.create_default_context(cafile=ca_file)


def parse_jwks(doc: Any) -> list[_Key]:
    """The signing keys of a JWKS document; keys this verifier cannot use are skipped."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise _FetchError("the JWKS is not an object with a 'keys' list")
    algorithms = get_default_algorithms()
    keys: list[_Key] = []
    for jwk in doc["keys"]:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        kty, alg = jwk.get("kty"), jwk.get("alg")
        kid = jwk.get("kid") if isinstance(jwk.get("kid"), str) else None
        if kty not in ("RSA", "EC", "OKP") or (alg is not None and alg not in ACCEPTED_ALGORITHMS):
            continue
        if "d" in jwk:
            log.warning("skipping JWK %r: it holds a private key", kid)
            continue
        family = {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}[kty]
        try:
            key = algorithms[family].from_jwk(jwk)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as e:
            log.warning("skipping JWK %r: %s", kid, e)
            continue
        keys.append(_Key(kid=kid, kty=kty, crv=jwk.get("crv"), alg=alg, key=key))
    return keys


def _describe(e: BaseException, timeout: float) -> str:
    if isinstance(e, aiohttp.ClientConnectorCertificateError):
        return f"TLS: {e.certificate_error}"
    if isinstance(e, aiohttp.ClientConnectorError):
        return e.os_error.strerror or str(e.os_error)
    if isinstance(e, TimeoutError):
        return f"no answer within {timeout:g}s"
    return str(e) or type(e).__name__


class OIDCVerifier:
    """Verifies ID tokens of one issuer for one client ID; see the module docstring."""

    def __init__(
        self,
        issuer_url: str,
        client_id: str,
        *,
        username_claim: str = "preferred_username",
        groups_claim: str = "groups",
        ssl_ctx: ssl.SSLContext | None = None,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        timeout: float = DEFAULT_FETCH_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        cache_size: int = TOKEN_CACHE_SIZE,
    ) -> None:
        self.issuer_url = issuer_url
        self.client_id = client_id
        self.username_claim = username_claim
        self.groups_claim = groups_claim
        self.refresh_interval = refresh_interval
        self.timeout = timeout
        self._ssl = ssl_ctx or ssl_context(None)
        self._clock = clock
        self._cache_size = cache_size
        self._jwks_uri: str | None = None
        self._keys: list[_Key] | None = None
        self._generation = 0  # bumped by every successful key fetch
        self._last_attempt: float | None = None
        self._last_error: str | None = None
        self._lock = asyncio.Lock()
        self._verified: OrderedDict[str, Identity] = OrderedDict()

    @property
    def discovery_url(self) -> str:
        return self.issuer_url.rstrip("/") + DISCOVERY_PATH

    async def verify(self, token: str) -> Identity:
        """The identity a valid token names; InvalidToken or IdPUnavailable otherwise."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        known = self._verified.get(digest)
        if known is not None:
            if known.expires > time.time():
                return known
            del self._verified[digest]
        alg, kid = self._precheck(token)
        keys = await self._keys_for(kid, alg)
        claims = self._decode(token, keys, alg)
        identity = self._identity(claims)
        self._verified[digest] = identity
        while len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return identity

    def _precheck(self, token: str) -> tuple[str, Any]:
        """Refuse what no key could make acceptable before any network round trip; the
        token's algorithm and key id."""
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as e:
            raise InvalidToken(f"malformed token: {e}") from None
        alg = header.get("alg")
        if alg not in ACCEPTED_ALGORITHMS:
            shown = alg[:20] if isinstance(alg, str) else repr(alg)[:20]
            raise InvalidToken(f"token algorithm {shown} is not accepted") from None
        iss = claims.get("iss")
        if iss != self.issuer_url:
            shown = repr(iss)[:100] if iss is not None else "missing"
            raise InvalidToken(f"token issuer {shown} is not {self.issuer_url!r}")
        return alg, header.get("kid")

    async def _keys_for(self, kid: Any, alg: str) -> list[_Key]:
        keys = self._pick(kid, alg)
        if keys:
            return keys
        if kid is not None and any(k.kid == kid for k in self._keys or ()):
            raise InvalidToken(f"token algorithm {alg} does not fit its key {str(kid)[:40]!r}")
        await self._refresh(self._generation)
        keys = self._pick(kid, alg)
        if not keys:
            raise InvalidToken("token signed by an unknown key")
        return keys

    def _pick(self, kid: Any, alg: str) -> list[_Key]:
        if self._keys is None:
            return []
        if kid is None:
            return [k for k in self._keys if k.fits(alg)]
        return [k for k in self._keys if k.kid == kid and k.fits(alg)]

    async def _refresh(self, seen: int) -> None:
        """Fetch the keys again unless someone just did; raise IdPUnavailable on failure."""
        async with self._lock:
            if self._generation != seen:
                return  # refreshed while this request waited for the lock
            now = self._clock()
            if self._last_attempt is not None:
                wait = self._last_attempt + self.refresh_interval - now
                if wait > 0:
                    if self._last_error is not None:
                        raise IdPUnavailable(self._last_error, wait)
                    return
            self._last_attempt = now
            try:
                if self._jwks_uri is None:
                    self._jwks_uri = self._check_discovery(
                        await self._fetch(self.discovery_url, "discovery document")
                    )
                keys = parse_jwks(await self._fetch(self._jwks_uri, "JWKS"))
            except _FetchError as e:
                self._jwks_uri = None  # rediscover too: the keys may have moved
                self._last_error = str(e)
                log.warning("OIDC: %s", e)
                raise IdPUnavailable(str(e), self.refresh_interval) from None
            self._keys = keys
            self._last_error = None
            self._generation += 1
            log.info("OIDC: %d signing keys from %s", len(keys), self._jwks_uri)

    def _check_discovery(self, doc: Any) -> str:
        if not isinstance(doc, dict):
            raise _FetchError(f"the discovery document {self.discovery_url} is not an object")
        if doc.get("issuer") != self.issuer_url:
            raise _FetchError(
                f"the discovery document's issuer {doc.get('issuer')!r} is not "
                f"{self.issuer_url!r} (issuerURL must match it exactly)"
            )
        uri = doc.get("jwks_uri")
        if not isinstance(uri, str) or not uri.startswith("https://"):
            raise _FetchError("the discovery document has no https jwks_uri")
        return uri

    async def _fetch(self, url: str, what: str) -> Any:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with (
                aiohttp.ClientSession(
                    timeout=timeout, connector=aiohttp.TCPConnector(ssl=self._ssl)
                ) as session,
                session.get(
                    url, headers={"Accept": "application/json"}, allow_redirects=False
                ) as r,
            ):
                if r.status != 200:
                    raise _FetchError(f"the {what} {url} answered HTTP {r.status}")
                if (r.content_length or 0) > MAX_DOCUMENT:
                    raise _FetchError(f"the {what} {url} is larger than {MAX_DOCUMENT} bytes")
                body = bytearray()
                async for chunk in r.content.iter_chunked(1 << 16):
                    body += chunk
                    if len(body) > MAX_DOCUMENT:
                        raise _FetchError(
                            f"the {what} {url} is larger than {MAX_DOCUMENT} bytes"
                        )
            return json.loads(body)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise _FetchError(f"cannot fetch the {what} {url}: {_describe(e, self.timeout)}") \
                from None
        except ValueError:
            raise _FetchError(f"the {what} {url} is not JSON") from None

    def _decode(self, token: str, keys: list[_Key], alg: str) -> dict[str, Any]:
        for key in keys:
            try:
                claims = jwt.decode(
                    token, key=key.key, algorithms=[alg], audience=self.client_id,
                    issuer=self.issuer_url,
                    options={"require": ["exp"], "verify_nbf": False, "verify_iat": False},
                )
            except jwt.InvalidSignatureError:
                continue  # a key without kid matched by type only: try the next
            except jwt.ExpiredSignatureError:
                raise InvalidToken("token expired") from None
            except jwt.InvalidAudienceError:
                raise InvalidToken(f"token audience does not include {self.client_id!r}") \
                    from None
            except jwt.MissingRequiredClaimError as e:
                if e.claim == "aud":
                    raise InvalidToken(
                        f"token audience does not include {self.client_id!r}"
                    ) from None
                raise InvalidToken(f"token has no {e.claim!r} claim") from None
            except jwt.InvalidIssuerError:
                raise InvalidToken(f"token issuer is not {self.issuer_url!r}") from None
            except (jwt.PyJWTError, ValueError, TypeError) as e:
                raise InvalidToken(f"invalid token: {e}") from None
            self._check_times(claims)
            return claims
        raise InvalidToken("token signature is invalid")

    @staticmethod
    def _check_times(claims: dict[str, Any]) -> None:
        now = time.time()
        for claim in ("nbf", "iat"):
            value = claims.get(claim)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidToken(f"token claim {claim!r} must be a number")
            if value > now + LEEWAY:
                raise InvalidToken(f"token not valid yet ({claim} is in the future)")

    def _identity(self, claims: dict[str, Any]) -> Identity:
        username = claims.get(self.username_claim)
        if not isinstance(username, str) or not username:
            raise InvalidToken(f"token claim {self.username_claim!r} must be a non-empty string")
        if self.username_claim == "email" and claims.get("email_verified", True) is not True:
            raise InvalidToken("token email is not verified")  # as kube-apiserver
        groups = claims.get(self.groups_claim)
        if groups is None:
            groups = []
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise InvalidToken(f"token claim {self.groups_claim!r} must be a list of strings")
        return Identity(username=username, groups=tuple(groups), expires=float(claims["exp"]))

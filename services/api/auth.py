"""Bearer-token authentication and per-namespace role bindings.

Users live in a YAML tokens file; only a sha256 of each token is kept there::

    users:
      - name: alice
        tokenSha256: 9f86d0...        # sha256 hex of the bearer token
        operator: false               # global role: everything, cluster-scoped kinds too
        roles: {team-a: writer, team-b: reader}

Roles per namespace (project): ``reader`` may get/list/watch, ``writer`` may also
create/update/patch/delete, ``admin`` may also write credential kinds (those that declare
``SECRET_FIELDS``). Everyone authenticated may read cluster-scoped kinds (regions and
releases); only operators write them or a status subresource.

The gateway takes up edits of the file while it runs (``Authenticator.reload_if_changed``):
a Secret-mounted file the operator changes applies within a minute, no restart.

OpenID Connect ID tokens are accepted too when the file has an ``oidc:`` section, as
kube-apiserver's ``--oidc-*`` flags do (sign-in is ``ccctl login``, the console's single
sign-on or the IdP's own tooling; verification is ``services/api/oidc.py``)::

    oidc:
      issuerURL: https://keycloak.example/realms/ccloud   # https only; = the tokens' iss
      clientID: ccloud                  # the tokens' aud must contain it
      usernameClaim: preferred_username # default
      usernamePrefix: "oidc:"           # default; "-" for none. Keeps OIDC names apart
                                        # from the static users above
      groupsClaim: groups               # default; if present, a list of strings
      scopes: openid profile email      # default; what the console's single sign-on asks
                                        # for (space-separated, must include openid)
      caFile: /etc/ccloud/idp-ca.pem    # optional (relative: to this file); else the
                                        # system's CAs
      groups:                           # group -> bindings, as users have them
        platform-admins: {operator: true}
        team-a-devs: {roles: {team-a: writer}}
      users:                            # optional: username (without prefix) -> bindings
        alice: {roles: {team-b: admin}}

An OIDC user is named prefix + username and gets the union of the bindings of its groups
and its username: operator if any says so, and per namespace the highest role. A token
that matches no binding is a user with no roles (it reads cluster-scoped kinds only).
Static tokens are looked up first, so they keep working whatever the IdP does.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from prometheus_client import Counter

from services.api.oidc import (
    DEFAULT_REFRESH_INTERVAL,
    Identity,
    OIDCVerifier,
    looks_like_jwt,
    ssl_context,
)
from shared.models import Resource

log = logging.getLogger(__name__)

Verb = Literal["get", "list", "watch", "create", "update", "patch", "delete"]
Role = Literal["reader", "writer", "admin"]

READ_VERBS: frozenset[str] = frozenset({"get", "list", "watch"})
WRITE_VERBS: frozenset[str] = frozenset({"create", "update", "patch", "delete"})
ROLE_RANK: dict[str, int] = {"reader": 1, "writer": 2, "admin": 3}
BOOTSTRAP_USER = "admin"
BOOTSTRAP_TOKEN_FILE = "admin-token"
DEFAULT_SCOPES = "openid profile email"
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 3.3 scope-token


class AuthConfigError(ValueError):
    """The tokens file is malformed."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def is_credential_kind(cls: type[Resource]) -> bool:
    return bool(cls.SECRET_FIELDS)


@dataclass(frozen=True)
class User:
    name: str
    operator: bool = False
    roles: Mapping[str, str] = field(default_factory=dict)

    def role_in(self, namespace: str) -> int:
        return ROLE_RANK.get(self.roles.get(namespace, ""), 0)

    def readable_namespaces(self) -> set[str]:
        return {ns for ns, r in self.roles.items() if ROLE_RANK.get(r, 0) >= 1}

    def can(
        self,
        verb: str,
        cls: type[Resource],
        namespace: str | None,
        *,
        subresource: str = "",
    ) -> bool:
        """Whether this user may ``verb`` objects of ``cls`` in ``namespace``.

        ``namespace`` None on a namespaced kind means "across all namespaces": only reads
        are allowed there, and callers must filter items with ``can`` per namespace.
        """
        if self.operator:
            return True
        write = verb in WRITE_VERBS
        if subresource == "status" and write:
            return False
        if not cls.NAMESPACED:
            return not write
        if namespace is None:
            return not write and bool(self.readable_namespaces())
        rank = self.role_in(namespace)
        if not write:
            return rank >= ROLE_RANK["reader"]
        needed = "admin" if is_credential_kind(cls) else "writer"
        return rank >= ROLE_RANK[needed]


@dataclass(frozen=True)
class Binding:
    """What a group or user of the ``oidc:`` section is granted."""

    operator: bool = False
    roles: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OIDCUsers:
    """Maps verified OIDC identities to users through the tokens file's bindings."""

    verifier: OIDCVerifier
    prefix: str = "oidc:"
    groups: Mapping[str, Binding] = field(default_factory=dict)
    users: Mapping[str, Binding] = field(default_factory=dict)
    scopes: str = DEFAULT_SCOPES  # only for the console's login: the gateway checks no scope

    def user_for(self, identity: Identity) -> User:
        bindings = [self.groups[g] for g in identity.groups if g in self.groups]
        if identity.username in self.users:
            bindings.append(self.users[identity.username])
        roles: dict[str, str] = {}
        for binding in bindings:
            for ns, role in binding.roles.items():
                if ROLE_RANK[role] > ROLE_RANK.get(roles.get(ns, ""), 0):
                    roles[ns] = role
        return User(
            name=self.prefix + identity.username,
            operator=any(b.operator for b in bindings),
            roles=roles,
        )


RELOAD_CHECK_SECONDS = 1.0
RELOADS = Counter("ccloud_auth_reloads_total",
                  "Edits of the tokens file taken up (ok) or refused, keeping the previous "
                  "users (failed)", ["result"])


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file does: a Secret volume swaps a symlink (new inode), an
    editor rewrites in place (mtime, size)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@dataclass
class _Watch:
    path: Path
    stamp: tuple[int, int, int] | None
    clock: Callable[[], float]
    checked: float
    refresh_interval: float
    oidc_clock: Callable[[], float]


class Authenticator:
    """Maps bearer tokens to users: static tokens by their sha256, then OIDC ID tokens.

    Static tokens are a dict lookup on the digest, not a scan: timing can at most reveal how
    much of a stored *digest* a guess's digest matches, which does not help find a token
    (sha256 is preimage resistant), and the cost stays flat however many users there are.
    """

    def __init__(
        self, users: Iterable[tuple[str, User]] = (), *, oidc: OIDCUsers | None = None
    ) -> None:
        self._by_hash: dict[str, User] = dict(users)
        self._oidc = oidc
        self._watch: _Watch | None = None

    def add(self, token_sha256: str, user: User) -> None:
        self._by_hash[token_sha256] = user

    @property
    def oidc(self) -> OIDCUsers | None:
        self.reload_if_changed()
        return self._oidc

    async def authenticate(self, token: str) -> User | None:
        """The token's user, or None for an unknown one.

        Raises ``oidc.InvalidToken`` (say why, 401) for a JWT that fails verification and
        ``oidc.IdPUnavailable`` (503) when the IdP's keys cannot be fetched to judge it.
        """
        self.reload_if_changed()
        user = self._by_hash.get(hash_token(token))
        if user is not None or self._oidc is None or not looks_like_jwt(token):
            return user
        return self._oidc.user_for(await self._oidc.verifier.verify(token))

    def reload_if_changed(self) -> None:
        """Take up an edited tokens file (a user added, a token revoked, a group bound),
        as kube-apiserver does its authentication configuration: no restart. Looked at
        most once per ``RELOAD_CHECK_SECONDS``; a file that does not load keeps the users
        it replaces (said in the log and ``ccloud_auth_reloads_total{result="failed"}``),
        so a typo never locks everyone out."""
        w = self._watch
        if w is None or (now := w.clock()) - w.checked < RELOAD_CHECK_SECONDS:
            return
        w.checked = now
        stamp = _stamp(w.path)
        if stamp == w.stamp:
            return
        w.stamp = stamp
        try:
            fresh = Authenticator.from_file(w.path, oidc_refresh_interval=w.refresh_interval,
                                            oidc_clock=w.oidc_clock)
        except AuthConfigError as e:
            RELOADS.labels("failed").inc()
            log.error("tokens file changed but does not load; the previous users stay: %s", e)
            return
        self._by_hash, self._oidc = fresh._by_hash, fresh._oidc
        RELOADS.labels("ok").inc()
        log.info("tokens file %s reloaded: %d users, OIDC %s", w.path, len(self._by_hash),
                 "on" if self._oidc else "off")

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        oidc_refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        oidc_clock: Callable[[], float] = time.monotonic,
        watch: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> Authenticator:
        """``watch``: take up later edits of the file (``reload_if_changed``)."""
        stamp = _stamp(Path(path))
        try:
            doc = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise AuthConfigError(f"cannot read tokens file {path}: {e}") from None
        auth = cls.from_dict(
            doc, source=str(path), base_dir=Path(path).parent,
            oidc_refresh_interval=oidc_refresh_interval, oidc_clock=oidc_clock,
        )
        if watch:
            auth._watch = _Watch(path=Path(path), stamp=stamp, clock=clock,
                                 checked=clock(), refresh_interval=oidc_refresh_interval,
                                 oidc_clock=oidc_clock)
        return auth

    @classmethod
    def from_dict(
        cls,
        doc: Mapping,
        *,
        source: str = "tokens",
        base_dir: Path | None = None,
        oidc_refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        oidc_clock: Callable[[], float] = time.monotonic,
    ) -> Authenticator:
        """Validate a tokens document; every mistake is an AuthConfigError naming its path.

        ``oidc_refresh_interval`` and ``oidc_clock`` rate-limit JWKS fetches (tests lower or
        drive them); a relative ``oidc.caFile`` is taken from ``base_dir``.
        """
        if not isinstance(doc, Mapping):
            raise AuthConfigError(f"{source}: 'users' must be a list")
        oidc = None
        if doc.get("oidc") is not None:
            oidc = _parse_oidc(
                doc["oidc"], f"{source}: oidc", base_dir=base_dir,
                refresh_interval=oidc_refresh_interval, clock=oidc_clock,
            )
        auth = cls(oidc=oidc)
        users = doc.get("users")
        if users is None and oidc is not None:
            users = []
        if not isinstance(users, list):
            raise AuthConfigError(f"{source}: 'users' must be a list")
        for i, entry in enumerate(users):
            where = f"{source}: users[{i}]"
            if not isinstance(entry, Mapping):
                raise AuthConfigError(f"{where} must be a mapping")
            name, digest = entry.get("name"), entry.get("tokenSha256")
            if not isinstance(name, str) or not name:
                raise AuthConfigError(f"{where}.name is required")
            if not isinstance(digest, str) or len(digest) != 64:
                raise AuthConfigError(f"{where}.tokenSha256 must be a sha256 hex digest")
            roles = _parse_roles(entry.get("roles"), f"{where}.roles")
            user = User(name=name, operator=bool(entry.get("operator")), roles=roles)
            auth.add(digest.lower(), user)
        return auth


OIDC_KEYS = ("issuerURL", "clientID", "usernameClaim", "usernamePrefix", "groupsClaim",
             "scopes", "caFile", "groups", "users")


def _parse_roles(roles: Any, where: str) -> dict[str, str]:
    roles = roles or {}
    if not isinstance(roles, Mapping):
        raise AuthConfigError(f"{where} must map namespace to role")
    for ns, role in roles.items():
        if role not in ROLE_RANK:
            raise AuthConfigError(f"{where}.{ns}: unknown role {role!r} (reader, writer, admin)")
    return {str(ns): role for ns, role in roles.items()}


def _parse_bindings(doc: Any, where: str) -> dict[str, Binding]:
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise AuthConfigError(f"{where} must map names to bindings")
    bindings: dict[str, Binding] = {}
    for name, entry in doc.items():
        at = f"{where}.{name}"
        if not isinstance(entry, Mapping):
            raise AuthConfigError(f"{at} must be a mapping with operator and/or roles")
        unknown = sorted(str(k) for k in entry if k not in ("operator", "roles"))
        if unknown:
            raise AuthConfigError(f"{at}: unknown key {unknown[0]!r} (operator, roles)")
        operator = entry.get("operator", False)
        if not isinstance(operator, bool):
            raise AuthConfigError(f"{at}.operator must be true or false")
        bindings[str(name)] = Binding(operator, _parse_roles(entry.get("roles"), f"{at}.roles"))
    return bindings


def _string(doc: Mapping, key: str, where: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str) or not value:
        raise AuthConfigError(f"{where}.{key} must be a non-empty string")
    return value


def _parse_scopes(doc: Mapping, where: str) -> str:
    """``scopes`` as the authorization request sends it; without ``openid`` an IdP would
    answer no ID token, so the console's login could never work."""
    value = doc.get("scopes", DEFAULT_SCOPES)
    scopes = value.split() if isinstance(value, str) else []
    if not scopes or not all(_SCOPE_TOKEN.fullmatch(s) for s in scopes):
        raise AuthConfigError(f'{where}.scopes must be space-separated scopes ("{DEFAULT_SCOPES}")')
    if "openid" not in scopes:
        raise AuthConfigError(f"{where}.scopes must include openid")
    return " ".join(scopes)


def _parse_oidc(
    doc: Any,
    where: str,
    *,
    base_dir: Path | None,
    refresh_interval: float,
    clock: Callable[[], float],
) -> OIDCUsers:
    if not isinstance(doc, Mapping):
        raise AuthConfigError(f"{where} must be a mapping")
    unknown = sorted(str(k) for k in doc if k not in OIDC_KEYS)
    if unknown:
        raise AuthConfigError(f"{where}: unknown key {unknown[0]!r} ({', '.join(OIDC_KEYS)})")
    issuer = doc.get("issuerURL")
    parts = urlsplit(issuer) if isinstance(issuer, str) else None
    if (
        parts is None or parts.scheme != "https" or not parts.hostname or parts.query
        or parts.fragment or parts.username
    ):
        raise AuthConfigError(f"{where}.issuerURL must be an https URL")
    client_id = _string(doc, "clientID", where)
    username_claim = _string(doc, "usernameClaim", where, "preferred_username")
    groups_claim = _string(doc, "groupsClaim", where, "groups")
    scopes = _parse_scopes(doc, where)
    prefix = doc.get("usernamePrefix", "oidc:")
    if not isinstance(prefix, str) or not prefix:
        raise AuthConfigError(f'{where}.usernamePrefix must be a non-empty string ("-" for none)')
    ctx: ssl.SSLContext | None = None
    if doc.get("caFile") is not None:
        ca = Path(_string(doc, "caFile", where))
        if base_dir is not None and not ca.is_absolute():
            ca = base_dir / ca
        try:
            ctx = ssl_context(str(ca))
        except ssl.SSLError:  # an OSError too: first
            raise AuthConfigError(f"{where}.caFile: {ca} holds no PEM certificate") from None
        except OSError as e:
            raise AuthConfigError(f"{where}.caFile: cannot read {ca}: {e.strerror or e}") \
                from None
    verifier = OIDCVerifier(
        issuer, client_id, username_claim=username_claim, groups_claim=groups_claim,
        ssl_ctx=ctx, refresh_interval=refresh_interval, clock=clock,
    )
    return OIDCUsers(
        verifier=verifier,
        prefix="" if prefix == "-" else prefix,
        groups=_parse_bindings(doc.get("groups"), f"{where}.groups"),
        users=_parse_bindings(doc.get("users"), f"{where}.users"),
        scopes=scopes,
    )


def user_entry(name: str, token: str, *, operator: bool = False, roles: Mapping | None = None):
    """A tokens-file entry for ``name`` (handy for tests and the local runner)."""
    entry: dict = {"name": name, "tokenSha256": hash_token(token)}
    if operator:
        entry["operator"] = True
    if roles:
        entry["roles"] = dict(roles)
    return entry


def ensure_bootstrap(data_dir: str | Path) -> tuple[Path, str | None]:
    """Create ``tokens.yaml`` with an operator ``admin`` on first start.

    Returns the tokens file path and the fresh token (None when the file already existed).
    The token is also written to ``<data_dir>/admin-token`` with mode 0600 so the local
    ``up`` command can print it once; the tokens file only keeps its hash.
    """
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    tokens = data / "tokens.yaml"
    if tokens.exists():
        return tokens, None
    token = new_token()
    secret_file = data / BOOTSTRAP_TOKEN_FILE
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(secret_file, 0o600)
    doc = {"users": [user_entry(BOOTSTRAP_USER, token, operator=True)]}
    fd = os.open(tokens, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    return tokens, token

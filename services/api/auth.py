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
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from shared.models import Resource

Verb = Literal["get", "list", "watch", "create", "update", "patch", "delete"]
Role = Literal["reader", "writer", "admin"]

READ_VERBS: frozenset[str] = frozenset({"get", "list", "watch"})
WRITE_VERBS: frozenset[str] = frozenset({"create", "update", "patch", "delete"})
ROLE_RANK: dict[str, int] = {"reader": 1, "writer": 2, "admin": 3}
BOOTSTRAP_USER = "admin"
BOOTSTRAP_TOKEN_FILE = "admin-token"


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


class Authenticator:
    """Maps bearer tokens to users by the sha256 of the token.

    A dict lookup on the digest, not a scan: timing can at most reveal how much of a
    stored *digest* a guess's digest matches, which does not help find a token (sha256 is
    preimage resistant), and the cost stays flat however many users there are.
    """

    def __init__(self, users: Iterable[tuple[str, User]] = ()) -> None:
        self._by_hash: dict[str, User] = dict(users)

    def add(self, token_sha256: str, user: User) -> None:
        self._by_hash[token_sha256] = user

    def authenticate(self, token: str) -> User | None:
        return self._by_hash.get(hash_token(token))

    @classmethod
    def from_file(cls, path: str | Path) -> Authenticator:
        try:
            doc = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise AuthConfigError(f"cannot read tokens file {path}: {e}") from None
        return cls.from_dict(doc, source=str(path))

    @classmethod
    def from_dict(cls, doc: Mapping, *, source: str = "tokens") -> Authenticator:
        auth = cls()
        users = doc.get("users") if isinstance(doc, Mapping) else None
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
            roles = entry.get("roles") or {}
            if not isinstance(roles, Mapping):
                raise AuthConfigError(f"{where}.roles must map namespace to role")
            for ns, role in roles.items():
                if role not in ROLE_RANK:
                    raise AuthConfigError(
                        f"{where}.roles.{ns}: unknown role {role!r} (reader, writer, admin)"
                    )
            user = User(name=name, operator=bool(entry.get("operator")), roles=dict(roles))
            auth.add(digest.lower(), user)
        return auth


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

"""NATS server configuration for a split management/regional deployment.

The management server is the leafnode *hub*: it accepts leafnode connections and runs
JetStream in the ``management`` domain. Each regional server is a *leaf*: it dials the hub
and runs JetStream in its own domain (the region's name), so its streams and KV buckets
live and keep working on the regional server while the link is down.

Both sides use the same subject and bucket names (``<prefix>.>``, ``$KV.<prefix>-objects``),
so the leaf connection must not carry them: a write on one side would otherwise land in
the other side's streams too. The leaf remote denies those subjects in both directions;
every KV bucket stays local too (KV reads across domains go through the JetStream API);
only JetStream API traffic (``$JS.<domain>.API.>``, mapped by the domains) and the flow of
stream sourcing cross it.

This module is the one source of that configuration: the tests' servers
(``hub_args``/``leaf_args``, ``extra_args`` for :class:`shared.natsserver.NatsServer`) and
the deployable ones (``deploy/generate.py`` writes the NATS chart's topology template and
compose's ``deploy/nats/*.conf`` from :func:`hub_conf`/:func:`leaf_conf` and their parts).
"""

from __future__ import annotations

from pathlib import Path

MANAGEMENT_DOMAIN = "management"
# The server's roles: one server for everything, management's hub, or a region's leaf.
ROLES = ("standalone", "hub", "leaf")
LEAFNODE_PORT = 7422  # the usual leafnode port, where deployments listen
LEAF_RECONNECT = "1s"


class Env(str):
    """A value nats-server reads from its environment when it loads the config (``$NAME``)."""


def value(v: str) -> str:
    """One config value: quoted (taken literally), or a bare ``$NAME`` for an :class:`Env`."""
    if isinstance(v, Env):
        return f"${v}"
    if any(c in v for c in '"\\\n'):
        raise ValueError(f"NATS config value {v!r} may not hold quotes, backslashes or newlines")
    return f'"{v}"'


def local_subjects(prefix: str) -> list[str]:
    """What the leaf remote never carries: both sides' own bus subjects and KV buckets."""
    return [f"{prefix}.>", "$KV.>"]


def jetstream_domain(domain: str) -> str:
    """The ``domain`` line of a server's ``jetstream`` block."""
    return f"domain: {value(domain)}"


def hub_leafnodes(listen: str) -> str:
    """The hub's ``leafnodes`` block: where regional servers dial in (``host:port``)."""
    return f"leafnodes {{ listen: {value(listen)} }}"


def leaf_leafnodes(hub_leaf_url: str, prefix: str) -> str:
    """A regional server's ``leafnodes`` block: the remote to the hub, local subjects denied."""
    deny = ", ".join(value(s) for s in local_subjects(prefix))
    return (
        "leafnodes {\n"
        f"  reconnect: {value(LEAF_RECONNECT)}\n"
        f"  remotes: [ {{ url: {value(hub_leaf_url)}, deny_imports: [{deny}], "
        f"deny_exports: [{deny}] }} ]\n"
        "}"
    )


def check_region(region: str) -> None:
    """A region's domain must differ from management's (the JetStream API maps by domain)."""
    if not isinstance(region, Env) and region == MANAGEMENT_DOMAIN:
        raise ValueError(f"a region may not be named {MANAGEMENT_DOMAIN!r}: that is "
                         "management's JetStream domain")


def hub_conf(*, leaf_listen: str, domain: str = MANAGEMENT_DOMAIN) -> str:
    """The management server's config: JetStream domain ``domain``, leafnodes on
    ``leaf_listen``."""
    return f"jetstream {{ {jetstream_domain(domain)} }}\n{hub_leafnodes(leaf_listen)}\n"


def leaf_conf(*, hub_leaf_url: str, region: str, prefix: str) -> str:
    """A regional server's config: domain ``region``, dialling ``hub_leaf_url``."""
    check_region(region)
    return (f"jetstream {{ {jetstream_domain(region)} }}\n"
            f"{leaf_leafnodes(hub_leaf_url, prefix)}\n")


def _write(path: Path, text: str) -> list[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return ["-c", str(path)]


def hub_args(
    conf: Path, *, leaf_port: int, domain: str = MANAGEMENT_DOMAIN
) -> list[str]:
    """The management server: JetStream domain ``domain``, leafnodes on 127.0.0.1."""
    return _write(conf, hub_conf(leaf_listen=f"127.0.0.1:{leaf_port}", domain=domain))


def leaf_args(
    conf: Path,
    *,
    hub_leaf_url: str,
    region: str,
    prefix: str,
) -> list[str]:
    """A regional server in domain ``region`` dialling ``hub_leaf_url`` (nats-leaf://...)."""
    return _write(conf, leaf_conf(hub_leaf_url=hub_leaf_url, region=region, prefix=prefix))

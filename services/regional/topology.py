"""NATS server configuration for a split management/regional deployment.

The management server is the leafnode *hub*: it accepts leafnode connections on a loopback
port and runs JetStream in the ``management`` domain. Each regional server is a *leaf*: it
dials the hub and runs JetStream in its own domain (the region's name), so its streams and
KV buckets live and keep working on the regional server while the link is down.

Both sides use the same subject and bucket names (``<prefix>.>``, ``$KV.<prefix>-objects``),
so the leaf connection must not carry them: a write on one side would otherwise land in
the other side's streams too. The leaf remote denies those subjects in both directions;
every KV bucket stays local too (KV reads across domains go through the JetStream API);
only JetStream API traffic (``$JS.<domain>.API.>``, mapped by the domains) and the flow of
stream sourcing cross it.

These helpers return ``extra_args`` for :class:`shared.natsserver.NatsServer`: a config
file carrying what has no command-line flag (leafnodes, the JetStream domain).
"""

from __future__ import annotations

from pathlib import Path

MANAGEMENT_DOMAIN = "management"
LEAF_RECONNECT_SECONDS = 1


def _write(path: Path, text: str) -> list[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return ["-c", str(path)]


def hub_args(
    conf: Path, *, leaf_port: int, domain: str = MANAGEMENT_DOMAIN
) -> list[str]:
    """The management server: JetStream domain ``domain``, leafnodes on 127.0.0.1."""
    return _write(
        conf,
        f'jetstream {{ domain: "{domain}" }}\n'
        f'leafnodes {{ listen: "127.0.0.1:{leaf_port}" }}\n',
    )


def leaf_args(
    conf: Path,
    *,
    hub_leaf_url: str,
    region: str,
    prefix: str,
) -> list[str]:
    """A regional server in domain ``region`` dialling ``hub_leaf_url`` (nats-leaf://...)."""
    local = [f"{prefix}.>", "$KV.>"]
    deny = ", ".join(f'"{s}"' for s in local)
    return _write(
        conf,
        f'jetstream {{ domain: "{region}" }}\n'
        "leafnodes {\n"
        f"  reconnect: {LEAF_RECONNECT_SECONDS}\n"
        f'  remotes: [ {{ url: "{hub_leaf_url}", deny_imports: [{deny}], '
        f"deny_exports: [{deny}] }} ]\n"
        "}\n",
    )

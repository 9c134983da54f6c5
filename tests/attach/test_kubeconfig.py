"""Kubeconfig validation: clear reasons that name what is wrong, never a credential."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from services.attach.kubeconfig import (
    ENDPOINT_MISMATCH,
    INVALID_ENDPOINT,
    INVALID_KUBECONFIG,
    AccessError,
    parse,
)

ENDPOINT = "https://mke.example.test:6443"
SECRET = "s3cr3t-token-value-9d8c7b6a"
CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()


def config(
    user: dict[str, Any] | None = None, cluster: dict[str, Any] | None = None, **top: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "mke", "cluster": cluster if cluster is not None else {
            "server": ENDPOINT, "certificate-authority-data": CA}}],
        "users": [{"name": "admin", "user": user if user is not None else {"token": SECRET}}],
        "contexts": [{"name": "mke", "context": {"cluster": "mke", "user": "admin"}}],
        "current-context": "mke",
    }
    doc.update(top)
    return doc


def text(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc)


def refused(kubeconfig: str, endpoint: str = ENDPOINT) -> AccessError:
    with pytest.raises(AccessError) as info:
        parse(kubeconfig, endpoint)
    assert not any(SECRET[i:i + 8] in info.value.message for i in range(len(SECRET) - 7))
    return info.value


def test_a_valid_kubeconfig_is_accepted() -> None:
    access = parse(text(config()), ENDPOINT)
    assert access.server == "https://mke.example.test:6443"
    assert access.context == "mke"
    assert SECRET not in repr(access)


def test_default_ports_and_trailing_slashes_still_match() -> None:
    access = parse(text(config(cluster={"server": "https://MKE.example.test/"})),
                   "https://mke.example.test:443")
    assert access.server == "https://mke.example.test:443"


def test_without_a_server_the_endpoint_is_used() -> None:
    access = parse(text(config(cluster={"certificate-authority-data": CA})), ENDPOINT)
    assert access.config["clusters"][0]["cluster"]["server"] == "https://mke.example.test:6443"


def test_empty() -> None:
    e = refused("  \n")
    assert (e.reason, e.message) == (INVALID_KUBECONFIG, "spec.kubeconfig is empty")


def test_broken_yaml_names_the_position_without_quoting_the_line() -> None:
    broken = text(config()).replace(f"token: {SECRET}", f"token: {SECRET}: [oops")
    e = refused(broken)
    assert e.reason == INVALID_KUBECONFIG
    assert "not valid YAML" in e.message and "line " in e.message and "column " in e.message


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (["not", "a", "mapping"], "must be a kubeconfig mapping"),
        (config(**{"current-context": ""}), "no current-context"),
        (config(**{"current-context": "other"}), "contexts has no entry named 'other'"),
        (config(users=[]), "users has no entry named 'admin'"),
        (config(cluster={"server": ENDPOINT, "certificate-authority": "/etc/ca.pem"}),
         "refers to a file (certificate-authority); embed it as certificate-authority-data"),
        (config(cluster={"server": ENDPOINT, "certificate-authority-data": "%%%"}),
         "certificate-authority-data is not valid base64"),
        (config(user={"exec": {"command": "rm", "args": ["-rf", SECRET]}}),
         "exec credential plugin, which is not allowed"),
        (config(user={"auth-provider": {"name": "oidc", "config": {"id-token": SECRET}}}),
         "auth-provider"),
        (config(user={"tokenFile": "/var/run/token"}), "embed it as token"),
        (config(user={"client-certificate-data": CA}), "has a client certificate but no "
         "client-key-data"),
        (config(user={"client-certificate-data": CA, "client-key-data": SECRET + "!"}),
         "client-key-data is not valid base64"),
        (config(user={"username": "admin"}), "needs both username and password"),
        (config(cluster={"server": "ftp://mke.example.test"}), "must be an http(s) URL"),
    ],
)
def test_invalid_kubeconfigs_are_named(doc: Any, expected: str) -> None:
    e = refused(text(doc))
    assert e.reason == INVALID_KUBECONFIG
    assert expected in e.message


def test_a_kubeconfig_for_another_cluster_is_refused() -> None:
    other = config(cluster={"server": "https://other.example.test:6443"})
    e = refused(text(other))
    assert e.reason == ENDPOINT_MISMATCH
    assert "https://other.example.test:6443" in e.message and ENDPOINT in e.message


@pytest.mark.parametrize("endpoint", ["", "mke.example.test:6443", "https://u:p@mke:6443"])
def test_bad_endpoints(endpoint: str) -> None:
    e = refused(text(config()), endpoint)
    assert e.reason == INVALID_ENDPOINT
    assert "spec.endpoint" in e.message
    assert "u:p" not in e.message


def test_a_secret_echoed_in_a_message_is_scrubbed() -> None:
    # A context name that happens to equal a credential must not bring it into a message.
    doc = config(**{"current-context": SECRET})
    e = refused(text(doc))
    assert "[redacted]" in e.message

"""The agents' endpoint over HTTPS: an agent trusting the region's CA gets its details; one
that does not refuses the endpoint (a token never goes to a server it cannot verify); a
missing certificate is a settings error, not a service that starts on plain HTTP."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import msgspec
import pytest
from nats.aio.client import Client as NATS

from services.lcm.agent import __main__ as agent
from services.lcm.agent.client import AgentClient, EndpointError
from services.lcm.config import LCMSettings
from services.lcm.endpoint import Endpoint
from services.lcm.tokens import machine_token
from shared.models import LCMMachine, LCMMachineSpec, ObjectMeta, StateItem
from tests.attach.pki import CA, cert_dir
from tests.harness import system
from tests.lcm.conftest import NS, REGION, SECRET

NAME, UID = "tls-0", "machine-uid-tls-0"


async def test_agents_reach_an_https_endpoint_they_trust(nc: NATS, prefix: str,
                                                         tmp_path: Path) -> None:
    ca = CA("region-ca")
    settings = LCMSettings(host="127.0.0.1", port=0,
                           tls_cert_dir=str(cert_dir(ca, tmp_path / "tls")))
    async with system(nc, prefix) as h:
        ep = Endpoint(h.store, SECRET, settings, bus=h.bus, region=REGION)
        await ep.start()
        try:
            assert ep.url.startswith("https://")
            await h.store.create(LCMMachine(
                metadata=ObjectMeta(name=NAME, namespace=NS),
                spec=LCMMachineSpec(cluster="c", machine=NAME, region=REGION, release="r1",
                                    machine_uid=UID, state_items=[StateItem(
                                        name="one", phase="prepare", version="1",
                                        runner="file", params={"path": "x", "content": "y"})]),
            ))
            ca_file = tmp_path / "ca.pem"
            ca_file.write_bytes(ca.pem)
            with mock.patch.dict(os.environ, {agent.TOKEN_ENV: machine_token(SECRET, UID),
                                              agent.CA_ENV: str(ca_file)}):
                args = agent.parse(["--endpoint", ep.url, "--machine", f"{NS}/{NAME}",
                                    "--root", str(tmp_path / "node")])
            trusted = AgentClient(args.endpoint, NS, NAME, args.token, ssl=args.ssl)
            await trusted.start()
            try:
                details = await trusted.details()
                assert details is not None and [i.item.name for i in details.items] == ["one"]
            finally:
                await trusted.close()

            stranger = AgentClient(ep.url, NS, NAME, args.token)  # the system's CAs only
            await stranger.start()
            try:
                with pytest.raises(EndpointError, match="Certificate"):
                    await stranger.details()
            finally:
                await stranger.close()
        finally:
            await ep.stop()


def test_a_missing_certificate_is_a_settings_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(msgspec.ValidationError, match=f"tls_cert_dir: no {tmp_path}/tls.crt"):
        msgspec.convert({"tls_cert_dir": str(tmp_path)}, LCMSettings)
    with pytest.raises(SystemExit):
        agent.parse(["--endpoint", "https://lcm:8430", "--machine", "a/b", "--token", "t",
                     "--root", "/tmp/n", "--ca-file", str(tmp_path / "none.pem")])
    assert f"--ca-file {tmp_path / 'none.pem'}: " in capsys.readouterr().err

"""A vendor's OpenPGP signing key, made with the real gpg in a throwaway home directory,
so the mirror's signature checks run against real signatures (tests only)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# A key made and used at this time, valid for a day: expired ever since.
EXPIRED_AT = "20200101T000000"


class Signer:
    """``expired``: the key was made, and signs, on 2020-01-01 and expired a day later."""

    def __init__(self, uid: str = "Test Vendor <vendor@example.test>", *,
                 expired: bool = False) -> None:
        if shutil.which("gpg") is None or shutil.which("gpgv") is None:
            pytest.skip("gpg/gpgv not installed (scripts/test-deps installs them)")
        self.home = Path(tempfile.mkdtemp(prefix="ccloud-signer-"))
        self.home.chmod(0o700)
        self._time = ["--faked-system-time", EXPIRED_AT] if expired else []
        self._gpg("--quick-gen-key", uid, "ed25519", "sign", "1d" if expired else "never")
        self.public_key = self._gpg("--armor", "--export").decode()

    def _gpg(self, *args: str, data: bytes = b"") -> bytes:
        env = {**os.environ, "GNUPGHOME": str(self.home), "LC_ALL": "C"}
        done = subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", *self._time,
                               "--passphrase", "", *args], input=data, env=env,
                              capture_output=True, check=False, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"gpg {args[0]}: {done.stderr.decode(errors='replace')}")
        return done.stdout

    def clearsign(self, text: bytes) -> bytes:
        return self._gpg("--clearsign", "--digest-algo", "SHA512", data=text)

    def detach_sign(self, data: bytes) -> bytes:
        return self._gpg("--armor", "--detach-sign", data=data)

    def close(self) -> None:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], check=False, capture_output=True,
                       env={**os.environ, "GNUPGHOME": str(self.home)})
        shutil.rmtree(self.home, ignore_errors=True)

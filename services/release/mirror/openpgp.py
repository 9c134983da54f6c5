"""Verify a Debian upstream's signed Release against the vendor keys a mirror trusts.

As apt does, through ``gpgv`` (Debian's ``gpgv`` package, which apt itself depends on):
it checks a signature against a keyring and nothing else - no trust database, no key
servers, no home directory state - which is what an air-gapped mirror wants. The keys
come ASCII-armored, as apt's ``Signed-By`` takes them inline; they are dearmored
(``shared.armor``) into a throwaway keyring file, since gpgv reads binary keyrings.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from services.release.mirror.errors import BadSignature
from shared.armor import dearmor_keys

GPGV_TIMEOUT = 30.0


async def verify(keys: str, signature: bytes, signed: bytes | None = None, *,
                 what: str) -> None:
    """Check ``signature`` - clearsigned (``signed`` None) or detached over ``signed`` -
    against the armored ``keys``; BadSignature with gpgv's reason if it does not verify."""
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise BadSignature(f"{what}: cannot verify the signature: gpgv is not installed "
                           "(Debian package gpgv)")
    with tempfile.TemporaryDirectory(prefix="ccloud-gpgv-") as tmp:
        d = Path(tmp)
        try:
            (d / "keys.gpg").write_bytes(dearmor_keys(keys))
        except ValueError as e:
            raise BadSignature(f"{what}: spec signedBy: {e}") from None
        (d / "sig").write_bytes(signature)
        args = [gpgv, "--keyring", str(d / "keys.gpg"), str(d / "sig")]
        if signed is not None:
            (d / "data").write_bytes(signed)
            args.append(str(d / "data"))
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            env={"LC_ALL": "C", "GNUPGHOME": tmp},
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), GPGV_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise BadSignature(f"{what}: gpgv did not answer within {GPGV_TIMEOUT:.0f}s") from None
    if proc.returncode != 0:
        lines = [ln.removeprefix("gpgv:").strip()
                 for ln in err.decode(errors="replace").splitlines() if ln.strip()]
        reason = "; ".join(lines[-2:]) or f"gpgv exited with {proc.returncode}"
        raise BadSignature(f"{what}: signature does not verify against spec signedBy: {reason}")

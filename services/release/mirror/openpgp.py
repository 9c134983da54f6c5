"""Verify a Debian upstream's signed Release against the vendor keys a mirror trusts.

As apt does, through ``gpgv`` (Debian's ``gpgv`` package, which apt itself depends on):
it checks a signature against a keyring and nothing else - no trust database, no key
servers, no home directory state - which is what an air-gapped mirror wants. Like apt, it
reads gpgv's status lines too: a good signature by an expired or revoked key fails. The
keys come ASCII-armored, as apt's ``Signed-By`` takes them inline; they are dearmored
(``shared.armor``) into a throwaway keyring file, since gpgv reads binary keyrings.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from services.release.mirror.errors import BadSignature
from shared.armor import dearmor_keys

GPGV_TIMEOUT = 30.0
# gpgv exits 0 for these (a good signature by a key that is no longer good); apt refuses
# them, and so does the mirror: only GOODSIG with none of them passes.
REFUSED = {
    "EXPKEYSIG": "signed with an expired key",
    "REVKEYSIG": "signed with a revoked key",
    "EXPSIG": "the signature has expired",
}


def verify(keys: str, signature: bytes, signed: bytes | None = None, *, what: str,
           keys_from: str = "spec signedBy") -> None:
    """Check ``signature`` - clearsigned (``signed`` None) or detached over ``signed`` -
    against the armored ``keys`` (named ``keys_from`` in errors); BadSignature with gpgv's
    reason if it does not verify. Blocking (a subprocess): async callers use a thread."""
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise BadSignature(f"{what}: cannot verify the signature: gpgv is not installed "
                           "(Debian package gpgv)")
    with tempfile.TemporaryDirectory(prefix="ccloud-gpgv-") as tmp:
        d = Path(tmp)
        try:
            (d / "keys.gpg").write_bytes(dearmor_keys(keys))
        except ValueError as e:
            raise BadSignature(f"{what}: {keys_from}: {e}") from None
        (d / "sig").write_bytes(signature)
        args = [gpgv, "--status-fd", "1", "--keyring", str(d / "keys.gpg"), str(d / "sig")]
        if signed is not None:
            (d / "data").write_bytes(signed)
            args.append(str(d / "data"))
        try:
            done = subprocess.run(args, capture_output=True, timeout=GPGV_TIMEOUT, check=False,
                                  env={"LC_ALL": "C", "GNUPGHOME": tmp})
        except subprocess.TimeoutExpired:
            raise BadSignature(f"{what}: gpgv did not answer within {GPGV_TIMEOUT:.0f}s") from None
    status = {ln.split()[1] for ln in done.stdout.decode(errors="replace").splitlines()
              if ln.startswith("[GNUPG:] ") and len(ln.split()) > 1}
    refused = [why for token, why in REFUSED.items() if token in status]
    if done.returncode == 0 and "GOODSIG" in status and not refused:
        return
    lines = [ln.removeprefix("gpgv:").strip()
             for ln in done.stderr.decode(errors="replace").splitlines() if ln.strip()]
    reason = "; ".join(refused or lines[-2:]) or f"gpgv exited with {done.returncode}"
    raise BadSignature(f"{what}: signature does not verify against {keys_from}: {reason}")

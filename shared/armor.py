"""ASCII armor of OpenPGP public keys (RFC 4880, section 6), as apt's inline Signed-By
holds them: parsed here so a spec with malformed keys is refused when written, and the
mirror can hand gpgv the binary keyring it reads."""

from __future__ import annotations

import base64
import binascii

PUBLIC_KEY_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
PUBLIC_KEY_END = "-----END PGP PUBLIC KEY BLOCK-----"


def dearmor_keys(armored: str) -> bytes:
    """The OpenPGP packets of every public key block in ``armored`` (ValueError if none)."""
    packets = b""
    lines = armored.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        if lines[i].strip() != PUBLIC_KEY_BEGIN:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == PUBLIC_KEY_END),
                   None)
        if end is None:
            raise ValueError("an OpenPGP public key block is not closed")
        blank = next((j for j in range(i + 1, end) if not lines[j].strip()), None)
        if blank is None:  # RFC 4880 6.2: armor headers end with an empty line
            raise ValueError("an OpenPGP public key block lacks the empty line after its "
                             "header lines")
        body = "".join(ln.strip() for ln in lines[blank + 1 : end] if not ln.startswith("="))
        try:
            packets += base64.b64decode(body, validate=True)
        except binascii.Error:
            raise ValueError("an OpenPGP public key block is not valid base64") from None
        i = end + 1
    if not packets:
        raise ValueError(f"no OpenPGP public key block ({PUBLIC_KEY_BEGIN})")
    return packets

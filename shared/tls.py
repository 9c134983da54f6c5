"""A TLS listener's certificate from a directory, loaded again when its files change.

``tls.crt``/``tls.key`` as a mounted kubernetes.io/tls Secret has them. Used by the
gateway's admission webhook and LCM's agent endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

log = logging.getLogger(__name__)

CERT_FILE, KEY_FILE = "tls.crt", "tls.key"
RELOAD_INTERVAL = 10.0


class ServingCert:
    """The listener's certificate, loaded again when its files change, as
    controller-runtime's certwatcher does: a rotated Secret (cert-manager renews before
    expiry, kubelet swaps the mounted files) reaches new handshakes without a restart. A
    pair that does not load (a key not yet swapped with its certificate) is tried again at
    the next look; until then the previous one is served."""

    def __init__(self, cert_dir: Path, *, interval: float = RELOAD_INTERVAL) -> None:
        self.cert, self.key = cert_dir / CERT_FILE, cert_dir / KEY_FILE
        for f in (self.cert, self.key):
            if not f.is_file():
                raise FileNotFoundError(f"TLS certificate: no {f}")
        self.interval = interval
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(self.cert, self.key)
        self._loaded = self._stamp()

    def _stamp(self) -> tuple[int, ...]:
        a, b = self.cert.stat(), self.key.stat()  # stat follows kubelet's ..data symlink
        return (a.st_ino, a.st_mtime_ns, a.st_size, b.st_ino, b.st_mtime_ns, b.st_size)

    def reload_if_changed(self) -> bool:
        """Load the files if they changed since the last load; whether it did."""
        try:
            stamp = self._stamp()
            if stamp == self._loaded:
                return False
            # A scratch context first: a pair that fails half-way must not touch the one
            # serving (OpenSSL would keep the new certificate with the old key).
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                self.cert, self.key)
            self.context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as e:
            log.warning("TLS certificate in %s not loaded, serving the previous one: %s",
                        self.cert.parent, e)
            return False
        self._loaded = stamp
        log.info("TLS certificate reloaded from %s", self.cert.parent)
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.reload_if_changed()

"""A pyVmomi session built from a VsphereCredential, task waiting, and fault mapping.

Sessions expire on the vCenter side (``NotAuthenticated``); ``Session.call`` logs in again
once and retries before reporting a credentials error. The re-login happens on the *same*
SOAP stub (as pyVmomi's ``SessionOrientedStub`` does): a managed object is a moref plus
that stub, morefs outlive sessions, and the stub carries the session cookie, so every
object an operation already holds (VM, task, template, folder) works again on the retry.
Reconnecting with a new stub instead would leave those objects bound to the dead session.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from services.providers.errors import (
    CredentialsError,
    InvalidSpecError,
    NotFoundError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    QuotaError,
    scrub,
)
from shared.models import VsphereCredential

T = TypeVar("T")
PROVIDER = "vsphere"


def _fault_text(err: Any) -> str:
    return str(getattr(err, "msg", "") or getattr(err, "faultMessage", "") or type(err).__name__)


def translate(err: BaseException, *, what: str, secrets: tuple[str, ...] = ()) -> ProviderError:
    if isinstance(err, ProviderError):
        return err
    text = scrub(_fault_text(err), secrets)
    fault = type(err).__name__.rpartition(".")[2]
    match err:
        case vim.fault.InvalidLogin() | vim.fault.NoPermission() | vim.fault.NotAuthenticated():
            return CredentialsError(f"{what}: vCenter refused the login", code=fault,
                                    provider=PROVIDER)
        case vim.fault.InsufficientResourcesFault() | vim.fault.NoDiskSpace():
            return QuotaError(f"{what}: {text}", code=fault, provider=PROVIDER)
        case vmodl.fault.ManagedObjectNotFound() | vim.fault.NotFound():
            return NotFoundError(f"{what}: {text}", code=fault, provider=PROVIDER)
        case vmodl.fault.InvalidArgument() | vim.fault.InvalidState() | vim.fault.DuplicateName():
            return InvalidSpecError(f"{what}: {text}", code=fault, provider=PROVIDER)
        case socket.timeout() | TimeoutError():
            return ProviderTimeout(f"{what}: vCenter did not answer in time", provider=PROVIDER)
        case ConnectionError() | OSError() | http.client.HTTPException():
            return ProviderUnavailable(f"{what}: vCenter unreachable", provider=PROVIDER)
    return ProviderError(f"{what}: {text}", code=fault, provider=PROVIDER)


class Session:
    """One logged-in service instance per credential; blocking, use from a thread."""

    def __init__(self, cred: VsphereCredential, *, timeout: float) -> None:
        self.cred = cred
        self.timeout = timeout
        self._si: Any = None
        self._content: Any = None
        self._lock = threading.Lock()
        self._secrets = (cred.spec.password,)
        self.logins = 0  # successful logins so far; a re-login is done once per expiry

    def _probe(self) -> None:
        """Bounded reachability check: SmartConnect's version discovery has no timeout."""
        s = self.cred.spec
        url = f"{s.protocol}://{s.server}:{s.port}/sdk/vimServiceVersions.xml"
        ctx = ssl._create_unverified_context() if s.insecure else None  # noqa: S323
        try:
            with urllib.request.urlopen(url, timeout=self.timeout, context=ctx) as rsp:
                rsp.read(1)
        except urllib.error.HTTPError:
            return  # answering: SmartConnect reports what is wrong
        except urllib.error.URLError as e:
            raise e.reason if isinstance(e.reason, OSError) else e from None

    def _connect(self) -> Any:
        s = self.cred.spec
        self._probe()
        return SmartConnect(
            host=s.server,
            port=s.port,
            user=s.username,
            pwd=s.password,
            protocol=s.protocol,
            disableSslCertValidation=s.insecure,
            httpConnectionTimeout=max(int(self.timeout), 1),
        )

    @property
    def content(self) -> Any:
        with self._lock:
            if self._si is None:
                self._si = self.guard("login", self._connect)
                self._content = self._si.RetrieveContent()
                self.logins += 1
            return self._content

    def _relogin(self, seen: int) -> None:
        """Log in again on the same stub, unless another thread did since ``seen``."""
        with self._lock:
            if self._si is None or self.logins != seen:
                return
            s = self.cred.spec
            self.guard("login", lambda: self._content.sessionManager.Login(s.username, s.password))
            self.logins += 1

    def guard(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except Exception as e:  # translated: no pyVmomi fault leaves the adapter
            raise translate(e, what=what, secrets=self._secrets) from None

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run fn; on an expired session log in again once and retry it.

        fn may use managed objects got earlier: they share the stub the re-login renews.
        """
        seen = self.logins
        try:
            return fn()
        except vim.fault.NotAuthenticated:
            self._relogin(seen)
            return self.guard(what, fn)
        except Exception as e:
            raise translate(e, what=what, secrets=self._secrets) from None

    def wait(self, task: Any, what: str, *, timeout: float | None = None) -> Any:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            info = self.call(what, lambda: task.info)
            if info.state == vim.TaskInfo.State.success:
                return info.result
            if info.state == vim.TaskInfo.State.error:
                raise translate(info.error, what=what, secrets=self._secrets)
            if time.monotonic() > deadline:
                raise ProviderTimeout(f"{what}: task still {info.state}", provider=PROVIDER)
            time.sleep(0.2)

    def close(self) -> None:
        with self._lock:
            si, self._si, self._content = self._si, None, None
        if si is not None:
            try:
                Disconnect(si)
            except Exception:  # best effort on shutdown
                pass

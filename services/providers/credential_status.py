"""Whether a cloud credential works, shown on the credential itself.

A user who writes an ``OpenStackCredential`` or ``VsphereCredential`` learns within
seconds whether the cloud accepts it (``Valid`` and ``Ready`` conditions), before a
Cluster names it and its Machines fail one by one with ``InvalidCredentials``. Each check
logs in afresh (a Keystone token, a vCenter session) with an adapter of its own, so a
password rotated or revoked at the cloud shows up at the next recheck even while the
machines' cached sessions still work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from services.providers.errors import ProviderError
from services.providers.steps import Backoff, mark_failed
from shared.models import Resource
from shared.runtime import Controller, Request, Result, status_writer
from shared.runtime import conditions as cond
from shared.service import Runtime
from shared.store import Store

C = TypeVar("C", bound=Resource)

VALID = "Valid"
REASON_AUTHENTICATED = "Authenticated"
# A working credential is checked again this often; one the cloud refused (a person must
# act, at the cloud or in the spec) less eagerly than one it could not reach.
RECHECK_VALID = 1800.0
RECHECK_REFUSED = 300.0


class CredentialCheck(Protocol):
    async def check_credentials(self) -> None:
        """Log in once; raise a ProviderError when the cloud refuses or cannot be reached."""
        ...

    async def close(self) -> None: ...


class CredentialReconciler(Generic[C]):
    """One credential kind of one provider service's region."""

    def __init__(
        self,
        store: Store,
        kind: type[C],
        check: Callable[[C], CredentialCheck],
        *,
        region: str | None,
        backoff: Backoff | None = None,
        recheck_valid: float = RECHECK_VALID,
        recheck_refused: float = RECHECK_REFUSED,
    ) -> None:
        self.store = store
        self.kind = kind
        self.check = check
        self.region = region
        self.backoff = backoff or Backoff(initial=5.0, cap=RECHECK_REFUSED)
        self.recheck_valid = recheck_valid
        self.recheck_refused = recheck_refused

    async def reconcile(self, req: Request) -> Result | None:
        cred = await self.store.get(self.kind, req.name, req.namespace)
        if cred.deleting or (self.region is not None and cred.region() != self.region):
            return None
        key = f"{req.namespace}/{req.name}"
        adapter = self.check(cred)
        try:
            await adapter.check_credentials()
        except ProviderError as e:
            failure: ProviderError | None = e
        else:
            failure = None
        finally:
            await adapter.close()
        async with status_writer(self.store, cred) as c:
            st = c.status
            if failure is None:
                cond.mark_true(st, VALID, REASON_AUTHENTICATED)
            else:
                mark_failed(st, failure, VALID)
            cond.summarize(st, [VALID])
            st.observed_generation = c.metadata.generation
        if failure is None:
            self.backoff.reset(key)
            return Result(requeue_after=self.recheck_valid)
        if failure.transient:
            return Result(requeue_after=self.backoff.next(key, failure))
        return Result(requeue_after=self.recheck_refused)


def credential_controller(
    rt: Runtime, provider: str, kind: type[C], check: Callable[[C], CredentialCheck]
) -> Controller:
    """The leader's controller of ``kind`` in this provider service's region."""
    return Controller(
        name=f"provider-{provider}-credential",
        kind=kind,
        reconciler=CredentialReconciler(rt.store, kind, check, region=rt.settings.region),
        store=rt.store,
        bus=rt.bus,
        region=rt.settings.region,
        workers=2,
    )

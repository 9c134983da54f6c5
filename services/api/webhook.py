"""Validating admission webhook: the gateway's checks for writes that never pass it.

With the Kubernetes store, a write made straight to the Kubernetes API (kubectl, a GitOps
tool) skips the gateway. kube-apiserver sends each such write of the kinds in ``RULES`` as
an ``admission.k8s.io/v1`` AdmissionReview to this listener (HTTPS on its own port, with
the certificate from a directory, as controller-runtime's webhook server does), and the
answer is the gateway's own: the same ``Admission`` and ``DeleteGuards``, the same code and
message. The chart registers it (``deploy/charts/ccloud-lib/templates/_webhook.tpl``) with
rules generated from ``RULES``.

A review this listener cannot read is a 400 (kube-apiserver then applies the webhook's
failure policy); a review it cannot judge because the store is unavailable is a 503 (the
same). Everything else is a 200 whose ``response.allowed`` says what was decided.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import msgspec
from aiohttp import web
from prometheus_client import Counter

from services.api.admission import Admission
from services.api.deletion import DeleteGuards
from services.api.errors import ApiError, status_body
from shared.models import (
    GROUP,
    BareMetalHost,
    BareMetalHostCredential,
    Cluster,
    ClusterRelease,
    GracefulRebootRequest,
    Machine,
    MachineHealthCheck,
    MachinePool,
    OpenStackCredential,
    Resource,
    ValidationError,
    VsphereCredential,
    convert,
)
from shared.models.registry import BY_KIND
from shared.store import Store, StoreError
from shared.store.kube import clean
from shared.tasks import cancel_all
from shared.tls import ServingCert

log = logging.getLogger(__name__)

PATH = "/validate"
API_VERSION = "admission.k8s.io/v1"

# What kube-apiserver sends here: the writes Admission judges and the deletes DeleteGuards
# judges. Generated into the chart's rules; a kind left out is simply not judged.
RULES: tuple[tuple[tuple[str, ...], tuple[type[Resource], ...]], ...] = (
    (("CREATE", "UPDATE"), (Cluster, Machine, MachineHealthCheck, MachinePool,
                            GracefulRebootRequest)),
    (("DELETE",), (Machine, OpenStackCredential, VsphereCredential, BareMetalHost,
                   BareMetalHostCredential, ClusterRelease)),
)

REVIEWS = Counter(
    "ccloud_api_webhook_reviews_total",
    "Admission reviews answered for writes made straight to the Kubernetes API",
    ["kind", "operation", "allowed"],
)


class GroupVersionKind(msgspec.Struct, frozen=True):
    kind: str
    group: str = ""
    version: str = ""


class AdmissionRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    uid: str
    kind: GroupVersionKind
    operation: Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
    name: str = ""
    namespace: str | None = None
    sub_resource: str = ""
    object: dict[str, Any] | None = None
    old_object: dict[str, Any] | None = None
    dry_run: bool = False


class AdmissionReview(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    api_version: str
    kind: str
    request: AdmissionRequest | None = None


_decoder = msgspec.json.Decoder(AdmissionReview)


def rules(group: str = GROUP) -> list[dict[str, Any]]:
    """``RULES`` as a ValidatingWebhookConfiguration's rules (the chart's are made here)."""
    return [{"apiGroups": [group], "apiVersions": ["*"], "operations": list(ops),
             "resources": sorted(k.PLURAL for k in kinds), "scope": "*"}
            for ops, kinds in RULES]


def _judged(operation: str, cls: type[Resource]) -> bool:
    return any(operation in ops and cls in kinds for ops, kinds in RULES)


class Webhook:
    """``POST /validate``: one AdmissionReview in, one out."""

    def __init__(self, store: Store) -> None:
        self.admit = Admission(store)
        self.guard_delete = DeleteGuards(store)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.add_routes([web.post(PATH, self.handle)])
        return app

    async def handle(self, request: web.Request) -> web.Response:
        try:
            review = _decoder.decode(await request.read())
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            return _bad_review(f"not an AdmissionReview: {e}")
        if review.api_version != API_VERSION or review.kind != "AdmissionReview":
            return _bad_review(f"expected {API_VERSION} AdmissionReview, got "
                               f"{review.api_version} {review.kind}")
        if review.request is None:
            return _bad_review("the AdmissionReview carries no request")
        req = review.request
        try:
            refusal = await self._judge(req)
        except StoreError as e:
            log.warning("cannot judge %s of %s %s: %s", req.operation, req.kind.kind, req.name, e)
            return web.Response(status=503, text=f"cannot judge the write: {e}")
        if refusal is not None:
            log.info("refused %s of %s %s/%s: %s", req.operation, req.kind.kind,
                     req.namespace or "", req.name, refusal.message)
        REVIEWS.labels(req.kind.kind, req.operation, str(refusal is None).lower()).inc()
        response: dict[str, Any] = {"uid": req.uid, "allowed": refusal is None}
        if refusal is not None:
            response["status"] = status_body(refusal.code, refusal.message,
                                             reason=refusal.reason, details=refusal.details)
        return web.json_response(
            {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response})

    async def _judge(self, req: AdmissionRequest) -> ApiError | None:
        cls = BY_KIND.get(req.kind.kind)
        if cls is None or req.kind.group != GROUP or req.sub_resource \
                or not _judged(req.operation, cls):
            return None  # not a write these checks are about (a rule wider than RULES)
        try:
            if req.operation == "DELETE":
                await self.guard_delete(cls, req.name, req.namespace)
            else:
                obj = _decode(cls, req.object)
                old = _decode(cls, req.old_object) if req.operation == "UPDATE" else None
                await self.admit(obj, old)
        except ApiError as e:
            return e
        return None


def _decode(cls: type[Resource], raw: dict[str, Any] | None) -> Resource:
    if raw is None:
        raise ApiError(400, f"the review of a {cls.KIND} write carries no object")
    try:
        return convert(cls, clean(raw))
    except ValidationError as e:
        raise ApiError.from_validation(e, kind=cls.KIND) from None


def _bad_review(message: str) -> web.Response:
    return web.Response(status=400, text=message)


class Listener:
    """The running webhook listener and its certificate watch."""

    def __init__(self, runner: web.AppRunner, watch: asyncio.Task[None]) -> None:
        self.runner = runner
        self._watch = watch

    @property
    def port(self) -> int:
        return int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        await cancel_all([self._watch])
        await self.runner.cleanup()


async def serve(store: Store, host: str, port: int, cert: ServingCert) -> Listener:
    """Start the listener; the caller stops it."""
    runner = web.AppRunner(Webhook(store).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=cert.context)
    await site.start()
    log.info("admission webhook listening on https://%s:%d%s", host, port, PATH)
    return Listener(runner, asyncio.create_task(cert.watch(), name="webhook-cert-watch"))

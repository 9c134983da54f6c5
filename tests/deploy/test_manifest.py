"""deploy/services.yaml against the code, and the generated files against the list."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shared.models import BY_KIND
from shared.models.kinds import ALL_KINDS
from shared.models.registry import BY_PLURAL
from tests.deploy import code

sys.path.insert(0, str(code.ROOT / "deploy"))
import generate  # noqa: E402

MANIFEST = generate.load()
SERVICES = list(MANIFEST.services.values())
ALL_MODULES = [s.module for s in SERVICES] + list(MANIFEST.agents.values())


def landed(module: str) -> bool:
    try:
        return importlib.util.find_spec(f"{module}.__main__") is not None
    except ModuleNotFoundError:
        return False


def require_landed(module: str) -> None:
    if not landed(module):
        pytest.skip(f"{module} has no __main__ yet (service not landed)")


def test_generated_files_are_current() -> None:
    assert generate.stale(MANIFEST) == [], "run: python deploy/generate.py"


def test_generator_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    compose = code.ROOT / "docker-compose.yml"
    saved = compose.read_text()
    try:
        compose.write_text(saved + "# drift\n")
        out = subprocess.run([sys.executable, "deploy/generate.py", "--check"], cwd=code.ROOT,
                             capture_output=True, text=True, timeout=60)
    finally:
        compose.write_text(saved)
    assert out.returncode == 1
    assert "stale: docker-compose.yml" in out.stderr


def test_bad_manifest_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "services.yaml"
    bad.write_text("group: g\nimage: i\nservices:\n  x:\n    module: services.x\n"
                   "    sets: [nowhere]\n    health_port: 1\n")
    with pytest.raises(generate.ManifestError, match="services.x: sets"):
        generate.load(bad)
    bad.write_text("group: g\nimage: i\nservices:\n  x:\n    module: services.x\n"
                   "    sets: [management]\n    health_port: 1\n"
                   "    secrets_from: {CCLOUD_LCM_SECRET: lcm/agent-secret}\n")
    with pytest.raises(generate.ManifestError, match="services.x.secrets_from.CCLOUD_LCM_SECRET: "
                                                     "'lcm/agent-secret' is no generated secret"):
        generate.load(bad)


@pytest.mark.parametrize("module", ALL_MODULES)
def test_module_is_runnable(module: str) -> None:
    """Every listed module has a ``__main__`` with what its runner calls: ``build`` for
    shared.service, ``targets`` for the provider runner, or a CLI ``main``."""
    require_landed(module)
    entry = importlib.import_module(f"{module}.__main__")
    for hook in ("build", "targets"):
        fn = getattr(entry, hook, None)
        if fn is not None:
            assert inspect.iscoroutinefunction(fn), f"{module}.__main__.{hook} must be async"
            return
    assert callable(getattr(entry, "main", None)), f"{module}.__main__ has no build or main"
    out = subprocess.run([sys.executable, "-m", module, "--help"], cwd=code.ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_rbac_names_real_resources(svc: generate.Service) -> None:
    verbs = {"get", "list", "watch", "create", "update", "patch", "delete"}
    for resource, granted in svc.rbac.items():
        plural, _, sub = resource.partition("/")
        assert plural in BY_PLURAL, f"{svc.name}: no kind with plural {plural!r}"
        assert sub in ("", "status"), f"{svc.name}: unknown subresource {resource!r}"
        assert set(granted) <= verbs, f"{svc.name}: {resource}: {set(granted) - verbs}"
        if sub:
            assert "get" in svc.rbac.get(plural, ()), f"{svc.name}: {resource} without read"


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_rbac_covers_the_kinds_the_code_uses(svc: generate.Service) -> None:
    require_landed(svc.module)
    readable = {r for r, v in svc.rbac.items() if {"get", "list", "watch"} <= set(v)}
    missing = {
        name for name in code.kinds_used(svc.module)
        if code.KIND_CLASSES[name].PLURAL not in readable
    }
    assert not missing, f"{svc.name} uses {sorted(missing)} but may not read them"


def test_gateway_and_bridge_see_every_kind() -> None:
    every = set(BY_PLURAL)
    for name in ("api", "bridge"):
        assert set(MANIFEST.services[name].rbac) >= every, name
    bridge = MANIFEST.services["bridge"].rbac
    assert {p for p, v in bridge.items() if "delete" in v} == {p for p, _ in OWNER_GC}


WRITE_VERBS = {"create", "update", "patch", "delete"}
# Writes whose kind the code picks at run time, and where that set comes from in the code:
# the owner GC deletes objects of any kind (whatever their owners are); the release service
# creates the kinds of its release data files. The gateway writes whatever its users may
# write (its grants are that policy), and the region link works on the embedded store only
# (no RBAC at all).
OWNER_GC = {(cls.PLURAL, "delete") for cls in ALL_KINDS}
RELEASE_DATA = {(BY_KIND[doc["kind"]].PLURAL, "create")
                for p in (code.ROOT / "services" / "release" / "data").glob("*.yaml")
                for doc in yaml.safe_load_all(p.read_text()) if doc}
CREDENTIAL_STATUS = "services/providers/credential_status.py"
GENERIC_SITES = {"services.api": ("services/api/resources.py",),
                 "services.bridge": ("services/bridge/gc.py",),
                 "services.release": ("services/release/defaults.py",),
                 "services.regional": ("services/regional/link.py",),
                 # every provider carries the module; those without credentials never run it
                 **{f"services.providers.{p}": (CREDENTIAL_STATUS,)
                    for p in ("openstack", "vsphere", "baremetal", "simulated")}}


def granted_writes(svc: generate.Service) -> set[tuple[str, str]]:
    return {(res, verb) for res, verbs in svc.rbac.items() for verb in verbs
            if verb in WRITE_VERBS}


def credential_status_writes(module: str) -> set[tuple[str, str]]:
    """The status writes of CREDENTIAL_STATUS in a provider: of the credential kinds its
    ``__main__`` passes to ``credential_controller``."""
    main = code.package_dir(module) / "__main__.py"
    if not module.startswith("services.providers.") or not main.exists():
        return set()
    return {(code.KIND_CLASSES[a.id].PLURAL + "/status", "update")
            for node in ast.walk(ast.parse(main.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == (
                "credential_controller")
            for a in node.args if isinstance(a, ast.Name) and a.id in code.KIND_CLASSES}


def performed_writes(svc: generate.Service) -> set[tuple[str, str]]:
    """The service's store writes as grants: the scan's, plus its run-time-kind writes."""
    writes, unresolved = code.store_writes(svc.module)
    sites = GENERIC_SITES.get(svc.module, ())
    stray = [u for u in unresolved if not u.startswith(tuple(f"{s}:" for s in sites))]
    assert not stray, f"{svc.name}: writes of a kind the scan cannot tell: {stray}"
    if svc.module == "services.api":
        return writes | granted_writes(svc)
    return writes | credential_status_writes(svc.module) | {
        "services.bridge": OWNER_GC, "services.release": RELEASE_DATA}.get(svc.module, set())


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_rbac_grants_no_write_the_code_does_not_make(svc: generate.Service) -> None:
    """Least privilege, the other way round: every create/update/delete granted (and every
    status update) is a store write the service's code makes, found by scanning it."""
    require_landed(svc.module)
    unused = granted_writes(svc) - performed_writes(svc)
    assert not unused, f"{svc.name} may {sorted(unused)} but its code never does"


@pytest.mark.parametrize("svc", [s for s in SERVICES if s.rbac], ids=lambda s: s.name)
def test_rbac_grants_every_write_the_code_makes(svc: generate.Service) -> None:
    require_landed(svc.module)
    missing = performed_writes(svc) - granted_writes(svc)
    assert not missing, f"{svc.name} writes {sorted(missing)} without a grant"


def test_write_scan_sees_each_form_of_write() -> None:
    """The scan behind the two checks above finds writes in all the forms the code uses."""
    lcm, _ = code.store_writes("services.lcm")
    assert {("lcmclusters", "create"),          # store.create(lcc), lcc = LCMCluster(...)
            ("updategroups", "delete"),         # self._delete(UpdateGroup, ...)
            ("regions/status", "update"),       # status_writer(self.store, region)
            ("lcmmachines/status", "update"),   # update_status(self.store, lm, mutate)
            ("clusters", "update")} <= lcm      # ensure_finalizer(self.store, cluster, ...)
    bm, _ = code.store_writes("services.providers.baremetal")
    assert ("baremetalhosts", "update") in bm   # host = free[0]; store.update(host)
    attach, unresolved = code.store_writes("services.attach")
    assert attach == {("attachedclusters", "update"), ("attachedclusters/status", "update")}
    assert unresolved == []
    _, generic = code.store_writes("services.bridge")
    assert generic and all(g.startswith("services/bridge/gc.py:") for g in generic)


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_service_env_is_read_by_the_code(svc: generate.Service) -> None:
    require_landed(svc.module)
    unknown = set(svc.env) - code.env_read(svc.module)
    assert not unknown, f"{svc.name}: the code reads none of {sorted(unknown)}"


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_loopback_defaults_are_set_by_the_manifest(svc: generate.Service) -> None:
    """A default of 127.0.0.1 names the container itself: the deployment must set it (the
    shared settings come from the charts' and compose's common env, checked there)."""
    require_landed(svc.module)
    own = code.loopback_settings(svc.module) - code.SHARED_ENV
    missing = sorted(own - set(svc.env))
    assert not missing, f"{svc.name}: services.yaml leaves {missing} at a loopback default"
    assert not [k for k in own if code.is_loopback(svc.env[k])], svc.name


def test_loopback_scan_finds_the_settings_and_flags_a_deployment_missing_them() -> None:
    """The scan reads defaults from the code in all its forms, so the checks above bite."""
    assert {"CCLOUD_NATS_URL", "CCLOUD_HEALTH_HOST", "CCLOUD_API_HOST"} <= code.loopback_settings(
        "services.api")  # shared Settings and an argparse env default
    assert "CCLOUD_LCM_MIRROR_URL" in code.loopback_settings("services.lcm")  # settings Struct
    assert "CCLOUD_BAREMETAL_IMAGE_BASE_URL" in code.loopback_settings(
        "services.providers.baremetal")  # os.environ.get with a named constant
    assert "CCLOUD_PREFIX" not in code.loopback_settings("services.api")
    assert code.unset_loopback("services.api", {
        "CCLOUD_NATS_URL": "nats://nats:4222", "CCLOUD_HEALTH_HOST": "0.0.0.0",
        "CCLOUD_API_HOST": "localhost"}) == ["CCLOUD_API_HOST"]
    assert "CCLOUD_BAREMETAL_IMAGE_BASE_URL" in code.unset_loopback(
        "services.providers.baremetal", {})


@pytest.mark.parametrize(("value", "loopback"), [
    ("127.0.0.1", True), ("nats://127.0.0.1:4222", True), ("http://localhost:8480/x", True),
    ("http://[::1]:80", True), ("127.3.4.5", True), ("0.0.0.0", False), ("", False),
    ("nats://nats:4222", False), ("http://cc-release:8480", False), ("10.0.0.1", False),
])
def test_is_loopback(value: str, loopback: bool) -> None:
    assert code.is_loopback(value) is loopback

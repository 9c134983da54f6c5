"""The compatibility matrix over the shipped release data: allowed and denied paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.release.compat import Matrix, UpgradeNotAllowed, latest_kaas, version_key
from services.release.defaults import ReleaseDataError, load_dir, load_file
from shared.models import ClusterRelease, KaaSRelease, SupportedClusterRelease


@pytest.fixture
def matrix() -> Matrix:
    objs = load_dir()
    kaas = [o for o in objs if isinstance(o, KaaSRelease)]
    releases = [o for o in objs if isinstance(o, ClusterRelease)]
    assert len(kaas) == 1 and len(releases) == 3
    return Matrix(kaas[0], releases)


def test_shipped_data_is_consistent(matrix: Matrix) -> None:
    assert [r.metadata.name for r in matrix.supported()] == ["mke-3-7-0", "mke-3-7-1", "mke-3-8-0"]
    assert matrix.missing() == []
    for r in matrix.supported():
        types = {a.type for a in r.spec.artifacts}
        assert types == {"deb", "helm", "image", "binary"}, r.metadata.name


def test_allowed_paths(matrix: Matrix) -> None:
    assert matrix.available_upgrades("mke-3-7-0") == ["mke-3-7-1"]
    assert matrix.available_upgrades("mke-3-7-1") == ["mke-3-8-0"]
    assert matrix.available_upgrades("mke-3-8-0") == []
    matrix.check_upgrade("mke-3-7-0", "mke-3-7-1")
    matrix.check_upgrade("mke-3-7-1", "mke-3-8-0")


@pytest.mark.parametrize(
    ("current", "target", "message"),
    [
        ("mke-3-7-0", "mke-3-8-0",
         "upgrade path mke-3-7-0 -> mke-3-8-0 is not allowed by KaaSRelease kaas-2-26-0 "
         "(allowed from mke-3-7-0: mke-3-7-1)"),
        ("mke-3-8-0", "mke-3-7-1",
         "downgrade mke-3-8-0 (3.8.0) -> mke-3-7-1 (3.7.1) is not allowed"),
        ("mke-3-7-1", "mke-3-7-1", "cluster already runs ClusterRelease mke-3-7-1"),
        ("mke-3-7-1", "mke-9-9-9", "ClusterRelease mke-9-9-9 does not exist"),
        ("mke-3-6-0", "mke-3-7-0", "current ClusterRelease mke-3-6-0 does not exist"),
    ],
)
def test_denied_paths(matrix: Matrix, current: str, target: str, message: str) -> None:
    with pytest.raises(UpgradeNotAllowed) as e:
        matrix.check_upgrade(current, target)
    assert str(e.value) == message


def test_unsupported_target_and_fallback_to_release_allowed_upgrades(matrix: Matrix) -> None:
    kaas = matrix.kaas
    # A KaaSRelease that drops mke-3-8-0 and lists no upgrades for 3-7-0.
    kaas2 = KaaSRelease(
        metadata=kaas.metadata,
        spec=kaas.spec.__class__(
            version="2.25.0",
            supported_cluster_releases=[
                SupportedClusterRelease(name="mke-3-7-0"),
                SupportedClusterRelease(name="mke-3-7-1"),
            ],
        ),
    )
    m = Matrix(kaas2, matrix.releases.values())
    # no KaaS entry upgrades: the ClusterRelease's own allowedUpgrades apply
    assert m.available_upgrades("mke-3-7-0") == ["mke-3-7-1"]
    assert m.available_upgrades("mke-3-7-1") == []  # its target is not supported here
    with pytest.raises(UpgradeNotAllowed, match="mke-3-8-0 is not supported by KaaSRelease"):
        m.check_upgrade("mke-3-7-1", "mke-3-8-0")
    assert latest_kaas([kaas2, kaas]) is kaas


def test_version_ordering() -> None:
    assert version_key("3.7.10") > version_key("3.7.9") > version_key("3.7.0")
    assert version_key("1.0.0-mcc-2.26.0") > version_key("1.0.0")


def test_bad_release_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: ClusterRelease\nmetadata: {name: x}\nspec: {version: 1.0}\n")
    expected = r"bad.yaml: Expected `str`, got `float` \(at \$.spec.version\)"
    with pytest.raises(ReleaseDataError, match=expected):
        load_file(bad)

"""A host's node root is its disk: kept for the machine that owns it, blank for the next."""

from __future__ import annotations

from pathlib import Path

from services.local.nodes import node_root


def test_same_machine_keeps_its_disk_another_gets_a_blank_one(tmp_path: Path) -> None:
    root = node_root(tmp_path / "bm-0", "uid-a")
    (root / "var" / "lib").mkdir(parents=True)
    journal = root / "var" / "lib" / "journal"
    journal.write_text("host-prepare done")

    again = node_root(tmp_path / "bm-0", "uid-a")  # the agent restarts: it resumes
    assert again == root and journal.read_text() == "host-prepare done"

    fresh = node_root(tmp_path / "bm-0", "uid-b")  # the host is reprovisioned for another
    assert fresh == root and not journal.exists()
    assert [p.name for p in fresh.iterdir()] == [".machine-uid"]
    assert (fresh / ".machine-uid").read_text() == "uid-b"


def test_a_disk_of_unknown_owner_is_wiped(tmp_path: Path) -> None:
    (tmp_path / "bm-1").mkdir()
    (tmp_path / "bm-1" / "left-over").write_text("x")
    root = node_root(tmp_path / "bm-1", "uid-a")
    assert not (root / "left-over").exists()

"""The state store: created and migrated forward on open; newer or corrupt files refused, untouched."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from migrations.core import store as store_module
from migrations.core.store import SCHEMA_VERSION, StateStore, StoreError


def test_fresh_store_is_current_and_wal(tmp_path: Path) -> None:
    s = StateStore.open(tmp_path / "deep" / "state.db")
    assert s.schema_version == SCHEMA_VERSION
    assert s.rows("PRAGMA journal_mode")[0][0] == "wal"
    tables = {r[0] for r in s.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "inventory",
        "delta_links",
        "mappings",
        "plans",
        "journal",
        "phase_status",
        "audit",
        "runs",
    } <= tables
    s.close()


def test_forward_migration_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.db"
    StateStore.open(path).close()
    monkeypatch.setattr(
        store_module,
        "MIGRATIONS",
        [*store_module.MIGRATIONS, ("CREATE TABLE cutover (academy TEXT PRIMARY KEY)",)],
    )
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    s = StateStore.open(path)
    assert s.schema_version == SCHEMA_VERSION + 1
    assert s.rows("SELECT count(*) FROM cutover")[0][0] == 0
    s.close()


def test_newer_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    s = StateStore.open(path)
    with s.tx() as tx:
        tx.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 5),))
    s.close()
    with pytest.raises(StoreError, match="newer than this trustfold understands"):
        StateStore.open(path)


def test_corrupt_and_foreign_files_are_refused_untouched(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    before = junk.read_bytes()
    with pytest.raises(StoreError, match="not a trustfold state store"):
        StateStore.open(junk)
    assert junk.read_bytes() == before
    broken = tmp_path / "broken.db"
    StateStore.open(broken).close()
    data = bytearray(broken.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    broken.write_bytes(bytes(data))
    snapshot = broken.read_bytes()
    with pytest.raises(StoreError):
        StateStore.open(broken)
    assert broken.read_bytes() == snapshot
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE photos (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="not a trustfold state store"):
        StateStore.open(other)


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    s = StateStore.open(tmp_path / "state.db")
    with pytest.raises(RuntimeError), s.tx() as tx:
        tx.execute(
            "INSERT INTO phase_status (academy, phase, status, updated_at) VALUES ('a', 'users', 'x', 'now')"
        )
        raise RuntimeError("crash mid-write")
    assert s.phase_statuses() == []
    s.set_phase_status("a", "users", "done", {"n": 1})
    assert s.phase_statuses()[0]["detail"] == {"n": 1}
    s.close()


def test_missing_store_without_create(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not found"):
        StateStore.open(tmp_path / "none.db", create=False)


def test_a_store_interrupted_while_being_made_leaves_nothing_at_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty state file is refused (issue 23 finding 10), so creation must never leave one: the store is
    built under a temporary name and linked into place only when complete."""
    path = tmp_path / "state.db"

    def interrupted(self: StateStore, *, fresh: bool) -> None:
        raise KeyboardInterrupt  # as a Ctrl+C between creating the file and writing its schema

    monkeypatch.setattr(StateStore, "_prepare", interrupted)
    with pytest.raises(KeyboardInterrupt):
        StateStore.open(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    monkeypatch.undo()
    s = StateStore.open(path)
    assert s.schema_version == SCHEMA_VERSION
    s.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]

"""Bad input found by a careless or hostile operator: exit 2, one line naming the file, line or option and
what is allowed, no traceback, nothing created. Each case failed before with exit 1 and a Python exception
name."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from cli.main import run
from tests.foundation.test_config_corpus import CONFIG


def _one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert run(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "Error:" not in err.replace("Error: --", "")
    return lines[0]


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1:8080", "https://graph.microsoft.com", "http://127.0.0.1.example.net:80"]
)
def test_non_loopback_graph_url(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state.db"
    line = _one_line_exit_2(
        ["--config-dir", str(CONFIG), "--state", str(state), "--graph-url", url, "discover", "hillside"],
        capsys,
    )
    assert line.startswith("Error: --graph-url: the sandbox must be on loopback"), line
    assert "ValueError" not in line
    assert not state.exists()


def test_state_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me")
    state = blocker / "trustfold" / "state.db"
    line = _one_line_exit_2(["--config-dir", str(CONFIG), "--state", str(state), "status"], capsys)
    assert line == (
        f"error: {state}: cannot create the state store: {blocker} is a file, not a folder; "
        "choose another --state"
    )
    assert blocker.read_text() == "keep me"


def test_deeply_nested_yaml_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    target = cfg / "academies" / "oakwood.yaml"
    lines_before = target.read_text().count("\n")
    # Thousands deep: PyYAML's recursive composer hits the interpreter's recursion limit before any bound.
    target.write_text(target.read_text() + "extra: " + "[" * 20000 + "]" * 20000 + "\n")
    state = tmp_path / "state.db"
    line = _one_line_exit_2(["--config-dir", str(cfg), "--state", str(state), "academies"], capsys)
    assert line == f"error: {target}:{lines_before + 1}: YAML nested deeper than 32 levels", line
    assert "RecursionError" not in line
    assert not state.exists()


def _empty_sqlite(path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x INTEGER)")
    db.execute("DROP TABLE t")  # a valid SQLite file with no tables at all
    db.commit()
    db.close()


def _foreign_sqlite(path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("CREATE TABLE photos (id INTEGER)")
    db.commit()
    db.close()


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda p: p.write_bytes(b""), "state file is empty (0 bytes)"),
        (_empty_sqlite, "holds no trustfold state store"),
        (_foreign_sqlite, "not a trustfold state store"),
        (lambda p: p.write_text("userPrincipalName,initialPassword\n"), "not a trustfold state store"),
    ],
    ids=["zero-bytes", "empty-sqlite", "foreign-sqlite", "not-sqlite"],
)
@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["status", "hillside"],
        ["audit"],
        ["discover", "hillside"],
        ["plan", "hillside", "--phase", "users"],
    ],
)
def test_an_empty_or_foreign_state_file_is_refused_untouched(
    make: Any, says: str, command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 23 finding 10: `status` failed with OperationalError (exit 1) and `discover` replaced a zero-byte
    store with a new empty one; every command now refuses it in one line and leaves it as it was."""
    state = tmp_path / "state.db"
    make(state)
    before = state.read_bytes()
    line = _one_line_exit_2(
        ["--config-dir", str(CONFIG), "--state", str(state), "--graph-url", "http://127.0.0.1:9", *command],
        capsys,
    )
    assert line.startswith(f"error: {state}: ") and says in line, line
    assert state.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]  # no -wal, -shm or new store beside it


def test_a_missing_state_file_is_still_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "new" / "state.db"
    assert run(["--config-dir", str(CONFIG), "--state", str(state), "status"]) == 0, capsys.readouterr().err
    assert state.stat().st_size > 0

"""A read-only state store (an archived copy, a read-only mount): status, report, audit and mapping export
read it; writing commands refuse it in one line; nothing on disk changes and nobody calls it corrupt.

Root ignores permission bits, so as root the commands run without the capabilities that override them
(setpriv), which makes the chmod as binding as for an ordinary operator."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from migrations.core.store import StateStore
from tests.foundation.test_config_corpus import CONFIG


def _as_operator() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permission bits cannot be made binding")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


def _tree(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    live = tmp_path / "live" / "state.db"
    store = StateStore.open(live)
    store.set_phase_status("hillside", "users", "done", {"planned": 3})
    store.audit(
        operator="alice",
        host="laptop",
        command="run --phase users",
        outcome="succeeded",
        academy="hillside",
        phase="users",
    )
    store.close()
    folder = tmp_path / "archive"
    folder.mkdir()
    shutil.copy2(live, folder / "state.db")  # a closed WAL store: no -wal/-shm beside it
    (folder / "state.db").chmod(0o400)
    folder.chmod(0o500)
    yield folder / "state.db"
    folder.chmod(0o700)


def _cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRUSTFOLD_CONFIG_DIR": str(CONFIG), "TRUSTFOLD_STATE": str(state)}
    env["TRUSTFOLD_GRAPH_URL"] = "http://127.0.0.1:9"  # never reached
    return subprocess.run(
        [*_as_operator(), sys.executable, "-c", "from cli.main import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_readers_work_on_a_read_only_copy_and_writers_refuse_it(archive: Path) -> None:
    before = _tree(archive.parent)
    status = _cli(archive, "status", "hillside", "--json")
    assert status.returncode == 0, status.stderr
    assert {r["phase"]: r["status"] for r in json.loads(status.stdout)}["users"] == "done"
    audit = _cli(archive, "audit", "--json")
    assert audit.returncode == 0, audit.stderr
    assert [e["operator"] for e in json.loads(audit.stdout)] == ["alice"]
    report = _cli(archive, "report", "--format", "md", "--out", "-")
    assert report.returncode == 0 and "hillside" in report.stdout.lower(), report.stderr
    for proc in (status, audit, report):
        assert "corrupt" not in proc.stderr and "error" not in proc.stderr.lower(), proc.stderr
    # Writing commands: exit 2 (bad input: pointed at a store that cannot be written), one line, untouched.
    for args in (("plan", "hillside", "--phase", "users"),):
        proc = _cli(archive, *args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert lines[0].startswith(f"error: {archive}: state store is read-only ("), lines[0]
        assert "this command writes to it" in lines[0] and "corrupt" not in lines[0]
    assert _tree(archive.parent) == before, "nothing was written next to or into the archive"

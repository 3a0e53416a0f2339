"""The bulk engine's edges (issue #23 findings 5, 6, 8, 9; issue #22 stopper 2), through the CLI against the
sandbox's Migration API and Azurite:
- a name SharePoint cannot carry (U+FFFE) fails that item alone; its package, the hostile names beside it
  (`%`, `'`, `#`, `%20`) and the run's deletes go on;
- jobs are followed through GetMigrationJobProgress, with no report queue at all;
- a job that stays silent fails its package for the run (never waiting forever) and can be given up with
  `run --abandon-package`, after which its files are planned and copied again;
- a corrupt secrets file is bad input (exit 2, one line naming it, nothing replaced)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from sandbox.migration_api import service
from tests.files.conftest import SOURCE_SITE, World
from tests.identity.conftest import TARGET


def _run(w: World, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = w.cli("run", "hillside", "--phase", "files", "--replan", "--json", *extra, check=False)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}") from None


def _failures(result: dict[str, Any]) -> list[str]:
    return [json.dumps(f) for f in result.get("failures") or []]


def _verify(w: World) -> dict[str, Any]:
    return dict(json.loads(w.cli("verify", "hillside", "--json", check=False).stdout)["files"])


HOSTILE = ["pct%20folder/it's #1 %41.docx", "pct%20folder/100% done.txt", "it's #2/a%2Fb 'q'.txt"]
BAD = "Policies/bad\ufffename.docx"


def test_one_bad_name_fails_alone_hostile_names_import_and_deletes_happen(bulk_hillside: World) -> None:
    w = bulk_hillside
    src = w.library(w.source, SOURCE_SITE)
    for i, path in enumerate([*HOSTILE, BAD]):
        w.add_file(w.source, src, path, 2000 + i, f"edge-{i}")
    code, first = _run(w)
    failed = _failures(first)
    # Only the file SharePoint cannot carry fails, named with its character (old code: PackagingError
    # aborted the whole run; the `%` folder failed its package with a 404 lookup).
    assert code == 1 and len(failed) == 1 and "U+FFFE" in failed[0] and "bad" in failed[0], failed
    with sqlite3.connect(w.state) as db:
        found = db.execute("SELECT display, message FROM file_findings WHERE kind = 'unsupported-name'")
        assert [(d, "U+FFFE NONCHARACTER" in m) for d, m in found] == [(BAD, True)]
    target = next(d for d in w.drives(TARGET).values() if any(p.startswith("pct%20folder") for p in d))
    for path in HOSTILE:
        assert path in target, (path, sorted(p for p in target if "%" in p or "'" in p))
    # A delete planned in the run that also meets the bad name still happens.
    gone = w.drives(w.source)[src]["pct%20folder/100% done.txt"]
    with w.graph(w.source) as g:
        assert g.delete(f"/drives/{src}/items/{gone['id']}").status_code == 204
    code, second = _run(w, "--propagate-deletes")
    assert code == 1 and [f for f in _failures(second) if "U+FFFE" not in f] == [], second
    target = next(d for d in w.drives(TARGET).values() if any(p.startswith("pct%20folder") for p in d))
    assert "pct%20folder/100% done.txt" not in target and HOSTILE[0] in target


def test_bulk_job_followed_with_no_queue_events(bulk_hillside: World) -> None:
    """Issue #22 stopper 2: the report queues are retired (the sandbox offers none); the run follows every
    job through GetMigrationJobProgress alone."""
    w = bulk_hillside
    svc = service(w.url.world)
    svc.queues = False
    code, result = _run(w)
    assert code == 0 and result["status"] == "succeeded", result["failures"]
    assert svc.jobs and all(j.queue is None for j in svc.jobs.values())
    assert max(svc.imports.values()) == 1
    files = _verify(w)
    assert files["differences"] == [] and files["matched"] == files["files"] - 1  # the oversized video


def test_silent_job_fails_for_the_run_and_can_be_abandoned(bulk_hillside: World, tmp_path: Path) -> None:
    """Issue #23 finding 8: a job that gives no progress fails its package within the bound, saying how to
    give it up; `--abandon-package` journals its steps failed, cleans its staging and secrets, and the next
    run copies those files again."""
    w = bulk_hillside
    svc = service(w.url.world)
    svc.paused = True  # SharePoint accepts the jobs and then says nothing more
    w.cli.extra_env["TRUSTFOLD_BULK_SILENCE_S"] = "2"  # type: ignore[attr-defined]
    started = time.monotonic()
    code, result = _run(w)
    assert code == 1 and time.monotonic() - started < 240
    silent = [f for f in _failures(result) if "no progress from Migration API job" in f]
    assert silent and all("--abandon-package" in f for f in silent), _failures(result)
    with sqlite3.connect(w.state) as db:
        pids = [r[0] for r in db.execute("SELECT package_id FROM bulk_packages WHERE state = 'submitted'")]
    assert pids and all(p in " ".join(silent) for p in pids)
    secrets = tmp_path / "bulk-secrets-hillside.json"
    assert set(json.loads(secrets.read_text())) >= set(pids)

    # Bad ids are bad input: exit 2, one line, nothing changed.
    bad = w.cli("run", "hillside", "--phase", "files", "--replan", "--abandon-package", "nope", check=False)
    assert bad.returncode == 2 and "nope" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr

    args = [a for p in pids for a in ("--abandon-package", p)]
    code, gave_up = _run(w, *args)
    abandoned = [f for f in _failures(gave_up) if "abandoned by the operator" in f]
    assert len(abandoned) == sum(1 for f in silent)
    with sqlite3.connect(w.state) as db:
        states = dict(db.execute("SELECT package_id, state FROM bulk_packages").fetchall())
    assert all(states[p] == "abandoned" for p in pids)
    assert not set(json.loads(secrets.read_text())) & set(pids)  # the package's keys and SAS are gone

    # SharePoint finishes the old jobs in its own time; the next run plans the files again and converges.
    svc.paused = False
    deadline = time.monotonic() + 120
    while any(j.state != 0 for j in svc.jobs.values()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    code, again = _run(w)
    assert code == 0, _failures(again)
    files = _verify(w)
    assert files["differences"] == [], files["differences"]


def test_corrupt_secrets_file_is_bad_input_and_left_as_it_is(bulk_hillside: World, tmp_path: Path) -> None:
    """Issue #23 finding 9: a truncated secrets file was read as empty and the next staging rewrote it
    without the other packages' keys."""
    w = bulk_hillside
    secrets = tmp_path / "bulk-secrets-hillside.json"
    secrets.write_text('{"p1": {"key": "abc", "queue": "https://q')
    secrets.chmod(0o644)
    before = secrets.read_bytes()
    proc = w.cli("run", "hillside", "--phase", "files", "--replan", check=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(secrets) in lines[0] and "corrupt" in lines[0], proc.stderr
    assert secrets.read_bytes() == before
    assert secrets.stat().st_mode & 0o777 == 0o600  # tightened on open, never left loosened
    other = w.cli("run", "hillside", "--phase", "users", "--replan", "--abandon-package", "p1", check=False)
    assert other.returncode == 2 and "--abandon-package is for --phase files" in other.stderr, other.stderr

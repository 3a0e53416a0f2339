"""Personal data at rest is owner-only: the store, its -wal/-shm, .trustfold/ and all trustfold creates there
(initial passwords, throttle windows, caches) are 0600 files in 0700 folders whatever the umask, and looser
permissions left by an older version or a copy are tightened on the next open."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from migrations.core.store import StateStore
from tests.identity.conftest import Cli

CLI = (sys.executable, "-c", "from cli.main import main; main()")


def _modes(root: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for p in root.rglob("*"):
        out[str(p.relative_to(root))] = stat.S_IMODE(p.lstat().st_mode)
    return out


def _loose(modes: dict[str, int]) -> dict[str, str]:
    return {k: oct(m) for k, m in modes.items() if m & 0o077}


class UmaskCli(Cli):
    def __init__(self, url: str, state: Path, umask: int):
        super().__init__(url, state)
        self.umask = umask

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-c", "from cli.main import main; main()", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=lambda: os.umask(self.umask),
        )
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc


def test_everything_created_is_owner_only_under_umask_000(sandbox: str, tmp_path: Path) -> None:
    umask = 0o000
    home = tmp_path / "work" / ".trustfold"
    cli = UmaskCli(sandbox, home / "state.db", umask)
    cli("discover", "hillside")
    # Held at the run lock (a test hook), the store is open: its -wal and -shm exist and are looked at too.
    gate, taken = tmp_path / "gate", tmp_path / "taken"
    env = {**cli.env(), "TRUSTFOLD_TEST_HOLD_LOCK_UNTIL": str(gate), "TRUSTFOLD_TEST_LOCK_TAKEN": str(taken)}
    running = subprocess.Popen(
        [*CLI, "run", "hillside", "--phase", "users", "--replan"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.umask(umask),
    )
    try:
        deadline = time.monotonic() + 120
        while not taken.exists():
            assert running.poll() is None and time.monotonic() < deadline, running.communicate()
            time.sleep(0.05)
        open_modes = _modes(home)
    finally:
        gate.touch()
        out, err = running.communicate(timeout=240)
    assert running.returncode == 0, out + err
    assert {"state.db-wal", "state.db-shm"} <= set(open_modes), open_modes
    assert _loose(open_modes) == {}, open_modes
    modes = _modes(home)
    assert {"state.db", "runs"} <= set(modes) and any(k.endswith("-initial-passwords.csv") for k in modes)
    assert _loose(modes) == {}, modes
    assert all(m == 0o700 for k, m in modes.items() if (home / k).is_dir())
    # The folder that holds .trustfold was made by trustfold for this store too.
    assert stat.S_IMODE(home.parent.stat().st_mode) == 0o700


def test_looser_permissions_are_tightened_on_open(sandbox: str, tmp_path: Path) -> None:
    home = tmp_path / ".trustfold"
    cli = UmaskCli(sandbox, home / "state.db", 0o022)
    cli("discover", "hillside")
    assert _loose(_modes(home)) == {}, "owner-only under the usual umask 022 as well"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    stray = home / "runs" / "old-initial-passwords.csv"
    stray.parent.mkdir(exist_ok=True)
    stray.write_text("userPrincipalName,initialPassword\n")
    for p in (home, stray.parent):
        p.chmod(0o755)
    for p in home.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    assert _loose(_modes(home))
    cli("status", "hillside")  # a reading command is enough
    assert _loose(_modes(home)) == {}


def test_library_use_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    """Without the CLI's umask (trustfold used as a library, umask 000) the store is still private."""
    old = os.umask(0)
    try:
        store = StateStore.open(tmp_path / "fresh" / "state.db")
        store.set_phase_status("hillside", "users", "planned")
        modes = _modes(tmp_path / "fresh")
        store.close()
    finally:
        os.umask(old)
    assert set(modes) >= {".", "state.db", "state.db-wal", "state.db-shm"}, modes
    assert _loose(modes) == {}, modes


def test_run_artefacts_and_their_folder_are_tightened_wherever_the_store_lives(
    sandbox: str, tmp_path: Path
) -> None:
    """Issue 23 finding 11: a state folder not named .trustfold, Migration API job keys and queue SAS
    (bulk-secrets-*.json) and DNS change requests stayed as loose as a copy or a chmod left them; only
    state.db was tightened. Now every open makes them owner-only again; a file of the operator's own in the
    same folder is not trustfold's to change."""
    home = tmp_path / "rehearsal"
    cli = UmaskCli(sandbox, home / "state.db", 0o022)
    cli("discover", "hillside")
    ours = {
        home / "bulk-secrets-hillside.json": '{"pkg": {"key": "AES", "queue": "https://q?sig=x"}}',
        home / "bulk-secrets-hillside.tmp": "{}",
        home / "upload-sessions-hillside.json": "{}",
        home / "runs" / "dns-change-hillside.txt": "; trustfold DNS change\n",
        home / "runs" / "run-1-initial-passwords.csv": "userPrincipalName,initialPassword\n",
    }
    for path, text in ours.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    mine = home / "operator-notes.txt"
    mine.write_text("not trustfold's")
    for p in (home, home / "runs"):
        p.chmod(0o755)
    for p in home.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    cli("status", "hillside")  # any command that opens the store
    modes = _modes(home)
    assert modes["."] == 0o700 and modes["runs"] == 0o700, modes
    for path in ours:
        assert modes[str(path.relative_to(home))] == 0o600, (path, oct(modes[str(path.relative_to(home))]))
    for name in ("state.db", "write-window-6f1c2a4e-8b7d-4c3e-9a10-2b5d7e9f0a11.json"):
        if name in modes:
            assert modes[name] == 0o600, (name, oct(modes[name]))
    assert modes["operator-notes.txt"] == 0o644


def test_writers_make_their_artefact_and_folder_owner_only_again(tmp_path: Path) -> None:
    """A DNS change request or an upload-session file rewritten over a loosened one (in a loosened folder) is
    0600 in a 0700 folder afterwards: replaced whole, never rewritten in place keeping the old mode."""
    from migrations.domain.runbook import dns_change_file
    from migrations.files.transfer import UploadSessions

    runs = tmp_path / "state" / "runs"
    runs.mkdir(parents=True)
    loose = runs / "dns-change-hillside.txt"
    loose.write_text("old")
    sessions = tmp_path / "state" / "upload-sessions-hillside.json"
    sessions.write_text("{}")
    for p in (runs, tmp_path / "state"):
        p.chmod(0o755)
    for p in (loose, sessions):
        p.chmod(0o644)
    path = dns_change_file(runs, "hillside", [("hillside.org.uk", "MS=ms12345678")], [], "trustfold run")
    assert path == loose and stat.S_IMODE(loose.stat().st_mode) == 0o600
    assert stat.S_IMODE(runs.stat().st_mode) == 0o700
    store = UploadSessions(sessions)
    assert stat.S_IMODE(sessions.stat().st_mode) == 0o600  # tightened on open, before anything is read
    sessions.chmod(0o644)
    store.put("k", {"url": "https://upload?tempauth=x"})
    assert stat.S_IMODE(sessions.stat().st_mode) == 0o600
    assert stat.S_IMODE(sessions.parent.stat().st_mode) == 0o700

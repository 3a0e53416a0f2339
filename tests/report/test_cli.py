"""`trustfold report`, `audit` and `demo` through the CLI entry point, errors included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_fixtures import fill

from cli.main import run
from migrations.core.registry import load_phases
from migrations.core.store import StateStore
from migrations.rehearsal.demo import demo_steps, with_onboarding
from trust import load_trust

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state.db"
    store = StateStore.open(path)
    fill(store)
    store.close()
    return path


def _run(state: Path, *argv: str) -> int:
    return run(["--config-dir", str(CONFIG), "--state", str(state), *argv])


def test_report_formats(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "out" / "r.html"
    assert _run(state, "report", "--out", str(out)) == 0
    assert "report written:" in capsys.readouterr().out
    assert out.read_text().startswith("<!doctype html>")
    assert _run(state, "report", "oakwood", "--format", "json", "--out", "-") == 0
    data = json.loads(capsys.readouterr().out)
    assert [a["code"] for a in data["academies"]] == ["oakwood"]
    assert _run(state, "report", "--format", "md", "--out", str(tmp_path / "r.md")) == 0
    assert "| phase | status |" in (tmp_path / "r.md").read_text()


def test_report_errors(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert _run(state, "report", "nowhere") == 2
    assert "no academy with code 'nowhere'" in capsys.readouterr().err
    assert _run(tmp_path / "missing.db", "report") == 2
    assert "state store not found" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()
    assert _run(state, "report", "--format", "pdf") == 2
    assert "'pdf' is not one of" in capsys.readouterr().err


def test_report_without_config_uses_store_codes(state: Path, tmp_path: Path, capsys):
    argv = ["--config-dir", str(tmp_path / "noconfig"), "--state", str(state)]
    assert run([*argv, "report", "stmarys", "--format", "json", "--out", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["academies"][0]["name"] == "stmarys"
    assert run([*argv, "report", "nowhere"]) == 2
    assert "academy 'nowhere' has no records in the state store" in capsys.readouterr().err


def test_audit(state: Path, capsys: pytest.CaptureFixture[str]):
    assert _run(state, "audit", "--json") == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["academy"], e["outcome"]) for e in entries] == [
        ("oakwood", "succeeded"),
        ("stmarys", "failed"),
    ]
    assert _run(state, "audit", "stmarys") == 0
    out = capsys.readouterr().out
    assert "plan-stmarys-groups" in out and "oakwood" not in out
    assert _run(state, "audit", "hillside") == 0
    assert "no audited actions for hillside" in capsys.readouterr().out
    assert _run(state, "audit", "nowhere") == 2
    assert "no academy with code 'nowhere'" in capsys.readouterr().err


def test_demo_steps_follow_waves_and_file_settings():
    trust = load_trust(CONFIG)
    steps = demo_steps(trust, load_phases())
    order = list(dict.fromkeys(s.academy for s in steps))
    assert order == [a.code for a in sorted(trust.academies, key=lambda a: (a.wave, a.code))]
    # Per wave: every academy discovered, then each one's phases, then every academy's verify.
    kinds = [s.label if s.label in ("discover", "verify") else "phase" for s in steps]
    wave_of = {a.code: a.wave for a in trust.academies}
    for wave in sorted(set(wave_of.values())):
        in_wave = [k for k, s in zip(kinds, steps, strict=True) if wave_of[s.academy] == wave]
        n = sum(1 for a in trust.academies if a.wave == wave)
        assert in_wave[:n] == ["discover"] * n and in_wave[-n:] == ["verify"] * n
        assert set(in_wave[n:-n]) == {"phase"}
    first = [s.label for s in steps if s.academy == order[0]]
    assert first[0] == "discover" and first[-1] == "verify"
    # Each phase is one `run --replan` (planned, stored and applied at once: the rehearsal reviews nothing
    # between a `plan` and its `run`, which re-derived the plan and doubled its cost); mail follows the
    # directory phases, before files.
    assert first[1:5] == ["run users", "run groups", "run memberships", "run mail"]
    assert all("--replan" in s.argv for s in steps if s.argv[0] == "run")
    assert not [s for s in steps if s.argv[0] == "plan"]
    phases = load_phases()
    for academy in trust.academies:
        labels = [s.label for s in steps if s.academy == academy.code]
        has_files = "run files" in labels
        assert has_files == (academy.files.enabled and "files" in phases)
        assert ("run permissions" in labels) == (has_files and "permissions" in phases)
        assert "run mail" in labels
        if "teams" in phases:  # after groups, memberships, files and sharing
            assert labels.index("run teams") == len(labels) - 2 and labels[-1] == "verify"
    # Onboarding: the OneDrives are asked for right after the users run (not waited for: the files run's
    # gate waits), only for academies that copy OneDrives.
    onboarded = with_onboarding(trust, steps)
    assert [s.label for s in onboarded[:2]] == ["preflight (before set-up)", "bootstrap"]
    for academy in trust.academies:
        labels = [s.label for s in onboarded if s.academy == academy.code]
        asks = "run files" in labels and academy.files.onedrive
        if asks:
            assert labels[labels.index("run users") + 1] == "request OneDrives"
            request = next(
                s for s in onboarded if s.academy == academy.code and s.label == "request OneDrives"
            )
            assert request.argv == ["provision-onedrive", academy.code, "--no-wait"]
        else:
            assert "request OneDrives" not in labels


def test_demo_rejects_a_url_that_is_not_a_sandbox(tmp_path: Path, capsys, monkeypatch):
    import cli.report_cmds as report_cmds

    monkeypatch.setattr(report_cmds, "_require_migration_commands", lambda: None)
    state = tmp_path / "s.db"
    code = run(
        ["--config-dir", str(CONFIG), "--state", str(state), "--graph-url", "http://127.0.0.1:9", "demo"]
    )
    assert code == 1
    assert "could not reset the sandbox at http://127.0.0.1:9" in capsys.readouterr().err
    store = StateStore.open(state)
    assert [e["outcome"] for e in store.audit_entries()] == ["started", "failed"]
    assert "could not reset" in store.audit_entries()[-1]["detail"]["error"]
    store.close()


def test_demo_needs_the_migration_commands(tmp_path: Path, capsys, monkeypatch):
    import importlib.util

    # discover is present, plan/run/verify are not.
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "cli.migrate_cmds" else object()
    )
    assert run(["--config-dir", str(CONFIG), "--state", str(tmp_path / "s.db"), "demo"]) == 1
    err = capsys.readouterr().err
    assert "migration commands plan (cli/migrate_cmds.py), run (cli/migrate_cmds.py), verify" in err
    assert "not part of this build; the demo cannot run" in err and "discover" not in err


def test_live_progress_reads_the_running_steps_samples(tmp_path: Path):
    import threading

    from report_fixtures import add_run

    from migrations.rehearsal.demo import DemoStep, live_items

    path = tmp_path / "live.db"
    store = StateStore.open(path)
    add_run(store, "oakwood", "users", start=0, length=1, status="running", counts={"done": 30}, samples=3)
    add_run(store, "oakwood", "groups", start=0, length=1, status="running", counts={"done": 99}, samples=1)
    seen: list[int] = []
    got = threading.Event()
    step = DemoStep("oakwood", "run users", ["run", "oakwood", "--phase", "users"])
    with live_items(path, step, enabled=True) as live:
        live.on_change = lambda n: (seen.append(n), got.set())
        assert got.wait(10)
    assert seen[0] == 30
    store.close()

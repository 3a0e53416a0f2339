"""`trustfold demo` end to end against a real sandbox, with stand-in migration commands.

The stand-ins speak the CLI and reporting contracts (docs/contracts.md) only: they record runs, phase status
and metrics the way the engine does, so this test checks the demo's own work (sandbox, order, progress,
report, audit, exit code) whether or not the real engine is present.
"""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types
import uuid
from pathlib import Path

import click
import httpx
import pytest

from cli.context import AppContext, pass_app
from cli.main import COMMANDS, run
from migrations.core.registry import load_phases
from migrations.core.store import StateStore, dumps, now

CONFIG = Path(__file__).resolve().parents[2] / "config"
CALLS: list[tuple[str, ...]] = []
INTERRUPT_AT: str | None = None
URLS: list[str] = []


def _record(app: AppContext, academy: str, phase: str, kind: str, counts: dict[str, float]) -> None:
    store = app.store()
    run_id = uuid.uuid4().hex
    with store.tx() as c:
        c.execute(
            "INSERT INTO runs (id, academy, phase, kind, started_at, finished_at, status, counts) "
            "VALUES (?, ?, ?, ?, ?, ?, 'succeeded', ?)",
            (run_id, academy, phase, kind, now(), now(), dumps(counts)),
        )
        c.execute(
            "INSERT INTO metrics (run_id, at, name, value) VALUES (?, ?, 'items_done', ?)",
            (run_id, now(), counts.get("done", 0)),
        )


def _fake_migrate_module() -> types.ModuleType:
    module = types.ModuleType("cli.migrate_cmds")
    module.__spec__ = importlib.machinery.ModuleSpec("cli.migrate_cmds", None)

    @click.command()
    @click.argument("academy")
    @pass_app
    def discover(app: AppContext, academy: str) -> None:
        assert app.graph_url is not None
        # The demo hands over a live sandbox: the stand-in proves it by asking it for a token.
        tenant = app.trust().academy(academy).legacy_tenant.id
        httpx.post(
            f"{app.graph_url}/{tenant}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "x",
                "client_secret": "y",
                "scope": "https://graph.microsoft.com/.default",
            },
        ).raise_for_status()
        CALLS.append(("discover", academy))
        URLS.append(app.graph_url)
        _record(app, academy, "discover", "discover", {"requests": 2})
        app.store().set_phase_status(academy, "discover", "done", {"counts": {"users": 5}, "findings": []})
        click.echo(f"discovered {academy}")

    @click.command()
    @click.argument("academy")
    @click.option("--phase", required=True)
    @click.option("--scan-age", default=0)
    @pass_app
    def plan(app: AppContext, academy: str, phase: str, scan_age: int) -> None:
        CALLS.append(("plan", academy, phase))
        app.store().set_phase_status(academy, phase, "planned", {})

    @click.command("run")
    @click.argument("academy")
    @click.option("--phase", required=True)
    @click.option("--scan-age", default=0)
    @click.option("--replan", is_flag=True)  # the demo plans and applies each phase in one run
    @pass_app
    def run_(app: AppContext, academy: str, phase: str, scan_age: int, replan: bool) -> None:
        CALLS.append(("run", academy, phase))
        if academy == INTERRUPT_AT:
            raise KeyboardInterrupt
        _record(app, academy, phase, "run", {"planned": 5, "done": 5, "throttled": 1, "wait_seconds": 0.5})
        app.store().set_phase_status(academy, phase, "done", {})

    @click.command()
    @click.argument("academy")
    @pass_app
    def verify(app: AppContext, academy: str) -> None:
        CALLS.append(("verify", academy))
        ok = academy != "stmarys"
        app.store().set_phase_status(academy, "verify", "done", {"ok": ok, "checked": 20, "differences": []})
        if not ok:
            from cli.errors import OperationFailed

            raise OperationFailed("1 difference")

    module.discover, module.plan, module.run, module.verify = discover, plan, run_, verify
    return module


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    CALLS.clear()
    module = _fake_migrate_module()
    # Whichever modules the lead's registry names for these commands, the stand-ins answer.
    for name in ("discover", "plan", "run", "verify"):
        monkeypatch.setitem(sys.modules, COMMANDS[name][0].split(":")[0], module)


def test_demo_rehearses_in_wave_order_and_writes_the_report(
    fake_engine: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    state, out = tmp_path / "state.db", tmp_path / "reports" / "r.html"
    argv = ["--config-dir", str(CONFIG), "--state", str(state), "demo", "--size", "8", "--out", str(out)]
    assert run(argv) == 1  # the stand-in verify finds a difference in stmarys
    captured = capsys.readouterr()
    assert "demo finished with 1 failed steps: stmarys verify (exit 1)" in captured.err
    assert "stmarys: verify exited 1: error: 1 difference" in captured.err
    assert f"report: {out}" in captured.out and "discovered" not in captured.out
    assert "oakwood: done" in captured.out
    assert out.read_text().startswith("<!doctype html>")

    academies = [c[1] for c in CALLS if c[0] == "discover"]
    assert academies == ["brookfield", "hillside", "oakwood", "stmarys"]
    # A wave's academies are discovered first, then each one's phases, then their verifies.
    assert CALLS[:4] == [
        ("discover", "brookfield"),
        ("discover", "hillside"),
        ("run", "brookfield", "users"),
        ("run", "brookfield", "groups"),
    ]
    wave1 = CALLS[: CALLS.index(("discover", "oakwood"))]
    assert wave1[-2:] == [("verify", "brookfield"), ("verify", "hillside")]

    store = StateStore.open(state)
    audit = store.audit_entries()
    demo = [(e["command"], e["outcome"]) for e in audit if e["command"] == "demo"]
    assert demo == [("demo", "started"), ("demo", "failed")]
    # The operator's one-off steps ran first (preflight reads only and is not audited), then provisioning.
    others = [e["command"] for e in audit if e["command"] != "demo"]
    assert others[0] == "bootstrap" and "provision-onedrive" in others
    assert audit[-1]["detail"]["failed_steps"] == ["stmarys: verify"]
    assert set(audit[-1]["detail"]["step_seconds"]) == {
        "discover",
        "verify",
        *("plan domain", "run domain", "run domain after DNS", "verify after domain"),  # first academy
        "preflight (before set-up)",
        "bootstrap",
        "request OneDrives",
        # One `run --replan` a phase (no separate plan step: see migrations/rehearsal/demo.py).
        *(
            f"run {p}"
            for p in ("users", "groups", "memberships", "mail", "files", "permissions", "teams")
            if p in load_phases()
        ),
    }
    store.close()

    # Again without --keep: a fresh store, so one rehearsal's worth of runs, not two.
    CALLS.clear()
    URLS.clear()
    run(argv)
    store = StateStore.open(state)
    discovers = store.rows("SELECT count(*) FROM runs WHERE phase = 'discover'")[0][0]
    assert discovers == 4
    # --keep continues: the earlier rows stay, and the sandbox comes back on the same address.
    before = set(URLS)
    assert len(before) == 1
    URLS.clear()
    run([*argv, "--keep"])
    assert set(URLS) == before
    assert store.rows("SELECT count(*) FROM runs WHERE phase = 'discover'")[0][0] == 8
    store.close()
    report = json.loads(_report_json(state, capsys))
    assert {a["code"] for a in report["academies"]} == {"brookfield", "hillside", "oakwood", "stmarys"}


def _report_json(state: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert (
        run(["--config-dir", str(CONFIG), "--state", str(state), "report", "--format", "json", "--out", "-"])
        == 0
    )
    return capsys.readouterr().out


def test_demo_with_a_given_sandbox_resets_it_unless_keep(fake_engine: None, tmp_path: Path, monkeypatch):
    import sandbox.testing as sandbox_testing

    resets: list[str] = []
    real_reset = sandbox_testing.reset

    def recording_reset(base_url: str, **body: object) -> dict[str, object]:
        resets.append(base_url)
        return real_reset(base_url, **body)

    monkeypatch.setattr(sandbox_testing, "reset", recording_reset)
    with sandbox_testing.running_sandbox(CONFIG, size=5) as url:
        argv = ["--config-dir", str(CONFIG), "--state", str(tmp_path / "s.db"), "--graph-url", url, "demo"]
        run([*argv, "--out", str(tmp_path / "r.html")])
        assert resets == [url]
        run([*argv, "--keep", "--out", str(tmp_path / "r.html")])
        assert resets == [url]
    assert (tmp_path / "r.html").exists()


def test_ctrl_c_in_a_step_stops_the_demo(fake_engine: None, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "INTERRUPT_AT", "hillside")
    state = tmp_path / "s.db"
    code = run(
        [
            "--config-dir",
            str(CONFIG),
            "--state",
            str(state),
            "demo",
            "--size",
            "5",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert code != 0  # click reports Ctrl-C as Abort (exit 1); the point is that the demo stopped
    assert CALLS[-1] == ("run", "hillside", "users")
    assert not any(c[1] in ("oakwood", "stmarys") for c in CALLS)
    store = StateStore.open(state)
    demo = [e["outcome"] for e in store.audit_entries() if e["command"] == "demo"]
    assert demo == ["started", "interrupted"]
    store.close()

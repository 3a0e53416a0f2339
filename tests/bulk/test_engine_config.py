"""`phases.files.engine` in an academy's config: bad values exit 2 naming file, line and field; auto picks the
Migration API per drive from its thresholds; the sandbox's SharePoint REST checks its token audience."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli.main import run
from migrations.core.steps import Step
from migrations.files.engine_choice import choose
from tests.bulk.conftest import bulk_config


@pytest.mark.parametrize(
    ("engine", "extra", "needle"),
    [
        ("fast", "", "engine"),
        ("auto", "    auto: {min_items: 0}\n", "min_items"),
        ("migration-api", "    staging: {containers: shared}\n", "containers"),
    ],
)
def test_bad_engine_settings_exit_2_naming_file_line_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], engine: str, extra: str, needle: str
) -> None:
    cfg = bulk_config(tmp_path, engine, extra)
    state = tmp_path / "state" / "state.db"
    code = run(["--config-dir", str(cfg), "--state", str(state), "config", "validate"])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    line = err.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in err
    assert re.search(r"hillside\.yaml:\d+: ", line) and needle in line, line
    assert not state.exists()


class _Files:
    engine = "auto"
    auto_min_items = 3
    auto_min_bytes = 1000


def _copy(drive: str, n: int, size: int) -> Step:
    return Step(f"copy:{drive}:{n}", "copy", {"target_drive": drive, "size": size, "path": f"f{n}"})


def test_auto_picks_the_migration_api_per_drive_by_items_or_bytes() -> None:
    steps = [_copy("many", i, 1) for i in range(3)] + [_copy("big", 0, 2000), _copy("small", 0, 5)]
    steps.append(Step("mkdir:x", "mkdir", {"target_drive": "folders", "path": "x"}))
    assert choose(_Files(), steps, staging_ready=True) == {
        "many": "migration-api",
        "big": "migration-api",
        "small": "graph",
    }
    # Without staging storage (a rehearsal without Azurite) auto stays on Graph.
    assert set(choose(_Files(), steps, staging_ready=False).values()) == {"graph"}


def test_demo_storage_without_node_stays_on_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    """`trustfold demo` without Node/Azurite: no storage is started, no staging variable is set, so an `auto`
    academy's files stay on the Graph engine (own_staging finds nothing in a rehearsal)."""
    import os

    import sandbox.azurite as az
    from migrations.files.bulk.staging import REHEARSAL_KEY_ENV, URL_ENV, own_staging
    from tests.identity.conftest import CONFIG
    from trust import load_trust

    monkeypatch.setattr(az, "executable", lambda: None)
    monkeypatch.setenv("TRUSTFOLD_GRAPH_URL", "http://127.0.0.1:9")
    monkeypatch.delenv(URL_ENV, raising=False)
    with az.rehearsal_storage("http://127.0.0.1:9") as storage:
        assert storage is None and URL_ENV not in os.environ and REHEARSAL_KEY_ENV not in os.environ
        trust = load_trust(CONFIG)
        assert own_staging(trust, trust.academy("hillside")) is None


def test_sandbox_given_by_argument_touches_no_real_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    """`trustfold demo` passes the sandbox as --graph-url, not in the environment: without Azurite, engine
    auto must stay on Graph rather than reach for the landing zone's real storage account."""
    from migrations.files.bulk.staging import URL_ENV, own_staging
    from tests.identity.conftest import CONFIG
    from trust import load_trust

    monkeypatch.delenv("TRUSTFOLD_GRAPH_URL", raising=False)
    monkeypatch.delenv(URL_ENV, raising=False)
    trust = load_trust(CONFIG)
    assert own_staging(trust, trust.academy("hillside"), "http://127.0.0.1:9") is None
    assert own_staging(trust, trust.academy("hillside")) is not None  # production: the real account


def test_rehearsal_key_is_refused_for_a_real_account(monkeypatch: pytest.MonkeyPatch) -> None:
    from migrations.files.bulk.staging import REHEARSAL_KEY_ENV, URL_ENV, own_staging
    from tests.identity.conftest import CONFIG
    from trust import ConfigError, load_trust

    monkeypatch.setenv(URL_ENV, "https://migx.blob.core.windows.net")
    monkeypatch.setenv(REHEARSAL_KEY_ENV, "a2V5")
    trust = load_trust(CONFIG)
    with pytest.raises(ConfigError, match="loopback"):
        own_staging(trust, trust.academy("hillside"))


def test_migration_api_without_staging_fails_each_copy_saying_why(tmp_path: Path) -> None:
    """engine: migration-api in a rehearsal without Azurite: exit 1, every copy fails naming what is missing,
    folders and the rest still go through Graph."""
    import json

    from sandbox.testing import running_sandbox
    from tests.bulk.conftest import BulkCli
    from tests.identity.conftest import bootstrapped

    cfg = bulk_config(tmp_path, "migration-api", "    onedrive: false\n")
    with running_sandbox(cfg, size=20, seed=4) as url:
        bootstrapped(str(url))
        cli = BulkCli(url, tmp_path / "state.db", cfg, {})
        cli("discover", "hillside")
        cli("run", "hillside", "--phase", "users", "--replan")
        proc = cli("run", "hillside", "--phase", "files", "--replan", "--json", check=False)
    assert proc.returncode == 1, proc.stderr
    failures = json.loads(proc.stdout)["failures"]
    assert failures and all("needs staging storage" in f["message"] for f in failures)
    assert "step(s) failed" in proc.stderr and "Traceback" not in proc.stderr


def test_rehearsal_key_needs_a_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-run Azurite account key is rehearsal-only: loopback storage is not enough, Graph must be a
    sandbox too."""
    from migrations.files.bulk.staging import REHEARSAL_KEY_ENV, URL_ENV, own_staging
    from tests.identity.conftest import CONFIG
    from trust import ConfigError, load_trust

    monkeypatch.delenv("TRUSTFOLD_GRAPH_URL", raising=False)
    monkeypatch.setenv(URL_ENV, "http://127.0.0.1:10000/trustfold")
    monkeypatch.setenv(REHEARSAL_KEY_ENV, "a2V5")
    trust = load_trust(CONFIG)
    with pytest.raises(ConfigError, match="only in a rehearsal against a sandbox"):
        own_staging(trust, trust.academy("hillside"))


def test_rehearsal_without_key_takes_the_user_delegation_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Azurite over HTTPS: no key is handed over; staging gets a token credential (the sandbox standing in
    for the operator's sign-in) and verifies TLS against the rehearsal's CA, never with verification off."""
    from migrations.files.bulk.staging import CA_ENV, REHEARSAL_KEY_ENV, URL_ENV, OwnStaging, own_staging
    from migrations.graph.sandbox_credential import SandboxCredential
    from tests.identity.conftest import CONFIG
    from trust import ConfigError, load_trust

    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv(URL_ENV, "https://127.0.0.1:10000/trustfold")
    monkeypatch.setenv(CA_ENV, str(ca))
    monkeypatch.delenv(REHEARSAL_KEY_ENV, raising=False)
    trust = load_trust(CONFIG)
    got = own_staging(trust, trust.academy("hillside"), "http://127.0.0.1:9")
    assert isinstance(got, OwnStaging) and isinstance(got.credential, SandboxCredential)
    assert got.rehearsal_key is None and got.verify == str(ca) and got.account == "trustfold"
    monkeypatch.setenv(URL_ENV, "https://migx.blob.core.windows.net")
    with pytest.raises(ConfigError, match="loopback storage only"):
        own_staging(trust, trust.academy("hillside"), "http://127.0.0.1:9")
    monkeypatch.setenv(CA_ENV, str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="is not a file"):
        own_staging(trust, trust.academy("hillside"))

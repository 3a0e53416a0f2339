"""The CLI frame: version, help without heavy imports, global options from the environment, JSON output,
and logs that never carry a registered secret."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import run
from tests.foundation.test_config_corpus import CONFIG

HEAVY = ("msgraph", "kiota_http", "pulumi", "pulumi_azure_native", "uvicorn", "azure.identity", "starlette")


def test_help_imports_no_heavy_sdk() -> None:
    code = (
        "import sys\nfrom cli.main import run\nrc = run(['--help'])\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\nprint('LOADED', loaded, rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "LOADED [] 0" in proc.stdout, proc.stdout + proc.stderr
    assert "discover" in proc.stdout and "rollback" in proc.stdout


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"]) == 0
    assert "trustfold, version" in capsys.readouterr().out


def test_academies_json_and_env_config_dir(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRUSTFOLD_CONFIG_DIR", str(CONFIG))
    assert run(["academies", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["code"] for r in rows] == ["brookfield", "hillside", "oakwood", "stmarys"]
    assert {"code", "name", "wave", "tenant_id"} <= set(rows[0]) and rows[0]["wave"] == 1


def test_config_show_json_has_derived_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--config-dir", str(CONFIG), "config", "show", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["trust"]["code"] == "nllt" and len(data["academies"]) == 4
    assert data["derived"]["academies"]["hillside"]["storage_account"].startswith("stnllthillside")


def test_unknown_academy_and_bad_option_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "s.db"
    assert (
        run(["--config-dir", str(CONFIG), "--state", str(state), "plan", "nosuch", "--phase", "users"]) == 2
    )
    assert "no academy with code 'nosuch'" in capsys.readouterr().err
    assert run(["--config-dir", str(CONFIG), "plan", "hillside", "--phase", "payroll"]) == 2
    assert "is not a phase" in capsys.readouterr().err
    assert run(["--graph-url", "ftp://x", "academies"]) == 2
    assert not state.exists()


def test_state_env_var(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRUSTFOLD_STATE", str(tmp_path / "env-state.db"))
    assert run(["--config-dir", str(CONFIG), "status", "--json"]) == 0
    assert (tmp_path / "env-state.db").exists()
    assert json.loads(capsys.readouterr().out)[0]["status"] == "not-started"


def test_json_logs_redact_a_registered_secret(capsys: pytest.CaptureFixture[str]) -> None:
    from cli.logs import configure
    from migrations.safety.redaction import register_secret

    canary = "canary-S3cret-value-7f1e"
    register_secret(canary)
    configure(verbose=False, fmt="json")
    log = logging.getLogger("trustfold.test")
    log.info("token is %s", canary)
    try:
        raise ValueError(f"bad credential {canary}")
    except ValueError:
        log.exception("failed")
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.strip().splitlines()]
    assert lines[0]["message"] == "token is ***REDACTED***" and lines[0]["level"] == "info"
    assert canary not in err and "***REDACTED***" in lines[1]["exception"]


def test_logs_mask_pre_authenticated_url_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    """Download and upload URLs carry their credential in the query string; no registration needed."""
    from cli.logs import configure

    configure(verbose=True, fmt="json")
    url = "http://127.0.0.1:1/_upload/t/s?tempauth=AbCdEf0123456789&v=2"
    logging.getLogger("trustfold.files").info("fragment sent to %s", url)
    err = capsys.readouterr().err
    assert "AbCdEf0123456789" not in err and "tempauth=***REDACTED***&v=2" in err


def test_client_secret_from_env_never_reaches_output(tmp_path: Path) -> None:
    """A real credential path: the secret is read from the variable named in config and registered, so an
    error that mentions it is redacted (and no Microsoft endpoint is contacted: the tenant fails first)."""
    canary = "zz9Q~canary-secret-value-0123456789abcdef"
    env = {
        **os.environ,
        "TRUSTFOLD_CONFIG_DIR": str(CONFIG),
        "TRUSTFOLD_STATE": str(tmp_path / "s.db"),
        "TRUSTFOLD_HILLSIDE_CLIENT_SECRET": canary,
    }
    env.pop("TRUSTFOLD_GRAPH_URL", None)
    env.pop("TRUSTFOLD_TRUST_CERTIFICATE_PATH", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cli.main import main; main()",
            "-v",
            "--log-format",
            "json",
            "discover",
            "hillside",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "TRUSTFOLD_TRUST_CERTIFICATE_PATH" in proc.stderr and "PEM certificate" in proc.stderr
    assert canary not in proc.stdout + proc.stderr


def test_text_logs_are_readable_and_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    from cli.logs import configure
    from migrations.safety.redaction import register_secret

    canary = "canary-Text-secret-41aa"
    register_secret(canary)
    configure(verbose=False, fmt="text")
    logging.getLogger("trustfold.test").warning("password was %s", canary)
    err = capsys.readouterr().err
    assert "password was ***REDACTED***" in err and canary not in err
    assert not err.lstrip().startswith("{")

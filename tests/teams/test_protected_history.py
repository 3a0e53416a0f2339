"""Where Microsoft has not approved the app for the protected Teams APIs, reading channel messages answers 403
(teams-protected-apis): preflight says so (without blocking the phase), and the run still carries teams and
channels, each channel whose history could not be read a finding, never a failed step."""

from __future__ import annotations

import json
from pathlib import Path

from sandbox.testing import running_sandbox
from tests.identity.conftest import CONFIG
from tests.teams.conftest import ACADEMY, identity_migrated


def test_unapproved_history_read_is_said_and_becomes_findings(tmp_path: Path) -> None:
    with running_sandbox(CONFIG, size=20, seed=3, teams_protected_api_approved=False) as url:
        w = identity_migrated(url, tmp_path / "state.db")
        pre = json.loads(w.cli("preflight", ACADEMY, "--json", check=False).stdout)
        probe = [c for c in pre["checks"] if c["check"] == "teams-history"]
        assert probe and "protected API" in probe[0]["result"], probe
        assert "teams-protected-apis" in probe[0]["fix"]
        out = w.run()
        assert out["status"] == "succeeded", out
        assert out["counts"]["messages"] == 0 and out["counts"]["channels"] > 0
        refused = w.rows("SELECT display FROM team_findings WHERE kind = 'history-not-readable'")
        assert len(refused) == out["counts"]["channels"]


def test_preflight_names_the_files_role_channel_files_need(tmp_path: Path) -> None:
    """channel-get-filesfolder lists Files.Read.All or Files.ReadWrite.All: with only Sites.* roles the
    legacy tenant's channel folders cannot be read, and preflight names the role for the teams phase."""
    import httpx

    with running_sandbox(CONFIG, size=20, seed=3, teams_protected_api_approved=True) as url:
        w = identity_migrated(url, tmp_path / "state.db")
        admin = f"{url}/sandbox/tenants/{w.source}/roles"
        httpx.post(admin, json={"withhold": ["Files.Read.All", "Files.ReadWrite.All"]}).raise_for_status()
        try:
            out = w.cli("preflight", ACADEMY, "--json", check=False)
            assert out.returncode == 1, out.stdout + out.stderr
            perm = [
                c for c in json.loads(out.stdout)["checks"] if c["check"] == "permissions" and not c["ok"]
            ]
            assert perm and "Files.Read.All (read channel files, teams)" in perm[0]["result"], perm
        finally:
            httpx.post(admin, json={"reset": True})

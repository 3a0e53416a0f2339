"""Issue 23, finding 2: a mapping line may `match` a trust object only as the mapping guard allows. Objects
trustfold did not create for the academy need `match-existing` in the acknowledge column; protected objects
(the break-glass group, role-assignable groups, conditional access exclusions, entra.protected_groups) never.
Plans name matched groups beside their ids. Through the CLI against the sandbox."""

from __future__ import annotations

import csv
import io
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.testing import SandboxURL, graph_client, running_sandbox
from tests.identity.conftest import CONFIG, TARGET, Cli, bootstrapped


@pytest.fixture
def world_url() -> Iterator[SandboxURL]:
    with running_sandbox(CONFIG, size=60, seed=3) as url:
        bootstrapped(str(url))
        yield url


@pytest.fixture
def hill(world_url: SandboxURL, tmp_path: Path) -> Cli:
    cli = Cli(str(world_url), tmp_path / "state.db")
    cli("discover", "hillside")
    return cli


def _export(cli: Cli) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(cli("mapping", "export", "hillside").stdout)))
    return rows[0], rows[1:]


def _write(path: Path, header: list[str], lines: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *lines])
    return path


def _year_group(body: list[list[str]]) -> list[str]:
    return next(r for r in body if r[0] == "group" and r[5] == "create" and "year" in r[3].lower())


def _trust_group(url: str, nickname: str) -> dict[str, Any]:
    with graph_client(url, TARGET) as c:
        found = c.get("/groups", params={"$filter": f"mailNickname eq '{nickname}'"}).json()["value"]
    assert len(found) == 1, nickname
    return dict(found[0])


def _refused(cli: Cli, path: Path) -> str:
    proc = cli("mapping", "import", "hillside", str(path), check=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_match_needs_acknowledgement_and_never_reaches_protected_groups(
    hill: Cli, world_url: SandboxURL, tmp_path: Path
) -> None:
    header, body = _export(hill)
    assert header[-1] == "acknowledge"
    year = _year_group(body)
    before = hill("mapping", "export", "hillside").stdout

    def line(nick: str, ack: str = "") -> list[str]:
        return [*year[:4], nick, "match", "", ack]

    # The break-glass group conditional access excludes from MFA: refused even when acknowledged.
    err = _refused(hill, _write(tmp_path / "glass.csv", header, [line("breakglass", "match-existing")]))
    assert "glass.csv:2: target_upn:" in err and "protected" in err and "break-glass group" in err
    # An existing trust group trustfold did not create: refused without the acknowledgement, with the fix.
    err = _refused(hill, _write(tmp_path / "plain.csv", header, [line("centralit")]))
    assert "plain.csv:2: acknowledge:" in err
    assert "write match-existing in this line's acknowledge column" in err and "Central IT" in err
    # A mapping file written before the guard (no acknowledge column) still reads; its match is refused alike.
    old = _write(tmp_path / "old.csv", header[:-1], [line("centralit")[:-1]])
    assert "old.csv:2: acknowledge:" in _refused(hill, old)
    # A role-assignable group (only those can hold Entra admin roles).
    with graph_client(str(world_url), TARGET) as c:
        r = c.post(
            "/groups",
            json={
                "displayName": "Trust Helpdesk Admins",
                "mailNickname": "helpdeskadmins",
                "mailEnabled": False,
                "securityEnabled": True,
                "isAssignableToRole": True,
            },
        )
        assert r.status_code == 201, r.text
    err = _refused(hill, _write(tmp_path / "role.csv", header, [line("helpdeskadmins", "match-existing")]))
    assert "role-assignable" in err and "role.csv:2: target_upn:" in err
    # Any group a conditional access policy excludes, whatever its name.
    leadership = _trust_group(str(world_url), "trustleadership")
    tenant = world_url.world.tenant(TARGET)
    tenant.ca_policies[0]["conditions"]["users"]["excludeGroups"].append(leadership["id"])
    err = _refused(hill, _write(tmp_path / "ca.csv", header, [line("trustleadership", "match-existing")]))
    assert "conditional access policy 'CA001: require MFA for staff and admins' excludes it" in err
    # Declared in config.
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    trust_yaml = config / "trust.yaml"
    trust_yaml.write_text(
        trust_yaml.read_text().replace(
            "  break_glass_group: Trust break-glass accounts",
            "  break_glass_group: Trust break-glass accounts\n  protected_groups: [Central IT]",
        )
    )
    declared = Cli(hill.url, hill.state)
    declared.env = lambda: {**Cli.env(hill), "TRUSTFOLD_CONFIG_DIR": str(config)}  # type: ignore[method-assign]
    err = _refused(declared, _write(tmp_path / "decl.csv", header, [line("centralit", "match-existing")]))
    assert "entra.protected_groups" in err
    # Conditional access unreadable (Policy.Read.All withheld): no match to a trust object can be checked.
    admin = f"{world_url}/sandbox/tenants/{TARGET}/roles"
    httpx.post(admin, json={"withhold": ["Policy.Read.All"]}).raise_for_status()
    try:
        err = _refused(hill, _write(tmp_path / "nopol.csv", header, [line("centralit", "match-existing")]))
        assert "Policy.Read.All" in err
        pre = hill("preflight", "hillside", check=False)
        assert pre.returncode == 1 and "Policy.Read.All" in pre.stdout + pre.stderr
    finally:
        httpx.post(admin, json={"reset": True})
    assert hill("mapping", "export", "hillside").stdout == before, "a refused file stores nothing"
    # Acknowledged: stored, exported with its acknowledgement, and the plan names the group beside its id.
    ok = hill(
        "mapping",
        "import",
        "hillside",
        str(_write(tmp_path / "ok.csv", header, [line("centralit", "match-existing")])),
    )
    assert "1 mapping line" in ok.stdout
    _, after = _export(hill)
    assert next(r for r in after if r[1] == year[1])[-1] == "match-existing"
    central = _trust_group(str(world_url), "centralit")
    plan = hill.json("plan", "hillside", "--phase", "identity")
    lines = [s["description"] for s in plan["steps"] if s["op"] == "add-members"]
    assert any(d.endswith(f"to 'Central IT (match:{central['id']})'") for d in lines), lines
    report = hill("report", "hillside", "--format", "md", "--out", "-").stdout
    assert "| group | " in report and "Central IT (centralit) | acknowledged (match-existing) |" in report


def test_plan_refuses_a_stored_match_the_guard_does_not_allow(
    hill: Cli, world_url: SandboxURL, tmp_path: Path
) -> None:
    """A match stored before the guard existed (no acknowledgement, here onto the break-glass group), or one
    whose object became protected after the import: the plan stops (exit 1) and names the mapping line."""
    header, body = _export(hill)
    year = _year_group(body)
    path = _write(tmp_path / "ok.csv", header, [[*year[:4], "centralit", "match", "", "match-existing"]])
    hill("mapping", "import", "hillside", str(path))
    assert hill("plan", "hillside", "--phase", "memberships", check=False).returncode == 0
    # Conditional access now excludes Central IT: the next plan refuses the match.
    central = _trust_group(str(world_url), "centralit")
    tenant = world_url.world.tenant(TARGET)
    tenant.ca_policies[1]["conditions"]["users"]["excludeGroups"].append(central["id"])
    proc = hill("plan", "hillside", "--phase", "memberships", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "ok.csv:2: target_upn:" in proc.stderr and "CA002" in proc.stderr, proc.stderr
    tenant.ca_policies[1]["conditions"]["users"]["excludeGroups"].remove(central["id"])
    # What the old import stored: a match onto the break-glass group, without acknowledgement.
    glass = _trust_group(str(world_url), "breakglass")
    db = sqlite3.connect(hill.state)
    with db:
        db.execute(
            "UPDATE mappings SET target_key = 'breakglass', data = ? "
            "WHERE academy = 'hillside' AND source_id = ?",
            (f'{{"target_id": "{glass["id"]}"}}', year[1]),
        )
    db.close()
    for phase in ("memberships", "identity"):
        proc = hill("plan", "hillside", "--phase", phase, check=False)
        assert proc.returncode == 1, proc.stdout
        assert "mapping guard" in proc.stderr and "break-glass group" in proc.stderr, proc.stderr
        assert "trustfold mapping import hillside" in proc.stderr
    run = hill("run", "hillside", "--phase", "memberships", "--replan", check=False)
    assert run.returncode == 1
    with graph_client(str(world_url), TARGET) as c:
        assert c.get(f"/groups/{glass['id']}/members").json()["value"] == [], "nothing put in break-glass"

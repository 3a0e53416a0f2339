"""The operator's journey through the real CLI: discover, map, plan, run, verify, status, rollback."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import stat
from pathlib import Path

import httpx

from tests.identity.conftest import TARGET, Cli, directory_view, snapshot

PHASES = ("users", "groups", "memberships")


def test_discover_reports_findings_and_maps_collisions(cli: Cli) -> None:
    """Awkward data is found and handled; the same names in two academies and in the trust tenant collide."""
    first = cli.json("discover", "hillside")
    kinds = {f["kind"] for f in first["findings"]}
    assert {"guest", "disabled-account", "uncreatable-group-type", "nested-group", "upn-characters"} <= kinds
    assert first["full"] is True
    cli("discover", "brookfield")
    rows = list(csv.DictReader(io.StringIO(cli("mapping", "export", "brookfield").stdout)))
    assert set(rows[0]) >= {"kind", "source_id", "source_upn", "display_name", "target_upn", "action", "note"}
    notes = [r["note"] for r in rows if r["kind"] == "user" and "taken" in r["note"]]
    assert any("academy 'hillside'" in n for n in notes), "a name shared with hillside must be numbered"
    targets = [r["target_upn"].lower() for r in rows if r["action"] == "create" and r["kind"] == "user"]
    assert len(targets) == len(set(targets))
    hill = list(csv.DictReader(io.StringIO(cli("mapping", "export", "hillside").stdout)))
    hill_targets = {r["target_upn"].lower() for r in hill if r["action"] == "create" and r["kind"] == "user"}
    assert not hill_targets & set(targets), "two academies never map onto one target UPN"
    # A pre-existing trust-tenant user is never matched silently: no create targets an existing UPN.
    existing = {u["userPrincipalName"].lower() for u in snapshot(cli.url)["users"]}
    assert not (hill_targets | set(targets)) & existing
    # A second discover reads only changes.
    again = cli.json("discover", "hillside")
    assert again["full"] is False
    assert again["changes"].get("users", 0) == 0


def test_run_all_phases_verify_and_status(cli: Cli, tmp_path: Path) -> None:
    cli("discover", "hillside")
    plan = cli.json("plan", "hillside", "--phase", "users")
    again = cli.json("plan", "hillside", "--phase", "users")
    assert {**plan, "created_at": None, "number": None} == {**again, "created_at": None, "number": None}, (
        "plans are deterministic"
    )
    assert again["number"] == plan["number"] + 1, "each plan is stored under the next number"
    assert plan["id"] == again["id"] and plan["digest"] == again["digest"]
    assert plan["counts"]["create-user"] == plan["counts"]["assign-licence"] > 0
    for phase in PHASES:
        result = cli.json("run", "hillside", "--phase", phase, "--replan")
        assert result["status"] == "succeeded", result
        assert result["counts"]["failed"] == 0
    verified = cli.json("verify", "hillside")
    assert verified["ok"] and verified["checked"] > plan["counts"]["create-user"]
    status = {(r["phase"]): r for r in cli.json("status", "hillside")}
    assert status["users"]["status"] == "done" and status["memberships"]["status"] == "done"
    # Running a phase again changes nothing.
    again = cli.json("run", "hillside", "--phase", "users", "--replan")
    assert again["counts"]["done"] == 0 and again["counts"]["planned"] == 0
    # Initial passwords: one 0600 file; never in the state store.
    files = list((tmp_path / "runs").glob("*-initial-passwords.csv"))
    assert len(files) == 1
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    passwords = [line.split(",", 1)[1] for line in files[0].read_text().splitlines()[1:]]
    raw = cli.state.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("state.db-*"))
    db = sqlite3.connect(cli.state)
    dump = "\n".join(db.iterdump())
    assert passwords and not any(p in dump or p.encode() in raw for p in passwords)
    audit = cli("audit", "hillside").stdout
    assert "run --phase users" in audit and "succeeded" in audit


def test_verify_finds_differences(cli: Cli) -> None:
    cli("discover", "oakwood")
    for phase in PHASES:
        cli("run", "oakwood", "--phase", phase, "--replan")
    users = cli.json("verify", "oakwood")
    assert users["ok"]
    # Someone removes a licence by hand: verify reports it and exits 1.
    victim = next(
        u
        for u in snapshot(cli.url)["users"]
        if u.get("assignedLicenses") and "northernlights" in u["userPrincipalName"] and u.get("employeeType")
    )
    token = httpx.post(
        f"{cli.url}/{TARGET}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "x",
            "client_secret": "y",
            "scope": "https://graph.microsoft.com/.default",
        },
    ).json()["access_token"]
    sku = victim["assignedLicenses"][0]["skuId"]
    r = httpx.post(
        f"{cli.url}/v1.0/users/{victim['id']}/assignLicense",
        headers={"Authorization": f"Bearer {token}"},
        json={"addLicenses": [], "removeLicenses": [sku]},
    )
    assert r.status_code == 200
    proc = cli("verify", "oakwood", check=False)
    assert proc.returncode == 1
    assert "not assigned" in proc.stdout and "difference" in proc.stderr


def test_rollback_restores_the_trust_tenant_exactly(cli: Cli) -> None:
    """After run and rollback --purge of all three phases, the trust tenant equals its pre-run snapshot."""
    before = snapshot(cli.url)
    cli("discover", "stmarys")
    for phase in PHASES:
        cli("run", "stmarys", "--phase", phase, "--replan")
    during = snapshot(cli.url)
    assert len(during["users"]) > len(before["users"])
    dry = cli("rollback", "stmarys", "--phase", "all")
    assert "run again with --yes" in dry.stdout
    assert snapshot(cli.url) == during, "without --yes nothing changes"
    cli("rollback", "stmarys", "--phase", "all", "--yes", "--purge")
    after = snapshot(cli.url)
    assert directory_view(after) == directory_view(before)
    assert after["users"] == before["users"] and after["groups"] == before["groups"]
    assert after["deletedItems"] == before["deletedItems"]
    # Idempotent: a second rollback finds nothing to do.
    again = json.loads(cli("rollback", "stmarys", "--phase", "all", "--yes", "--json").stdout)
    assert all(not e["steps"] for e in again)


def test_rollback_keeps_objects_changed_since(cli: Cli) -> None:
    cli("discover", "brookfield")
    cli("run", "brookfield", "--phase", "users", "--replan")
    created = [
        u
        for u in snapshot(cli.url)["users"]
        if u.get("employeeType") and u["userPrincipalName"].endswith("northernlights.org.uk")
    ]
    changed = created[0]
    token = httpx.post(
        f"{cli.url}/{TARGET}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "x",
            "client_secret": "y",
            "scope": "https://graph.microsoft.com/.default",
        },
    ).json()["access_token"]
    r = httpx.patch(
        f"{cli.url}/v1.0/users/{changed['id']}",
        headers={"Authorization": f"Bearer {token}"},
        json={"displayName": "Renamed By Headteacher"},
    )
    assert r.status_code == 204
    out = cli("rollback", "brookfield", "--phase", "users", "--yes")
    assert "1 kept" in out.stdout and "display name changed" in out.stdout
    left = {u["id"] for u in snapshot(cli.url)["users"]}
    assert changed["id"] in left


def test_mapping_import_validates_with_line_numbers(cli: Cli, tmp_path: Path) -> None:
    cli("discover", "hillside")
    text = cli("mapping", "export", "hillside").stdout
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    users = [r for r in body if r[0] == "user" and r[5] == "create"]

    def write(lines: list[list[str]]) -> Path:
        path = tmp_path / "mapping.csv"
        with path.open("w", newline="") as fh:
            csv.writer(fh).writerows([header, *lines])
        return path

    cases = [
        (
            [["user", "no-such-id", "x", "X", "x@northernlights.org.uk", "create", ""]],
            "mapping.csv:2:",
            "source_id",
        ),
        ([users[0], users[0]], "mapping.csv:3: source_id: user", "appears twice"),
        ([[*users[0][:4], "bad name@northernlights.org.uk", "create", ""]], "local part", "target_upn"),
        (
            [[*users[0][:4], "ok.name@elsewhere.example", "create", ""]],
            "not a domain of the trust",
            "target_upn",
        ),
        ([[*users[0][:4], "nobody.here@northernlights.org.uk", "match", ""]], "no user", "target_upn"),
        ([[*users[0][:4], users[0][4], "merge", ""]], "is not an action", "action"),
    ]
    stored_before = cli("mapping", "export", "hillside").stdout
    for lines, needle, column in cases:
        proc = cli("mapping", "import", "hillside", str(write(lines)), check=False)
        assert proc.returncode == 2, proc.stderr
        err = proc.stderr.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert needle in err and column in err and "mapping.csv:" in err
    assert cli("mapping", "export", "hillside").stdout == stored_before, "a rejected file stores nothing"
    # A valid edit: adopt an existing trust-tenant user with `match`.
    existing = next(
        u for u in snapshot(cli.url)["users"] if u["userPrincipalName"].startswith("olivia.jones")
    )
    olivia = next(r for r in users if r[4].startswith("olivia.jones"))
    ok = cli(
        "mapping",
        "import",
        "hillside",
        # The trust's own user (not created by trustfold for hillside): adopted only with acknowledgement.
        str(write([[*olivia[:4], existing["userPrincipalName"], "match", "same person", "match-existing"]])),
    )
    assert "1 mapping line" in ok.stdout
    plan = cli.json("plan", "hillside", "--phase", "users")
    assert not any(s["args"].get("source_id") == olivia[1] for s in plan["steps"]), "a match is never created"

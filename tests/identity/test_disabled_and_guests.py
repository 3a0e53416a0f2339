"""Issue 23, finding 3: with include_disabled and include_guests, a disabled account is carried disabled and
without a licence (no password handed out), and a guest is never created as a member or licensed as staff: it
is listed with what the operator must do. Through the CLI against the sandbox."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

from tests.identity.conftest import CONFIG, Cli, snapshot


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    hill = config / "academies" / "hillside.yaml"
    text = hill.read_text()
    assert "  users:\n    roles:" in text
    hill.write_text(
        text.replace(
            "  users:\n    roles:",
            "  users:\n    include_disabled: true\n    include_guests: true\n    roles:",
        )
    )
    return config


def test_disabled_stay_disabled_and_guests_stay_guests(sandbox: str, tmp_path: Path) -> None:
    config = _config(tmp_path)
    cli = Cli(sandbox, tmp_path / "state.db")
    cli.env = lambda: {**Cli.env(cli), "TRUSTFOLD_CONFIG_DIR": str(config)}  # type: ignore[method-assign]
    found = cli.json("discover", "hillside")
    source = {u["id"]: u for u in found_users(cli)}
    disabled = [
        u for u in source.values() if u.get("accountEnabled") is False and u.get("userType") != "Guest"
    ]
    guests = [u for u in source.values() if u.get("userType") == "Guest"]
    assert disabled and guests
    handling = {
        f["object_id"]: f["handling"] for f in found["findings"] if f["kind"] in ("guest", "disabled-account")
    }
    assert all("invite" in handling[g["id"]] for g in guests)
    assert all("disabled" in handling[u["id"]] and "no licence" in handling[u["id"]] for u in disabled)
    rows = list(csv.DictReader(io.StringIO(cli("mapping", "export", "hillside").stdout)))
    by_source = {r["source_id"]: r for r in rows}
    assert all(
        by_source[g["id"]]["action"] == "skip" and "invite" in by_source[g["id"]]["note"] for g in guests
    )
    # An edited mapping cannot create a guest as a member either (bad input: file, line, column).
    header = list(rows[0])
    edited = tmp_path / "guest.csv"
    with edited.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        g = by_source[guests[0]["id"]]
        w.writerow(
            [
                g["kind"],
                g["source_id"],
                g["source_upn"],
                g["display_name"],
                "guest.one@northernlights.org.uk",
                "create",
                "",
                "",
            ]
        )
    proc = cli("mapping", "import", "hillside", str(edited), check=False)
    assert proc.returncode == 2 and "guest.csv:2: action:" in proc.stderr and "invite" in proc.stderr, (
        proc.stderr
    )
    result = cli.json("run", "hillside", "--phase", "identity", "--replan")
    assert result["status"] == "succeeded", result
    target = {u["userPrincipalName"].lower(): u for u in snapshot(cli.url)["users"]}
    for u in disabled:
        upn = by_source[u["id"]]["target_upn"].lower()
        assert target[upn]["accountEnabled"] is False, upn
        assert target[upn]["assignedLicenses"] == [], upn
    guest_names = {g["displayName"] for g in guests}
    assert not [u for u in target.values() if u.get("displayName") in guest_names], "no guest became a member"
    passwords = next((tmp_path / "runs").glob("*-initial-passwords.csv")).read_text().lower()
    assert not any(by_source[u["id"]]["target_upn"].lower() in passwords for u in disabled)
    verified = cli.json("verify", "hillside")
    assert verified["ok"], verified["differences"][:5]
    report = cli("report", "hillside", "--format", "md", "--out", "-").stdout
    assert f"{len(disabled)} disabled carried disabled; {len(guests)} guests listed for invitation" in report


def found_users(cli: Cli) -> list[dict]:
    import json
    import sqlite3

    db = sqlite3.connect(cli.state)
    try:
        rows = db.execute(
            "SELECT data FROM inventory WHERE academy = 'hillside' AND kind = 'user' AND removed = 0"
        ).fetchall()
    finally:
        db.close()
    return [json.loads(r[0]) for r in rows]

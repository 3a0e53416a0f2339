"""Hostile display names in a legacy tenant, through the real CLI: discover, mapping export and import, plan,
reports and error messages. One small sandbox for the module; hostile names are set through Graph."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.testing import running_sandbox, token
from tests.hostile_text.spreadsheet import formula_cells, load
from tests.hostile_text.test_sanitise import CONTROL, INVISIBLE
from tests.identity.conftest import CONFIG, Cli, bootstrapped

ACADEMY = "hillside"
USER_NAMES = [
    '=HYPERLINK("http://evil.example/x","click")',
    "+SUM(1,2)",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "'Quoted O'Brien",
    "\x1b]8;;http://evil.example\x07click here\x1b]8;;\x07",
    "\x1b]52;c;ZXZpbA==\x07Clip Board",
    "\x1b]0;pwned title\x07Win Title",
    "\x1b[2J\x1b[HClear Screen",
    "Jo\u202eexe.txt",
    "Zero\u200bWidth",
    "Del\x7fete",
    "<b>Bold</b>\u200b & Co",
]
SPOOFED_FILE = "Admin/\u202etxt.exe"
GROUP_NAME = "\x1b]8;;http://evil.example\x07Staff\x1b]8;;\x07 \u202eGroup"


@dataclass
class Hostile:
    url: str
    cli: Cli
    state: Path
    users: dict[str, str]  # source id -> hostile display name
    given_name_id: str  # the user whose given name hides a zero-width space
    group_id: str
    discover_output: str

    def mapping_rows(self) -> list[tuple[Any, ...]]:
        """The mapping as reviewed: every column, and the data less the import's own bookkeeping (which file
        and line a row came from, kept so a stale row can be named; not part of the mapping itself)."""
        with sqlite3.connect(self.state) as db:
            rows = db.execute(
                "SELECT kind, source_id, source_key, display_name, target_key, action, note, data "
                "FROM mappings WHERE academy = ? ORDER BY kind, source_id",
                (ACADEMY,),
            ).fetchall()
        out = []
        for *cols, data in rows:
            fields = {
                k: v for k, v in json.loads(data or "{}").items() if k not in ("import_file", "import_line")
            }
            out.append((*cols, fields))
        return out


def _clean_terminal(text: str) -> None:
    assert not CONTROL.search(text.replace("\n", "")), "a control character reached the terminal"
    assert not INVISIBLE.search(text), "a bidi or zero-width character reached the terminal"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    tmp = tmp_path_factory.mktemp("hostile")
    with running_sandbox(CONFIG, size=20, seed=5) as url:
        bootstrapped(str(url))
        source = next(t["id"] for t in url.world.tenant_list() if t["academy"] == ACADEMY)
        # The legacy tenant already holds these names (synced from on-premises, typed by pupils): they are
        # seeded into its state as the generator seeds data, not written through Graph.
        tenant = url.world.tenants[source]
        users = [
            u
            for u in tenant.users.values()
            if u.get("userType") != "Guest" and u.get("accountEnabled") is not False
        ]
        named = {}
        for u, name in zip(users, USER_NAMES, strict=False):
            u["displayName"] = name
            named[u["id"]] = name
        assert len(named) == len(USER_NAMES)
        extra = users[len(USER_NAMES)]
        extra["givenName"] = "Ann\u200be"  # a zero-width space hidden in a given name
        # A security group with an owner: planning groups before users quotes its name in a note.
        group_id = next(
            gid
            for gid, g in tenant.groups.items()
            if g.get("securityEnabled") and not g.get("mailEnabled") and tenant.owners.get(gid)
        )
        tenant.groups[group_id]["displayName"] = GROUP_NAME
        # A file whose name is spoofed: shown as 'exe.txt', it is an executable.
        with httpx.Client(
            base_url=f"{url}/v1.0", headers={"Authorization": f"Bearer {token(url, source)}"}, timeout=60
        ) as g:
            site = next(
                x for x in g.get("/sites", params={"search": "staff"}).json()["value"] if x["name"] == "staff"
            )
            drive = g.get(f"/sites/{site['id']}/drive").json()["id"]
        r = httpx.post(
            f"{url}/sandbox/tenants/{source}/files",
            json={"drive": drive, "path": SPOOFED_FILE, "size": 10, "seed": "x"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        cli = Cli(str(url), tmp / "state.db")
        proc = cli("discover", ACADEMY)
        yield Hostile(
            str(url), cli, tmp / "state.db", named, extra["id"], group_id, proc.stdout + proc.stderr
        )


def test_hostile_names_reached_the_inventory(hostile: Hostile) -> None:
    """The input really is hostile: trustfold stored the names exactly as the tenant gave them."""
    with sqlite3.connect(hostile.state) as db:
        names = {
            json.loads(d)["displayName"]
            for (d,) in db.execute(
                "SELECT data FROM inventory WHERE academy = ? AND kind IN ('user', 'group')", (ACADEMY,)
            )
        }
    assert set(USER_NAMES) | {GROUP_NAME} <= names


def test_discover_prints_no_escape_and_records_spoofing_findings(hostile: Hostile) -> None:
    _clean_terminal(hostile.discover_output)
    assert "spoofing-characters:" in hostile.discover_output
    with sqlite3.connect(hostile.state) as db:
        (detail,) = db.execute(
            "SELECT detail FROM phase_status WHERE academy = ? AND phase = 'discover'", (ACADEMY,)
        ).fetchone()
    found = json.loads(detail)["findings"]
    spoofing = {f["object_id"]: f for f in found if f["kind"] == "spoofing-characters"}
    by_name = {name: sid for sid, name in hostile.users.items()}
    rlo = spoofing[by_name["Jo\u202eexe.txt"]]
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in rlo["message"]
    assert "removed" in rlo["handling"] and "target display name" in rlo["handling"]
    assert "U+200B ZERO WIDTH SPACE" in spoofing[by_name["Zero\u200bWidth"]]["message"]
    assert "U+007F DELETE" in spoofing[by_name["Del\x7fete"]]["message"]
    assert by_name["\x1b]52;c;ZXZpbA==\x07Clip Board"] in spoofing
    assert hostile.group_id in spoofing
    hidden = spoofing[hostile.given_name_id]
    assert hidden["message"] == "given name 'Ann\u200be' holds U+200B ZERO WIDTH SPACE"
    assert "target given name" in hidden["handling"]
    assert by_name["+SUM(1,2)"] not in spoofing, "a formula-looking name has no spoofing character"
    spoofed_file = [f for f in found if f["kind"] == "forbidden-name" and "\u202e" in f["display"]]
    assert len(spoofed_file) == 1, [f for f in found if f["kind"] == "forbidden-name"]
    assert "spoofing characters removed (U+202E RIGHT-TO-LEFT OVERRIDE)" in spoofed_file[0]["message"]
    assert spoofed_file[0]["handling"] == "copied as 'txt.exe'"
    # The target display names are the cleaned ones.
    with sqlite3.connect(hostile.state) as db:
        data = dict(
            db.execute("SELECT source_id, data FROM mappings WHERE academy = ?", (ACADEMY,)).fetchall()
        )
    assert json.loads(data[by_name["Jo\u202eexe.txt"]])["target_display_name"] == "Joexe.txt"
    assert json.loads(data[by_name["Del\x7fete"]])["target_display_name"] == "Del_ete"


def test_mapping_export_opens_in_a_spreadsheet_without_formulas(hostile: Hostile) -> None:
    proc = hostile.cli("mapping", "export", ACADEMY)
    _clean_terminal(proc.stdout + proc.stderr)
    wb = load(proc.stdout)
    assert formula_cells(wb) == []
    shown = [row[3].value for row in wb.active.iter_rows(min_row=2)]
    assert '\'=HYPERLINK("http://evil.example/x","click")' in shown
    assert "'+SUM(1,2)" in shown and "'@SUM(A1:A9)" in shown and "''Quoted O'Brien" in shown
    # What the old export wrote (the raw names) is what Excel would have run.
    buf = io.StringIO()
    csv.writer(buf).writerows([[n] for n in USER_NAMES[:5]])
    assert len(formula_cells(load(buf.getvalue()))) == 5


def test_export_then_import_changes_nothing(hostile: Hostile, tmp_path: Path) -> None:
    before = hostile.mapping_rows()
    out = tmp_path / "mapping.csv"
    hostile.cli("mapping", "export", ACADEMY, "--out", str(out))
    text = out.read_text(encoding="utf-8")
    proc = hostile.cli("mapping", "import", ACADEMY, str(out))
    assert f"{len(before)} mapping line(s) stored" in proc.stdout
    assert hostile.mapping_rows() == before
    with sqlite3.connect(hostile.state) as db:
        origins = {o for (o,) in db.execute("SELECT origin FROM mappings WHERE academy = ?", (ACADEMY,))}
    assert origins == {"imported"}, "the rows really were replaced by the imported ones"
    assert hostile.cli("mapping", "export", ACADEMY).stdout == text


def test_import_error_quoting_a_hostile_value_is_one_safe_line(hostile: Hostile, tmp_path: Path) -> None:
    text = hostile.cli("mapping", "export", ACADEMY).stdout.splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text(
        text[0] + "\n" + "\x1b]0;owned\x07user" + text[1][text[1].index(",") :] + "\n", encoding="utf-8"
    )
    proc = hostile.cli("mapping", "import", ACADEMY, str(bad), check=False)
    assert proc.returncode == 2
    assert "bad.csv:2: kind:" in proc.stderr and "is not a kind" in proc.stderr
    _clean_terminal(proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1


def test_plan_output_holds_no_escape_sequence(hostile: Hostile) -> None:
    groups = hostile.cli("plan", ACADEMY, "--phase", "groups", "--limit", "500")
    # The plan itself quotes the group's raw name in a note (owners not created yet) ...
    notes = json.loads(hostile.cli("plan", ACADEMY, "--phase", "groups", "--json").stdout)["notes"]
    assert any("\x1b]8;;" in n for n in notes)
    # ... but the terminal never sees it.
    _clean_terminal(groups.stdout + groups.stderr)
    assert "Staff \\u202eGroup" in groups.stdout
    users = hostile.cli("plan", ACADEMY, "--phase", "users", "--limit", "500")
    _clean_terminal(users.stdout + users.stderr)
    assert "(Joexe.txt, " in users.stdout
    steps = json.loads(hostile.cli("plan", ACADEMY, "--phase", "users", "--json").stdout)["steps"]
    args = {s["args"]["source_id"]: s["args"] for s in steps if s["op"] == "create-user"}
    assert args[hostile.given_name_id]["given_name"] == "Anne", "the target gets the cleaned given name"


@pytest.mark.parametrize("fmt", ["md", "html", "json"])
def test_reports_hold_no_control_characters(hostile: Hostile, fmt: str) -> None:
    text = hostile.cli("report", ACADEMY, "--format", fmt, "--out", "-").stdout
    assert not CONTROL.search(text.replace("\n", "").replace("\t", ""))
    assert not INVISIBLE.search(text)
    if fmt == "html":
        assert "<b>Bold</b>" not in text and "&lt;b&gt;Bold&lt;/b&gt;" in text
    if fmt == "json":
        # In JSON the escape is the standard one: the finding still says exactly what the tenant holds.
        displays = {f["display"] for a in json.loads(text)["academies"] for f in a["findings"]}
        assert any("\u202e" in d for d in displays)

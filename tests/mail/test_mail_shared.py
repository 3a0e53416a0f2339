"""Shared mailboxes through the CLI: unnamed ones (and archives, and what the APIs never expose) are findings
saying what to do, in the plan and the report; one named in the academy's config (the trust made its shared
mailbox first: Graph cannot) is carried like a person's mailbox, verified, passed again incrementally and
rolled back; a named target someone signs in with is refused; bad config is one line, exit 2. The tests share
one sandbox and run in file order."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.identity.conftest import CONFIG, TARGET
from tests.mail.conftest import ACADEMY, MailWorld, content
from tests.permissions.conftest import InProcessCli

SOURCE_OFFICE = "office@hillsideacademy.org.uk"
SOURCE_ADMISSIONS = "admissions@hillsideacademy.org.uk"
TRUST_OFFICE = "hillside.office@northernlights.org.uk"


def named_config(tmp: Path, pairs: list[tuple[str, str]], name: str = "config") -> Path:
    """A copy of config/ whose hillside.yaml names these shared mailboxes."""
    config = tmp / name
    if config.exists():
        shutil.rmtree(config)
    shutil.copytree(CONFIG, config)
    path = config / "academies" / "hillside.yaml"
    lines = "".join(f"      - {{source: {s}, target: {t}}}\n" for s, t in pairs)
    text = path.read_text().replace("phases:\n", f"phases:\n  mail:\n    shared_mailboxes:\n{lines}", 1)
    path.write_text(text)
    return config


@pytest.fixture(scope="module")
def world(users_done: MailWorld) -> MailWorld:
    """This module's sandbox (tests/mail/conftest.py): hillside discovered and its users migrated."""
    return users_done


def _with(w: MailWorld, config: Path) -> MailWorld:
    return MailWorld(w.url, InProcessCli(w.url, w.state, config), w.source, w.state)


def _findings(w: MailWorld) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for r in w.rows("SELECT kind, object_id, display, message, handling FROM mail_findings"):
        out.setdefault(r["kind"], []).append(dict(r))
    return out


def _source_box(w: MailWorld, address: str) -> dict[str, Any]:
    return next(
        m
        for m in w.admin(w.source, "/mailboxes")["mailboxes"]
        if m["kind"] == "shared" and m["address"] == address
    )


def test_unnamed_shared_and_archive_mailboxes_are_findings_in_the_plan_and_the_report(
    world: MailWorld,
) -> None:
    # Discovery shows them before anything moves, with their rules.
    shown = world.cli("discover", ACADEMY).stdout
    assert "mail-archive: 1 - not carried" in shown and "mail-unmapped: 2 - not carried" in shown, shown
    assert "mail-access-not-carried: 1 - not carried" in shown, shown
    found = world.cli.json("discover", ACADEMY)
    assert found["mapping"]["mailboxes"] > 0, found["mapping"]
    assert {"mail-archive", "mail-unmapped"} <= {f["kind"] for f in found["findings"]}
    plan = world.cli.json("plan", ACADEMY, "--phase", "mail")
    found = _findings(world)
    unnamed = {f["display"]: f for f in found["mail-unmapped"]}
    assert {SOURCE_OFFICE, SOURCE_ADMISSIONS} <= set(unnamed), found.keys()
    office = unnamed[SOURCE_OFFICE]["message"]
    # Says exactly what to do: make it in the trust (Graph cannot), name it in the config, run again.
    assert "cannot create a shared mailbox" in office and "Add a shared mailbox" in office
    assert f"config/academies/{ACADEMY}.yaml" in office and "phases.mail.shared_mailboxes" in office
    assert f"source: {SOURCE_OFFICE}" in office
    (archive,) = found["mail-archive"]
    assert "archive" in archive["message"] and archive["handling"] == "not carried"
    (access,) = found["mail-access-not-carried"]  # only people's mailboxes so far
    assert access["display"] == "primary mailboxes" and "delegates" in access["message"]
    notes = "\n".join(plan["notes"])
    for needle in (
        "mail-archive (not carried)",
        f"mail-unmapped (not carried): {SOURCE_OFFICE}",
        "delegates",
    ):
        assert needle in notes, plan["notes"]
    # The report carries them too (after a run the mail section exists).
    world.cli.json("run", ACADEMY, "--phase", "mail", "--replan")
    report = world.cli("report", ACADEMY, "--format", "md", "--out", "-").stdout
    assert "mail-archive" in report and "mail-unmapped" in report and "mail-access-not-carried" in report


def test_a_named_shared_mailbox_waits_for_the_trust_to_make_it(world: MailWorld, tmp_path: Path) -> None:
    w = _with(world, named_config(tmp_path, [(SOURCE_OFFICE, TRUST_OFFICE)]))
    plan = w.cli.json("plan", ACADEMY, "--phase", "mail")
    waiting = [f for f in _findings(w)["mail-target-missing"] if f["display"] == SOURCE_OFFICE]
    assert len(waiting) == 1 and waiting[0]["handling"] == "waiting"
    assert TRUST_OFFICE in waiting[0]["message"] and "Add a shared mailbox" in waiting[0]["message"]
    assert not any(s["args"]["display"] == SOURCE_OFFICE for s in plan["steps"])
    assert any(TRUST_OFFICE in n for n in plan["notes"])
    # No longer reported as unnamed: it is named.
    assert SOURCE_OFFICE not in {f["display"] for f in _findings(w)["mail-unmapped"]}


def test_a_named_shared_mailbox_is_carried_verified_passed_again_and_rolled_back(
    world: MailWorld, tmp_path: Path
) -> None:
    w = _with(world, named_config(tmp_path, [(SOURCE_OFFICE, TRUST_OFFICE)]))
    made = w.admin(
        TARGET,
        "/mailboxes",
        "POST",
        json={"kind": "shared", "address": TRUST_OFFICE, "displayName": "Office"},
    )
    src = _source_box(w, SOURCE_OFFICE)["id"]
    want = Counter(content(i) for i in w.items(w.source, src))
    assert want  # the generator fills the office
    result = w.cli.json("run", ACADEMY, "--phase", "mail", "--replan")
    assert result["status"] == "succeeded", result
    assert Counter(content(i) for i in w.items(TARGET, made["id"])) == want  # every item once
    row = w.rows("SELECT kind, target_mailbox FROM mail_mailboxes WHERE display = ?", (SOURCE_OFFICE,))
    assert [(r["kind"], r["target_mailbox"]) for r in row] == [("shared", made["id"])]
    kinds = {f["display"] for f in _findings(w)["mail-access-not-carried"]}
    assert kinds == {"primary mailboxes", "shared mailboxes"}
    verify = json.loads(w.cli("verify", ACADEMY, "--json", check=False).stdout)["mail"]
    assert verify["differences"] == [], verify
    # A second pass: only what arrived at the office since.
    w.admin(
        w.source,
        f"/mailboxes/{src}/items",
        "POST",
        json={"folder": "inbox", "props": {"class": "IPM.Note", "subject": "a parent wrote to the office"}},
    )
    again = w.cli.json("run", ACADEMY, "--phase", "mail", "--replan")
    assert again["counts"]["mail_items"] == 1, again["counts"]
    assert Counter(content(i) for i in w.items(TARGET, made["id"])) == Counter(
        content(i) for i in w.items(w.source, src)
    )
    (part,) = w.cli.json("rollback", ACADEMY, "--phase", "mail", "--yes")
    assert part["result"]["status"] == "succeeded", part
    assert w.items(TARGET, made["id"]) == []


def test_a_named_target_someone_signs_in_with_is_refused(world: MailWorld, tmp_path: Path) -> None:
    person = next(
        r["target_key"]
        for r in world.rows("SELECT target_key FROM mappings WHERE kind = 'user' AND action = 'create'")
    )
    w = _with(world, named_config(tmp_path, [(SOURCE_ADMISSIONS, person)]))
    plan = w.cli.json("plan", ACADEMY, "--phase", "mail")
    (refused,) = [f for f in _findings(w)["mail-shared-refused"] if f["display"] == SOURCE_ADMISSIONS]
    assert person in refused["message"] and "sign in" in refused["message"]
    assert not any(s["args"]["display"] == SOURCE_ADMISSIONS for s in plan["steps"])
    w.cli.json("run", ACADEMY, "--phase", "mail", "--replan")
    # Nothing of the admissions mailbox reached the person's (or any) trust mailbox.
    admissions = {content(i) for i in w.items(w.source, _source_box(w, SOURCE_ADMISSIONS)["id"])}
    assert admissions
    for box in w.admin(TARGET, "/mailboxes")["mailboxes"]:
        assert not admissions & {content(i) for i in w.items(TARGET, box["id"])}, box["address"]


@pytest.mark.parametrize(
    ("pairs", "field", "needle"),
    [
        ([("office@elsewhere.org.uk", TRUST_OFFICE)], "shared_mailboxes.0.source", "legacy_tenant.domains"),
        ([(SOURCE_OFFICE, "office@hillsideacademy.org.uk")], "shared_mailboxes.0.target", "trust tenant"),
        ([(SOURCE_OFFICE, TRUST_OFFICE), (SOURCE_OFFICE, "x@northernlights.org.uk")], ".1.source", "twice"),
        ([(SOURCE_OFFICE, TRUST_OFFICE), (SOURCE_ADMISSIONS, TRUST_OFFICE)], ".1.target", "already receives"),
        ([("not an address", TRUST_OFFICE)], "shared_mailboxes.0.source", "not an email address"),
    ],
)
def test_bad_shared_mailbox_config_is_one_line_and_exit_2(
    world: MailWorld, tmp_path: Path, pairs: list[tuple[str, str]], field: str, needle: str
) -> None:
    w = _with(world, named_config(tmp_path, pairs))
    before = w.rows("SELECT count(*) AS n FROM journal")[0]["n"]
    proc = w.cli("plan", ACADEMY, "--phase", "mail", check=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "hillside.yaml:" in lines[0] and field in lines[0] and needle in lines[0], lines[0]
    assert w.rows("SELECT count(*) AS n FROM journal")[0]["n"] == before

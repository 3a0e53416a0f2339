"""The mail phase end to end on hillside's mailboxes, through the CLI. The tests share one sandbox and run
in file order: a run killed once after an import landed (before its outcome was journaled) and once just
before an outcome's commit, resumed with nothing lost and nothing imported twice; verify; an incremental
pass (new, changed, deleted at source); an expired import URL renewed; deletions propagated on request;
rollback leaving the trust mailboxes as they were, the trust users' own items untouched."""

from __future__ import annotations

import json
import signal
from collections import Counter
from typing import Any

import httpx
import pytest

from migrations.core.killpoints import ENV as KILL
from tests.identity.conftest import TARGET
from tests.mail.conftest import (
    ACADEMY,
    MailWorld,
    content,
    copies,
    target_snapshot,
)
from tests.permissions.conftest import run_with

BEFORE: dict[str, set[str]] = {}


def _run(w: MailWorld, *extra: str) -> dict[str, Any]:
    result = w.cli.json("run", ACADEMY, "--phase", "mail", "--replan", *extra)
    assert isinstance(result, dict)
    return result


def _busy(w: MailWorld) -> tuple[str, str]:
    """A carried mailbox whose inbox holds a few items (most staff mailboxes are empty at this size)."""
    return next(p for p in sorted(w.pairs()) if len(_inbox_items(w, w.source, p[0])) >= 3)


def _inbox_items(w: MailWorld, tenant: str, mailbox: str) -> list[dict[str, Any]]:
    return [i for i in w.items(tenant, mailbox) if i["folder"] == "Inbox"]


def test_people_whose_trust_mailbox_is_not_provisioned_yet_wait_for_the_next_pass(
    users_done: MailWorld,
) -> None:
    w = users_done
    limits = f"{w.url}/sandbox/mail/limits"
    # Exchange provisions a licensed user's mailbox in the background, here an hour after the licence.
    httpx.post(limits, json={"mail_provision_delay_s": 3600}, timeout=30).raise_for_status()
    try:
        plan = w.cli.json("plan", ACADEMY, "--phase", "mail")
    finally:
        httpx.post(limits, json={"mail_provision_delay_s": 0}, timeout=30).raise_for_status()
    assert plan["steps"] == [], plan
    waiting = [n for n in plan["notes"] if "the trust user has no mailbox yet" in n]
    assert len(waiting) == len(w.rows("SELECT 1 FROM mail_mailboxes")), plan["notes"]
    kinds = Counter(r["kind"] for r in w.rows("SELECT kind FROM mail_findings"))
    assert kinds["mail-target-missing"] == len(waiting)


def test_a_killed_run_resumes_without_importing_anything_twice(users_done: MailWorld) -> None:
    w = users_done
    BEFORE.update(target_snapshot(w))
    # Killed after the third import POST was answered, before its outcome was journaled: in the trust
    # mailbox, unknown to the journal.
    proc = run_with(w.cli, {KILL: "mail.imported:3"}, "run", ACADEMY, "--phase", "mail", "--replan")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    in_doubt = w.rows(
        "SELECT step_key FROM journal WHERE phase = 'mail' GROUP BY step_key HAVING max(seq) = "
        "max(CASE WHEN event = 'intent' THEN seq END)"
    )
    assert in_doubt  # at least the killed one (imports into other folders may have been in flight too)
    # Killed again just before the commit of an outcome: the commit never happens.
    proc = run_with(
        w.cli, {KILL: "outcome:mail-import:2:before"}, "run", ACADEMY, "--phase", "mail", "--replan"
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    result = _run(w)
    assert result["status"] == "succeeded", result
    assert result["counts"]["mail_reconciled"] >= 1, result["counts"]
    want, got = copies(w, BEFORE)
    assert want and got == want  # every item once: none lost, none twice
    # Their mailboxes exist now: discovery's findings say so (none waiting any more).
    assert not w.rows("SELECT 1 FROM mail_findings WHERE kind = 'mail-target-missing'")


def test_verify_is_clean_per_folder(users_done: MailWorld) -> None:
    proc = users_done.cli("verify", ACADEMY, "--json", check=False)
    mail = json.loads(proc.stdout)["mail"]
    assert mail["checked"] > 0 and mail["differences"] == [], mail


def test_a_second_pass_carries_only_the_changes(users_done: MailWorld) -> None:
    w = users_done
    src, dst = _busy(w)
    inbox = _inbox_items(w, w.source, src)
    changed, deleted = inbox[0], inbox[1]
    w.admin(
        w.source,
        f"/mailboxes/{src}/items",
        "POST",
        json={"folder": "inbox", "props": {"class": "IPM.Note", "subject": "arrived after the first pass"}},
    )
    w.admin(
        w.source,
        f"/mailboxes/{src}/items/{changed['id']}",
        "PATCH",
        json={"props": {"subject": "edited at source"}},
    )
    w.admin(w.source, f"/mailboxes/{src}/items/{deleted['id']}", "DELETE")
    result = _run(w)
    c = result["counts"]
    assert (c["mail_items"], c["mail_updated"], c["mail_deletions_seen"], c["mail_deleted"]) == (
        1,
        1,
        1,
        0,
    ), c
    target = Counter(content(i) for i in w.items(TARGET, dst))
    new_src = next(
        i for i in w.items(w.source, src) if i["props"].get("subject") == "arrived after the first pass"
    )
    edited = next(i for i in w.items(w.source, src) if i["id"] == changed["id"])
    assert target[content(new_src)] == 1 and target[content(edited)] == 1
    assert target[content(deleted)] == 1  # deletions are reported, not propagated, by default
    kinds = {r["kind"] for r in w.rows("SELECT kind FROM mail_findings")}
    assert "mail-deleted-at-source" in kinds


def test_an_expired_import_url_is_renewed(users_done: MailWorld) -> None:
    w = users_done
    src, _ = _busy(w)
    w.admin(TARGET, "/expire", "POST", json={"sessions": True})
    w.admin(
        w.source,
        f"/mailboxes/{src}/items",
        "POST",
        json={"folder": "inbox", "props": {"class": "IPM.Note", "subject": "after the URL expired"}},
    )
    result = _run(w)
    assert result["status"] == "succeeded" and result["counts"]["mail_items"] == 1, result


def test_deletions_are_propagated_only_when_asked(users_done: MailWorld) -> None:
    w = users_done
    _run(w, "--propagate-deletes")
    # The deletion was read by the earlier pass; the delta link has moved on: a fresh deletion is needed.
    src, dst = _busy(w)
    victim = _inbox_items(w, w.source, src)[0]
    w.admin(w.source, f"/mailboxes/{src}/items/{victim['id']}", "DELETE")
    result = _run(w, "--propagate-deletes")
    assert result["counts"]["mail_deleted"] == 1, result["counts"]
    assert content(victim) not in Counter(content(i) for i in w.items(TARGET, dst))


def test_an_item_exchange_refuses_is_a_finding_and_the_run_goes_on(users_done: MailWorld) -> None:
    w = users_done
    src, _ = _busy(w)
    # A contact filed among mail: the source holds it, the trust's Inbox refuses it (a folder class the item
    # does not belong to), as Exchange refuses an item it cannot store.
    odd = w.admin(
        w.source,
        f"/mailboxes/{src}/items",
        "POST",
        json={"folder": "inbox", "props": {"class": "IPM.Contact", "displayName": "<script>x</script>"}},
    )
    w.admin(
        w.source,
        f"/mailboxes/{src}/items",
        "POST",
        json={"folder": "inbox", "props": {"class": "IPM.Note", "subject": "after the odd one"}},
    )
    result = _run(w)
    assert result["status"] == "succeeded", result
    assert (result["counts"]["mail_not_carried"], result["counts"]["mail_items"]) == (1, 1), result["counts"]
    refused = w.rows("SELECT kind, message FROM mail_findings WHERE object_id = ?", (odd["id"],))
    assert [r["kind"] for r in refused] == ["mail-import-refused"] and "IPF.Note" in refused[0]["message"]
    proc = w.cli("verify", ACADEMY, "--json", check=False)
    assert json.loads(proc.stdout)["mail"]["differences"] == []


def test_a_mailbox_throttled_at_its_limits_is_slowed_never_failed(users_done: MailWorld) -> None:
    w = users_done
    src, _ = _busy(w)
    for n in range(25):
        w.admin(
            w.source,
            f"/mailboxes/{src}/items",
            "POST",
            json={"folder": "inbox", "props": {"class": "IPM.Note", "subject": f"burst {n}"}},
        )
    limits = f"{w.url}/sandbox/mail/limits"
    httpx.post(
        limits, json={"outlook_requests": "20/2", "outlook_concurrency": 1, "mail_service_ms": 20}, timeout=30
    ).raise_for_status()
    try:
        result = _run(w)
    finally:
        refused = httpx.get(limits, timeout=30).json()["refused"]
        httpx.post(
            limits,
            json={"outlook_requests": "10000/600", "outlook_concurrency": 4, "mail_service_ms": 0},
            timeout=30,
        ).raise_for_status()
    assert result["status"] == "succeeded" and result["counts"]["mail_items"] == 25, result
    assert sum(refused.values()) > 0, refused  # the sandbox did throttle: the run waited it out


def test_rollback_leaves_the_trust_mailboxes_as_they_were(users_done: MailWorld) -> None:
    w = users_done
    _, dst = _busy(w)
    own = w.admin(
        TARGET,
        f"/mailboxes/{dst}/items",
        "POST",
        json={"folder": "inbox", "props": {"class": "IPM.Note", "subject": "the trust user's own"}},
    )
    # Killed just before the third undo's outcome commits: that delete happened, the journal does not know.
    proc = run_with(
        w.cli,
        {KILL: "undo-outcome:undo-mail-import:3:before"},
        "rollback",
        ACADEMY,
        "--phase",
        "mail",
        "--yes",
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    rolled = w.cli.json("rollback", ACADEMY, "--phase", "mail", "--yes")
    (part,) = rolled
    assert part["phase"] == "mail" and part["result"]["status"] == "succeeded", part
    assert part["result"]["counts"]["done"] > 0
    after = target_snapshot(w)
    for box, ids in BEFORE.items():
        assert after.get(box, set()) - {own["id"]} == ids, box
    assert own["id"] in after[dst]


@pytest.mark.parametrize("fmt", ["md"])
def test_the_report_has_a_mail_section(users_done: MailWorld, fmt: str) -> None:
    text = users_done.cli("report", ACADEMY, "--format", fmt, "--out", "-").stdout
    assert "Mail: " in text and " mailboxes, " in text, text[-2000:]


def test_rollback_after_a_killed_run_finds_the_import_left_in_doubt(users_done: MailWorld) -> None:
    w = users_done
    before = target_snapshot(w)
    # Killed after an import landed and before its outcome: the journal holds only its intent.
    proc = run_with(w.cli, {KILL: "mail.imported:2"}, "run", ACADEMY, "--phase", "mail", "--replan")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert target_snapshot(w) != before
    (part,) = w.cli.json("rollback", ACADEMY, "--phase", "mail", "--yes")
    assert part["result"]["status"] == "succeeded", part
    assert target_snapshot(w) == before

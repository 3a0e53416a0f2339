"""The mail phase reads a folder's items only where there is something to carry or compare (issue 22: the
demo carries and verifies every academy's ~250 mailboxes, most of them empty). The run skips a never-read
folder whose count (one folder list per mailbox, read now) is zero; verify skips a folder nothing was
carried into whose source count is zero. Mail arriving in such a folder later is still reported by verify
and carried by the next pass."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.mail.conftest import ACADEMY, TARGET, MailWorld
from tests.mail.test_mail_journey import _inbox_items, _run


def _source_gets(w: MailWorld) -> int:
    stats = httpx.get(f"{w.url}/sandbox/stats", params={"tenant": w.source}, timeout=30).json()
    return int(stats["tenants"][w.source]["by_method"].get("GET", 0))


def _folders(w: MailWorld) -> int:
    return len(w.rows("SELECT 1 FROM mail_folders"))


def test_run_and_verify_skip_empty_folders_and_new_mail_is_still_seen_and_carried(
    users_done: MailWorld,
) -> None:
    w = users_done
    before = _source_gets(w)
    result = _run(w)
    spent = _source_gets(w) - before
    assert result["status"] == "succeeded" and result["counts"]["mail_items"] > 0, result
    # An item delta per folder alone would read each folder at least once.
    assert spent < _folders(w), (spent, _folders(w))

    before = _source_gets(w)
    mail = json.loads(w.cli("verify", ACADEMY, "--json", check=False).stdout)["mail"]
    spent = _source_gets(w) - before
    assert mail["differences"] == [] and mail["checked"] > 0, mail
    # One folder list per mailbox and item listings for the few folders holding mail: far fewer reads than
    # folders checked (listing every folder's items read each at least once).
    assert spent < mail["checked"], (spent, mail["checked"])

    empty = next(src for src, _ in sorted(w.pairs()) if not _inbox_items(w, w.source, src))
    w.admin(
        w.source,
        f"/mailboxes/{empty}/items",
        "POST",
        json={"folder": "inbox", "props": {"class": "IPM.Note", "subject": "arrived after the run"}},
    )
    mail = json.loads(w.cli("verify", ACADEMY, "--json", check=False).stdout)["mail"]
    counts = [d for d in mail["differences"] if d["kind"] == "mail-count"]
    assert len(counts) == 1 and "1 items at source, 0 carried" in counts[0]["message"], mail

    # The next pass finds it (the folder's first delta) and verify is clean again.
    assert _run(w)["counts"]["mail_items"] == 1
    mail = json.loads(w.cli("verify", ACADEMY, "--json", check=False).stdout)["mail"]
    assert mail["differences"] == [], mail


def test_discovery_reads_several_peoples_mailboxes_at_once_and_keeps_their_order() -> None:
    """Discovery no longer waits on one person's three reads before the next person's (a unit test on a
    stand-in connection: no timing, the most reads in flight at once is counted)."""
    import asyncio
    from typing import Any

    from migrations.graph.client import GraphResponse
    from migrations.graph.mailbox_window import MailboxWindows
    from migrations.graph.outlook_gate import OutlookGate
    from migrations.mail.discovery import READ_AHEAD, Person, _read_ahead

    class Conn:
        in_flight = most = 0
        outlook_gate = OutlookGate()  # the connection's Outlook gate, which the reads name

        async def request(self, method: str, path: str, **kw: Any) -> GraphResponse:
            Conn.in_flight += 1
            Conn.most = max(Conn.most, Conn.in_flight)
            await asyncio.sleep(0)  # an answer takes a turn of the loop: others may be sent meanwhile
            Conn.in_flight -= 1
            if path.endswith("/settings/exchange"):  # /users/{id}/settings/exchange
                return GraphResponse(200, {}, {"primaryMailboxId": f"mbx-{path.split('/')[2]}"})
            mailbox = path.split("/")[4]  # /admin/exchange/mailboxes/{id}/folders
            return GraphResponse(200, {}, {"value": [{"id": f"inbox-{mailbox}", "totalItemCount": 1}]})

        def relative(self, url: str) -> str:
            return url

    persons = [Person(f"u{i}", f"u{i}@school", f"t{i}") for i in range(20)]
    conn: Any = Conn()
    got = asyncio.run(_read_ahead(persons, conn, conn, MailboxWindows()))
    assert list(got) == [p.source_user for p in persons]
    assert got["u3"][1] == {"primaryMailboxId": "mbx-t3"} and got["u3"][2][0]["id"] == "inbox-mbx-u3"
    assert 1 < Conn.most <= READ_AHEAD


def test_verify_checks_several_mailboxes_at_once_and_reports_in_mailbox_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """verify_mail's mailboxes side by side (a stand-in per-mailbox check counts how many run at once),
    uncarried mailboxes left out, differences and counts summed in mailbox order."""
    import asyncio
    from typing import Any

    from migrations.core.store import StateStore
    from migrations.graph.mailbox_window import MailboxWindows
    from migrations.mail import records, verify
    from migrations.mail.records import Mailbox

    boxes = [Mailbox(f"m{i}", "primary", f"u{i}", f"u{i}@school", f"t{i}", f"tm{i}", 0, 0) for i in range(12)]
    boxes.append(Mailbox("m-waiting", "primary", "ux", "ux@school", None, None, 0, 0))
    monkeypatch.setattr(records, "mailboxes", lambda store, code: boxes)
    running = {"now": 0, "most": 0}

    async def check(*args: Any) -> tuple[int, int, list[dict[str, str]]]:
        m = args[5]
        assert m.target_mailbox, "an uncarried mailbox is not verified"
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
        await asyncio.sleep(0)
        running["now"] -= 1
        return 2, 1, [{"kind": "k", "object": m.source_mailbox, "message": ""}]

    monkeypatch.setattr(verify, "_verify_mailbox", check)
    store = StateStore.open(tmp_path / "s.db")
    conn: Any = object()
    got = asyncio.run(verify.verify_mail(store, "hillside", conn, conn, MailboxWindows()))
    store.close()
    assert [d["object"] for d in got["differences"]] == [f"m{i}" for i in range(12)]
    assert (got["checked"], got["sampled"]) == (24, 12)
    assert 1 < running["most"] <= verify.VERIFY_AHEAD


def test_run_lists_each_mailbox_s_folders_once_and_mail_arriving_after_discovery_is_carried(
    users_done: MailWorld,
) -> None:
    """Issue 24's demo cost: `run --replan` listed each source mailbox's folders twice (the plan, then the
    run for the counts). The run now decides from the counts the plan read moments before, so one folder
    list per mailbox. Mail landing in an empty folder after `discover` (before the run) is still carried."""
    w = users_done
    assert w.cli.json("discover", ACADEMY)  # the demo discovers first, then runs each phase with --replan
    empty = next(src for src, _ in sorted(w.pairs()) if not _inbox_items(w, w.source, src))
    w.admin(
        w.source,
        f"/mailboxes/{empty}/items",
        "POST",
        json={"folder": "inbox", "props": {"class": "IPM.Note", "subject": "arrived after discovery"}},
    )
    before = _source_gets(w)
    result = _run(w)
    spent = _source_gets(w) - before
    assert result["status"] == "succeeded", result
    assert any(
        i["props"].get("subject") == "arrived after discovery"
        for i in _inbox_items(w, TARGET, dict(w.pairs())[empty])
    )
    people = len(w.rows("SELECT 1 FROM mappings WHERE kind = 'user'"))
    mailboxes = len(w.rows("SELECT 1 FROM mail_mailboxes"))
    holding = len(w.rows("SELECT 1 FROM mail_folders WHERE items > 0"))
    # Each user's exchangeSettings, one folder walk per mailbox (its list and each parent's childFolders)
    # and the item delta of each folder holding mail.
    lists = mailboxes + len(
        w.rows(
            "SELECT DISTINCT source_mailbox, parent_folder FROM mail_folders WHERE parent_folder IS NOT NULL"
        )
    )
    # Unmapped accounts' settings and pages of deltas (two a folder at most here) besides; a second folder
    # walk per mailbox (133 source reads before, 89 after, in this world) passes the bound.
    assert spent <= people + lists + 2 * holding + 4, (spent, people, lists, holding)


def test_the_plan_takes_the_trust_mailboxes_the_wait_just_read() -> None:
    """The mail run's mailbox wait reads every trust user's exchangeSettings; the plan straight after asks
    only those it did not answer for (a stand-in connection counts the reads)."""
    import asyncio
    from typing import Any

    from migrations.graph.client import GraphResponse
    from migrations.graph.mailbox_window import MailboxWindows
    from migrations.graph.outlook_gate import OutlookGate
    from migrations.mail.discovery import Person, _read_ahead

    asked: list[str] = []

    class Conn:
        outlook_gate = OutlookGate()  # the connection's Outlook gate, which the reads name

        async def request(self, method: str, path: str, **kw: Any) -> GraphResponse:
            asked.append(path)
            if path.endswith("/settings/exchange"):
                return GraphResponse(200, {}, {"primaryMailboxId": f"mbx-{path.split('/')[2]}"})
            return GraphResponse(200, {}, {"value": []})

        def relative(self, url: str) -> str:
            return url

    persons = [Person(f"u{i}", f"u{i}@school", f"t{i}") for i in range(4)]
    conn: Any = Conn()
    known = {"t0": {"primaryMailboxId": "mbx-known-t0"}, "t2": {"primaryMailboxId": "mbx-known-t2"}}
    got = asyncio.run(_read_ahead(persons, conn, conn, MailboxWindows(), known))
    assert got["u0"][1] == {"primaryMailboxId": "mbx-known-t0"} and got["u1"][1] == {
        "primaryMailboxId": "mbx-t1"
    }
    trust_reads = sorted(p for p in asked if p.startswith("/users/t"))
    assert trust_reads == ["/users/t1/settings/exchange", "/users/t3/settings/exchange"]

"""Mail verify lists a folder's items only where there is something to compare (issue 22: the demo verifies
every academy's ~250 mailboxes, most of them empty): a folder nothing was carried into and whose source
count (read with the folder list) is zero has no item on either side. A folder that gains an item at source
after the run is still reported."""

from __future__ import annotations

import json

import httpx

from tests.mail.conftest import ACADEMY, MailWorld
from tests.mail.test_mail_journey import _inbox_items, _run


def _source_gets(w: MailWorld) -> int:
    stats = httpx.get(f"{w.url}/sandbox/stats", params={"tenant": w.source}, timeout=30).json()
    return int(stats["tenants"][w.source]["by_method"].get("GET", 0))


def test_verify_skips_empty_untouched_folders_and_still_sees_new_mail(users_done: MailWorld) -> None:
    w = users_done
    _run(w)
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

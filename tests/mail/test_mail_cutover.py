"""The pass after the domain cut-over, through the CLI: mail runs, mail keeps arriving at the academy's tenant
(people's and the office's shared mailbox) while the domain moves, the domain phase runs to completion, and
the mail pass run then carries exactly what arrived in between, once, and verifies clean. The cut-over moves
the academy's addresses; the pass still finds every mailbox (by ids, never by address)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.domain.conftest import (  # noqa: F401 - the domain tests' fixtures: identity done and verified
    LEGACY,
    TRUST,
    Cli,
    env,
    exchange_readdress,
    prepared,
    publish,
)

OFFICE = "office@hillsideacademy.org.uk"
TRUST_OFFICE = "hillside.office@northernlights.org.uk"


def _admin(url: str, tenant: str, path: str, method: str = "GET", **kw: Any) -> Any:
    r = httpx.request(method, f"{url}/sandbox/tenants/{tenant}/mail{path}", timeout=60, **kw)
    assert r.status_code < 300, r.text
    return r.json() if r.content else None


def _items(url: str, tenant: str, mailbox: str) -> list[dict[str, Any]]:
    return list(_admin(url, tenant, f"/mailboxes/{mailbox}/items")["items"])


def _content(item: dict[str, Any]) -> tuple[str, str, str]:
    return (item["folder"], item["type"], json.dumps(item["props"], sort_keys=True))


def _arrive(url: str, mailbox: str, subject: str) -> None:
    _admin(
        url,
        LEGACY,
        f"/mailboxes/{mailbox}/items",
        "POST",
        json={"folder": "inbox", "props": {"class": "IPM.Note", "subject": subject}},
    )


def _pairs(state: Path) -> list[tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(state) as db:
        return list(
            db.execute(
                "SELECT source_mailbox, target_mailbox FROM mail_mailboxes WHERE target_mailbox IS NOT NULL"
            )
        )


def test_the_pass_after_the_cut_over_carries_what_arrived_in_between(
    env: tuple[str, Cli],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    url, base = env
    config = tmp_path / "config-shared"
    shutil.copytree(base.config, config)
    academy = config / "academies" / "hillside.yaml"
    entry = f"      - {{source: {OFFICE}, target: {TRUST_OFFICE}}}\n"
    academy.write_text(
        academy.read_text().replace("phases:\n", f"phases:\n  mail:\n    shared_mailboxes:\n{entry}", 1)
    )
    cli = Cli(url, base.state, config)
    office = _admin(
        url,
        TRUST,
        "/mailboxes",
        "POST",
        json={"kind": "shared", "address": TRUST_OFFICE, "displayName": "Office"},
    )
    first = json.loads(cli("run", "hillside", "--phase", "mail", "--replan", "--json").out)
    assert first["status"] == "succeeded", first
    pairs = _pairs(base.state)
    assert any(dst == office["id"] for _, dst in pairs)
    busy = [src for src, _ in pairs if _items(url, LEGACY, src)][:2]
    src_office = next(src for src, dst in pairs if dst == office["id"])
    cli("verify", "hillside")

    # Mail keeps arriving at the academy while the domain moves: before the cut-over starts, and while the
    # trust waits for the verification record.
    for box in (*busy, src_office):
        _arrive(url, box, "before the cut-over")
    exchange_readdress(url)
    cli("plan", "hillside", "--phase", "domain")
    waiting = json.loads(cli("run", "hillside", "--phase", "domain", "--json").out)
    assert waiting["status"] == "waiting-for-dns", waiting
    for box in (*busy, src_office):
        _arrive(url, box, "while the domain moved")
    publish(url)
    done = json.loads(cli("run", "hillside", "--phase", "domain", "--dns-wait", "30", "--json").out)
    assert done["status"] == "succeeded", done

    last = json.loads(cli("run", "hillside", "--phase", "mail", "--replan", "--json").out)
    assert last["status"] == "succeeded", last
    arrived = 2 * len((*busy, src_office))
    assert (last["counts"]["mail_items"], last["counts"]["mail_updated"]) == (arrived, 0), last["counts"]
    for src, dst in _pairs(base.state):
        want = Counter(_content(i) for i in _items(url, LEGACY, src))
        got = Counter(_content(i) for i in _items(url, TRUST, dst))
        assert got == want, src  # every item once: nothing missed in between, nothing twice
    verify = json.loads(cli("verify", "hillside", "--json", check=False).out)["mail"]
    assert verify["checked"] > 0 and verify["differences"] == [], verify

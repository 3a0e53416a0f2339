"""Mail tests: the real CLI against a real sandbox whose academies hold mailboxes (staff, shared, an
archive, hostile items), users migrated first so the trust users' mailboxes exist."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.testing import running_sandbox
from tests.identity.conftest import CONFIG, TARGET, bootstrapped
from tests.permissions.conftest import InProcessCli

ACADEMY = "hillside"


@dataclass
class MailWorld:
    url: str
    cli: InProcessCli
    source: str
    state: Path

    def admin(self, tenant: str, path: str, method: str = "GET", **kw: Any) -> Any:
        if method != "GET" and "json" not in kw:
            kw["json"] = {}
        r = httpx.request(method, f"{self.url}/sandbox/tenants/{tenant}/mail{path}", timeout=60, **kw)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    def items(self, tenant: str, mailbox: str) -> list[dict[str, Any]]:
        return list(self.admin(tenant, f"/mailboxes/{mailbox}/items")["items"])

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with sqlite3.connect(self.state) as db:
            db.row_factory = sqlite3.Row
            return db.execute(sql, params).fetchall()

    def pairs(self) -> list[tuple[str, str]]:
        """(source mailbox, target mailbox) of every mailbox the phase carries."""
        return [
            (r["source_mailbox"], r["target_mailbox"])
            for r in self.rows(
                "SELECT source_mailbox, target_mailbox FROM mail_mailboxes WHERE target_mailbox IS NOT NULL"
            )
        ]

    def not_carried(self) -> set[str]:
        return {r["object_id"] for r in self.rows("SELECT object_id FROM mail_findings")}


def content(item: dict[str, Any]) -> tuple[str, str, str]:
    """What an item is, whichever mailbox holds it: folder path, class and its fields."""
    return (item["folder"], item["type"], json.dumps(item["props"], sort_keys=True))


def copies(w: MailWorld, before: dict[str, set[str]]) -> tuple[Counter[Any], Counter[Any]]:
    """Source items (less those reported as not carried) and the target items that were not there before
    the phase ran, each as a multiset of content: equal means every item arrived exactly once."""
    want: Counter[Any] = Counter()
    got: Counter[Any] = Counter()
    skip = w.not_carried()
    for src, dst in w.pairs():
        want.update(content(i) for i in w.items(w.source, src) if i["id"] not in skip)
        got.update(content(i) for i in w.items(TARGET, dst) if i["id"] not in before.get(dst, set()))
    return want, got


def target_snapshot(w: MailWorld) -> dict[str, set[str]]:
    boxes = w.admin(TARGET, "/mailboxes")["mailboxes"]
    return {m["id"]: {i["id"] for i in w.items(TARGET, m["id"])} for m in boxes}


@pytest.fixture(scope="module")
def users_done(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailWorld]:
    """One sandbox for the module: hillside discovered and its users (with licences) migrated."""
    tmp = tmp_path_factory.mktemp("mail")
    # Exchange provisions a licensed user's mailbox in the background; here at once (the wait has its test).
    with running_sandbox(CONFIG, size=20, seed=3, mail_provision_delay_s=0.0) as url:
        bootstrapped(str(url))
        source = next(t["id"] for t in url.world.tenant_list() if t["academy"] == ACADEMY)
        w = MailWorld(str(url), InProcessCli(str(url), tmp / "state.db"), source, tmp / "state.db")
        w.cli("discover", ACADEMY)
        w.cli("run", ACADEMY, "--phase", "users", "--replan")
        yield w

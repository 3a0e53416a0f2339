"""Mail items and folders killed at every commit boundary the mail phase names (the kill hook, never timing):
`intent:` and `outcome:` of mail-folder, mail-import and mail-update (before and after each COMMIT) and the
named point `mail.imported` (the import POST answered, its outcome not yet journaled). Resumed, every source
item is in its trust mailbox exactly once (nothing lost, nothing imported twice); rolled back - straight after
the crash, or itself killed at each `undo-` boundary and run again - the trust mailboxes are as they were.
One representative runs by default; the sweep is slow."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.testing import running_sandbox
from tests.crash.harness import Trustfold
from tests.identity.conftest import CONFIG, TARGET, bootstrapped

ACADEMY = "hillside"


@dataclass
class Tenants:
    url: str
    source: str
    template: Trustfold  # users migrated; copied for every case
    before: dict[str, tuple[int, Counter[Any]]]  # the trust mailboxes before any mail run
    before_ids: dict[str, set[str]]  # and their items' ids

    def admin(self, tenant: str, path: str, method: str = "GET", **kw: Any) -> Any:
        r = httpx.request(method, f"{self.url}/sandbox/tenants/{tenant}/mail{path}", timeout=60, **kw)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    def boxes(self, tenant: str) -> dict[str, tuple[int, Counter[Any]]]:
        """Each mailbox of the tenant: its folder count and a multiset of what its items are (folder, class,
        fields)."""
        return {
            m["id"]: (
                int(m["folders"]),
                Counter(_content(i) for i in self.admin(tenant, f"/mailboxes/{m['id']}/items")["items"]),
            )
            for m in self.admin(tenant, "/mailboxes")["mailboxes"]
        }


def _content(item: dict[str, Any]) -> tuple[str, str, str]:
    return (item["folder"], item["type"], json.dumps(item["props"], sort_keys=True))


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenants]:
    home = tmp_path_factory.mktemp("mail-crash")
    with running_sandbox(CONFIG, size=20, seed=3, throttling=False, mail_provision_delay_s=0.0) as url:
        bootstrapped(str(url))
        source = next(t["id"] for t in url.world.tenant_list() if t["academy"] == ACADEMY)
        template = Trustfold(str(url), home / "template.db")
        template.ok("discover", ACADEMY)
        template.ok("run", ACADEMY, "--phase", "users")
        t = Tenants(str(url), source, template, {}, {})
        # Exchange provisions the trust users' mailboxes when first asked for (a plan's discovery asks).
        template.fork(home / "throwaway.db").ok("plan", ACADEMY, "--phase", "mail")
        t.before = t.boxes(TARGET)
        assert t.before
        t.before_ids = {
            m: {i["id"] for i in t.admin(TARGET, f"/mailboxes/{m}/items")["items"]} for m in t.before
        }
        yield t


def _pairs(tf: Trustfold) -> list[tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(tf.state) as db:
        return list(
            db.execute(
                "SELECT source_mailbox, target_mailbox FROM mail_mailboxes WHERE target_mailbox IS NOT NULL"
            )
        )


def _each_item_once(t: Tenants, tf: Trustfold) -> None:
    """Every source item (less those reported as not carried) once in its trust mailbox, nothing else new."""
    import sqlite3

    with sqlite3.connect(tf.state) as db:
        skip = {r[0] for r in db.execute("SELECT object_id FROM mail_findings")}
    now = t.boxes(TARGET)
    pairs = _pairs(tf)
    assert pairs
    for src, dst in pairs:
        items = t.admin(t.source, f"/mailboxes/{src}/items")["items"]
        want = Counter(_content(i) for i in items if i["id"] not in skip)
        got = now[dst][1] - t.before.get(dst, (0, Counter()))[1]
        assert got == want, f"{src}: lost {want - got}, twice or stray {got - want}"


def _as_before(t: Tenants) -> None:
    assert t.boxes(TARGET) == t.before, "the rollback left the trust mailboxes changed"


def _forward(t: Tenants, tmp_path: Path, kill: str, undo_kill: str | None = None) -> None:
    tf = t.template.fork(tmp_path / "state.db")
    tf.killed("run", ACADEMY, "--phase", "mail", at=kill)
    tf.ok("run", ACADEMY, "--phase", "mail")
    _each_item_once(t, tf)
    if undo_kill:
        tf.killed("rollback", ACADEMY, "--phase", "mail", "--yes", at=undo_kill)
    tf.ok("rollback", ACADEMY, "--phase", "mail", "--yes")
    _as_before(t)


def _crash_then_rollback(t: Tenants, tmp_path: Path, kill: str) -> None:
    """Killed with a step in doubt, then rolled back without resuming: what the crashed run made goes."""
    tf = t.template.fork(tmp_path / "state.db")
    tf.killed("run", ACADEMY, "--phase", "mail", at=kill)
    tf.ok("rollback", ACADEMY, "--phase", "mail", "--yes")
    _as_before(t)


def _update_pass(t: Tenants, tmp_path: Path, kill: str) -> None:
    """A second pass updating a changed item in place, killed at a mail-update boundary, then resumed."""
    tf = t.template.fork(tmp_path / "state.db")
    tf.ok("run", ACADEMY, "--phase", "mail")
    src = next(s for s, _ in _pairs(tf) if t.admin(t.source, f"/mailboxes/{s}/items?folder=inbox")["items"])
    item = t.admin(t.source, f"/mailboxes/{src}/items?folder=inbox")["items"][0]
    original = item["props"]
    t.admin(t.source, f"/mailboxes/{src}/items/{item['id']}", "PATCH", json={"props": {"subject": "edited"}})
    try:
        tf.killed("run", ACADEMY, "--phase", "mail", "--replan", at=kill)
        tf.ok("run", ACADEMY, "--phase", "mail", "--replan")
        _each_item_once(t, tf)
        tf.ok("rollback", ACADEMY, "--phase", "mail", "--yes")
        _as_before(t)
    finally:
        # The source as the other cases expect it (a change, not a new item: the same content again), and
        # the trust mailboxes emptied of anything a failed case left, so one failure is reported once.
        t.admin(t.source, f"/mailboxes/{src}/items/{item['id']}", "PATCH", json={"props": original})
        tf("rollback", ACADEMY, "--phase", "mail", "--yes")
        for box in t.admin(TARGET, "/mailboxes")["mailboxes"]:
            for i in t.admin(TARGET, f"/mailboxes/{box['id']}/items")["items"]:
                if i["id"] not in t.before_ids.get(box["id"], set()):
                    t.admin(TARGET, f"/mailboxes/{box['id']}/items/{i['id']}", "DELETE")


FORWARD = (
    "intent:mail-folder:1:before",
    "intent:mail-folder:1:after",
    "outcome:mail-folder:1:before",
    "outcome:mail-folder:1:after",
    "intent:mail-import:1:before",
    "intent:mail-import:1:after",
    "mail.imported:1",
    "outcome:mail-import:1:before",
    "outcome:mail-import:1:after",
    # Later imports, with several mailboxes' imports in flight side by side.
    "mail.imported:7",
    "outcome:mail-import:7:before",
)
UNDO = (
    "undo-intent:undo-mail-import:1:before",
    "undo-intent:undo-mail-import:1:after",
    "undo-outcome:undo-mail-import:1:before",
    "undo-outcome:undo-mail-import:1:after",
    "undo-intent:undo-mail-folder:1:before",
    "undo-intent:undo-mail-folder:1:after",
    "undo-outcome:undo-mail-folder:1:before",
    "undo-outcome:undo-mail-folder:1:after",
)
# An update that landed and whose outcome was never journaled ("mail.imported:1", "outcome:…:before"): the
# resumed run finds the copy's change key moved since it was recorded and records the update, never sending it
# again (these two failed, with an extra copy, before transfer.py reconciled in-doubt updates).
UPDATE = (
    "intent:mail-update:1:before",
    "intent:mail-update:1:after",
    "mail.imported:1",
    "outcome:mail-update:1:before",
    "outcome:mail-update:1:after",
)


# The default run's representative: the import landed, its outcome's commit never happened (the in-doubt
# import, found by elimination on resume), then a rollback killed before its first undo's outcome commits.
def test_an_import_killed_before_its_outcome_commits_resumes_once_and_rolls_back(
    tenants: Tenants, tmp_path: Path
) -> None:
    _forward(tenants, tmp_path, "outcome:mail-import:1:before", "undo-outcome:undo-mail-import:1:before")


@pytest.mark.slow
@pytest.mark.parametrize("kill", FORWARD)
def test_forward_kill_sweep(tenants: Tenants, tmp_path: Path, kill: str) -> None:
    _forward(tenants, tmp_path, kill)


@pytest.mark.slow
@pytest.mark.parametrize("kill", FORWARD)
def test_crash_then_rollback_sweep(tenants: Tenants, tmp_path: Path, kill: str) -> None:
    _crash_then_rollback(tenants, tmp_path, kill)


@pytest.mark.slow
@pytest.mark.parametrize("undo_kill", UNDO)
def test_rollback_kill_sweep(tenants: Tenants, tmp_path: Path, undo_kill: str) -> None:
    _forward(tenants, tmp_path, "outcome:mail-import:1:after", undo_kill)


@pytest.mark.slow
@pytest.mark.parametrize("kill", UPDATE)
def test_update_kill_sweep(tenants: Tenants, tmp_path: Path, kill: str) -> None:
    _update_pass(tenants, tmp_path, kill)

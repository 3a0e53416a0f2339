"""Verify reads users and groups side by side (bounded, answers kept in the mapping's order) and still names
a group that lost a member in the trust tenant after the run."""

from __future__ import annotations

import json

import httpx

from migrations.core.journal import Journal
from migrations.core.store import StateStore
from sandbox.testing import token
from tests.identity.conftest import TARGET, Cli, snapshot


def test_verify_names_a_group_missing_a_member(cli: Cli) -> None:
    cli("discover", "oakwood")
    for phase in ("users", "groups", "memberships"):
        cli("run", "oakwood", "--phase", phase, "--replan")
    assert cli.json("verify", "oakwood")["ok"]
    store = StateStore.open(cli.state)
    created = {
        str(h["target_id"])
        for h in Journal.state(store, "oakwood", "groups").values()
        if h["event"] == "done" and h["op"] == "create-group"
    }
    store.close()
    members = snapshot(cli.url)["members"]
    gid = sorted(g for g in created if len(members.get(g, [])) > 1)[-1]
    headers = {"Authorization": f"Bearer {token(cli.url, TARGET)}"}
    r = httpx.delete(f"{cli.url}/v1.0/groups/{gid}/members/{members[gid][0]}/$ref", headers=headers)
    assert r.status_code == 204, r.text
    proc = cli("verify", "oakwood", "--json", check=False)
    assert proc.returncode == 1
    found = json.loads(proc.stdout)["differences"]
    assert [(d["kind"], d["message"]) for d in found] == [("group", "1 expected member(s) missing")], found

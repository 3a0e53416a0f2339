"""Verify after the cut-over reads the renamed and switched users twenty to a $batch; it still names a user
whose sign-in name was changed since, on either side."""

from __future__ import annotations

import json

from migrations.core.journal import Journal
from migrations.core.store import StateStore
from tests.domain.conftest import DOMAIN, LEGACY, TRUST, Cli, exchange_readdress, publish


def test_verify_names_users_whose_upn_changed_after_the_cut_over(env: tuple[str, Cli]) -> None:
    url, cli = env
    exchange_readdress(url)
    cli("plan", "hillside", "--phase", "domain")
    assert (
        json.loads(cli("run", "hillside", "--phase", "domain", "--json").out)["status"] == "waiting-for-dns"
    )
    publish(url)
    cli("run", "hillside", "--phase", "domain", "--dns-wait", "30")
    assert json.loads(cli("verify", "hillside", "--json").out)["ok"] is True

    trust, legacy = url.world.tenant(TRUST), url.world.tenant(LEGACY)  # type: ignore[attr-defined]
    store = StateStore.open(cli.state)
    done = [h for h in Journal.state(store, "hillside", "domain").values() if h["event"] == "done"]
    store.close()
    ids = {
        op: sorted(h["data"]["args"]["id"] for h in done if h["op"] == op)
        for op in ("switch-upn", "rename-user")
    }
    switched, renamed = ids["switch-upn"], ids["rename-user"]
    assert len(switched) > 20 and renamed  # more than one $batch
    trust.users[switched[-1]]["userPrincipalName"] = "someone.else@" + DOMAIN
    legacy_user = legacy.users[renamed[0]]
    legacy_user["userPrincipalName"] = "moved.again@" + legacy_user["userPrincipalName"].partition("@")[2]

    res = cli("verify", "hillside", "--json", check=False)
    assert res.code == 1
    found = [d for d in json.loads(res.out)["domain"]["differences"] if d["kind"] == "user"]
    assert sorted(d["message"] for d in found) == sorted(
        [f"UPN is someone.else@{DOMAIN}", f"UPN is {legacy_user['userPrincipalName']}"]
    ), found

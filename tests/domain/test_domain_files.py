"""Issue 23 finding 7: after a cut-over with keep_academy_domain the trust users' UPNs change; the files
phase finds their OneDrives by the trust user's id, never by the UPN the mapping recorded before it."""

from __future__ import annotations

import json

from tests.domain.conftest import Cli, exchange_readdress, publish


def test_onedrives_are_found_by_id_after_the_cut_over(env: tuple[str, Cli]) -> None:
    url, cli = env
    cli("provision-onedrive", "hillside")
    first = json.loads(cli("run", "hillside", "--phase", "files", "--replan", "--json").out)
    assert first["status"] == "succeeded", first
    before = json.loads(cli("verify", "hillside", "--json").out)["files"]
    assert before["differences"] == [] and before["checked"] > 0, before
    assert len(before["drives"]) > 2, "OneDrives as well as the staff library"

    exchange_readdress(url)
    cli("plan", "hillside", "--phase", "domain")
    waiting = json.loads(cli("run", "hillside", "--phase", "domain", "--json").out)
    assert waiting["status"] == "waiting-for-dns", waiting
    publish(url)
    cli("run", "hillside", "--phase", "domain", "--dns-wait", "30")
    assert any(
        u["userPrincipalName"].endswith("@hillsideacademy.org.uk")
        for u in url.world.tenant("6f1c2a4e-8b7d-4c3e-9a10-2b5d7e9f0a11").users.values()  # type: ignore[attr-defined]
    ), "the cut-over renamed the trust users"

    res = cli("verify", "hillside", "--json", check=False)
    after = json.loads(res.out)["files"]
    assert res.code == 0 and after["differences"] == [], after["differences"][:3]
    assert after["checked"] == before["checked"] and after["drives"] == before["drives"], (before, after)

    plan = json.loads(cli("plan", "hillside", "--phase", "files", "--json").out)
    assert not any("no OneDrive" in n for n in plan["notes"]), plan["notes"]
    assert plan["counts"] == {} or not plan["counts"].get("copy"), plan["counts"]

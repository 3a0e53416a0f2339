"""A domain cut-over whose removal from the legacy tenant takes longer than any single run.

Microsoft: the removal "is an asynchronous background task ... It may take up to 24 hours to complete"
(learn.microsoft.com/entra/identity/users/domains-manage, FAQ). The phase checkpoints at waiting-for-removal
(exit 0, shown by `status`), resumes on the next run, and legacy users keep a working sign-in name throughout.
"""

from __future__ import annotations

import json
import time

import httpx

from tests.domain.conftest import DOMAIN, LEGACY, TRUST, Cli, exchange_readdress, publish


def _status(cli: Cli) -> tuple[str, str | None]:
    rows = json.loads(cli("status", "hillside", "--json").out)
    row = next(r for r in rows if r["phase"] == "domain")
    return row["status"], row["waiting_since"]


def _slow_removal(url: str, seconds: float) -> None:
    r = httpx.post(f"{url}/sandbox/faults", json={"domain_removal_s": seconds}, timeout=30)
    r.raise_for_status()


def _legacy_sign_in_names_work(url: str) -> None:
    """Every legacy account that used the domain signs in with its onmicrosoft.com name, still enabled."""
    legacy = url.world.tenant(LEGACY)  # type: ignore[attr-defined]
    initial = next(d["id"] for d in legacy.domains if d.get("isInitial"))
    verified = {d["id"].lower() for d in legacy.domains if d.get("isVerified")}
    for u in legacy.users.values():
        domain = u["userPrincipalName"].rsplit("@", 1)[1].lower()
        assert domain in verified or "#ext#" in u["userPrincipalName"].lower(), u["userPrincipalName"]
        assert not u["userPrincipalName"].lower().endswith("@" + DOMAIN)
    assert any(u["userPrincipalName"].endswith("@" + initial) for u in legacy.users.values())


def _wait_removed(url: str) -> None:
    legacy = url.world.tenant(LEGACY)  # type: ignore[attr-defined]
    from sandbox.domains_state import settle

    deadline = time.monotonic() + 30
    while any(d["id"] == DOMAIN for d in legacy.domains):
        assert time.monotonic() < deadline
        time.sleep(0.2)
        settle(url.world)  # type: ignore[attr-defined]


def test_removal_longer_than_a_run_checkpoints_and_resumes(env: tuple[str, Cli]) -> None:
    url, cli = env
    _slow_removal(url, 6)
    exchange_readdress(url)
    cli("plan", "hillside", "--phase", "domain")
    res = cli("run", "hillside", "--phase", "domain", "--removal-wait", "1", "--json")
    out = json.loads(res.out)
    assert res.code == 0 and out["status"] == "waiting-for-removal", out
    assert any("up to 24 hours" in n and "again later" in n for n in out["notes"]), out["notes"]
    status, since = _status(cli)
    assert status == "waiting-for-removal" and since
    text = cli("status", "hillside").out
    assert f"waiting-for-removal since {since}" in text, text
    legacy = url.world.tenant(LEGACY)  # type: ignore[attr-defined]
    assert any(d["id"] == DOMAIN for d in legacy.domains)  # still being removed
    _legacy_sign_in_names_work(url)

    # Run again before Microsoft has finished: the removal is not asked for again, same checkpoint.
    res = cli("run", "hillside", "--phase", "domain", "--removal-wait", "1")
    assert res.code == 0 and "waiting-for-removal" in res.out
    assert _status(cli)[0] == "waiting-for-removal"
    report = cli("report", "hillside", check=False)
    assert report.code == 0

    _wait_removed(url)
    _legacy_sign_in_names_work(url)
    res = cli("run", "hillside", "--phase", "domain", "--json")
    assert json.loads(res.out)["status"] == "waiting-for-dns"
    publish(url)
    cli("run", "hillside", "--phase", "domain", "--dns-wait", "30")
    assert _status(cli)[0] == "done"
    trust = url.world.tenant(TRUST)  # type: ignore[attr-defined]
    assert next(d for d in trust.domains if d["id"] == DOMAIN)["isVerified"] is True


def test_rollback_while_the_removal_is_pending_waits_for_it(env: tuple[str, Cli]) -> None:
    url, cli = env
    _slow_removal(url, 6)
    moved = exchange_readdress(url)
    cli("plan", "hillside", "--phase", "domain")
    cli("run", "hillside", "--phase", "domain", "--removal-wait", "1")
    assert _status(cli)[0] == "waiting-for-removal"

    # No way to cancel the removal: rollback stops too, and renames nobody back onto the leaving domain.
    res = cli("rollback", "hillside", "--phase", "domain", "--yes", "--removal-wait", "1")
    assert res.code == 0
    assert _status(cli)[0] == "waiting-for-removal"
    _legacy_sign_in_names_work(url)

    _wait_removed(url)
    res = cli("rollback", "hillside", "--phase", "domain", "--yes")
    assert _status(cli)[0] == "waiting-for-dns"
    publish(url, tenant=LEGACY)
    cli("rollback", "hillside", "--phase", "domain", "--yes", "--dns-wait", "30")
    assert _status(cli)[0] == "rolled-back"
    legacy = url.world.tenant(LEGACY)  # type: ignore[attr-defined]
    assert next(d for d in legacy.domains if d["id"] == DOMAIN)["isVerified"] is True
    assert any(u["userPrincipalName"].endswith("@" + DOMAIN) for u in legacy.users.values())
    assert moved

"""Crashes and error paths: SIGKILL at seeded commit boundaries in every step resumes with nothing renamed
twice or lost; the one-line errors operators meet."""

from __future__ import annotations

import json
import random
import signal
from collections import Counter

import pytest

from migrations.core.store import StateStore
from sandbox.domains_state import verification_text
from tests.domain.conftest import DOMAIN, LEGACY, TRUST, Cli, exchange_readdress, publish, withdraw

RUN = ("run", "hillside", "--phase", "domain", "--dns-wait", "20")
REPLAN = (*RUN, "--replan")
ROLLBACK = ("rollback", "hillside", "--phase", "domain", "--yes", "--dns-wait", "20")


def _until_clean(cli: Cli, args: tuple[str, ...], rng: random.Random, kills: int) -> int:
    """Run `args` with a SIGKILL at a random commit boundary up to `kills` times (a run that reaches its
    end first ends the loop), then once more to the end."""
    killed = 0
    for _ in range(kills):
        proc = cli.subprocess(*args, kill=f"*:{rng.randint(1, 5)}")  # the Nth boundary of any kind
        if proc.returncode != -signal.SIGKILL:
            assert proc.returncode == 0, proc.stderr
            return killed
        killed += 1
    assert cli(*args).code == 0
    return killed


def _sweep(env: tuple[str, Cli], seed: int, kills: int) -> None:
    url, cli = env
    rng = random.Random(seed)
    exchange_readdress(url)
    cli("plan", "hillside", "--phase", "domain")  # the plan the runs apply, reviewed once
    killed = _until_clean(cli, RUN, rng, kills)  # renames, removal, add: to the DNS checkpoint
    publish(url)
    killed += _until_clean(cli, RUN, rng, kills)  # verify, switch
    assert killed >= 2, "no run was interrupted; the test proved nothing"
    store = StateStore.open(cli.state)
    rows = store.rows("SELECT step_key, data FROM journal WHERE phase = 'domain' AND event = 'done'")
    sent = Counter(r["step_key"] for r in rows if json.loads(r["data"])["status"] == "done")
    assert sent and max(sent.values()) == 1, sent.most_common(3)  # nothing applied twice
    # A step whose answer a kill swallowed is found applied on resume ("already"), never sent again.
    done = Counter(r["step_key"] for r in rows)
    legacy, trust = url.world.tenant(LEGACY), url.world.tenant(TRUST)  # type: ignore[attr-defined]
    assert not any(u["userPrincipalName"].endswith("@" + DOMAIN) for u in legacy.users.values())
    switched = sum(1 for u in trust.users.values() if u["userPrincipalName"].endswith("@" + DOMAIN))
    assert switched == sum(1 for k in done if k.startswith("switch:"))  # nothing lost
    renamed = sum(1 for k in done if k.startswith("rename:"))
    plan = json.loads(cli("plan", "hillside", "--phase", "domain", "--json").out)
    assert renamed == plan["counts"]["rename-user"]  # every planned rename journaled exactly once


def test_sigkill_at_seeded_boundaries_resumes_exactly(env: tuple[str, Cli]) -> None:
    _sweep(env, seed=0, kills=2)  # killed twice: the resume itself meets a journal with renames done


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_sigkill_sweep(env: tuple[str, Cli], seed: int) -> None:
    _sweep(env, seed=seed, kills=6)
    url, cli = env
    rng = random.Random(seed + 100)
    before = {u["id"] for u in url.world.tenant(TRUST).users.values()}  # type: ignore[attr-defined]
    killed = _until_clean(cli, ROLLBACK, rng, 4)  # trust side undone, domain re-added to the legacy tenant
    withdraw(url, verification_text(TRUST, DOMAIN))
    publish(url, tenant=LEGACY)
    killed += _until_clean(cli, ROLLBACK, rng, 4)  # legacy verified, default back, users renamed back
    assert killed >= 1
    legacy, trust = url.world.tenant(LEGACY), url.world.tenant(TRUST)  # type: ignore[attr-defined]
    assert not any(d["id"] == DOMAIN for d in trust.domains)
    store = StateStore.open(cli.state)
    trail = [
        (r["event"], r["run_id"][:30], r["data"][:80])
        for r in store.rows("SELECT * FROM journal WHERE step_key = 'default:legacy' ORDER BY seq")
    ]
    assert next(d for d in legacy.domains if d["id"] == DOMAIN)["isDefault"] is True, trail
    assert not any(u["userPrincipalName"].endswith("@" + DOMAIN) for u in trust.users.values())
    assert {u["id"] for u in trust.users.values()} == before
    store = StateStore.open(cli.state)
    undone = Counter(
        r["step_key"]
        for r in store.rows("SELECT step_key, data FROM journal WHERE phase = 'domain' AND event = 'undone'")
        if json.loads(r["data"])["status"] == "done"
    )
    assert max(undone.values()) == 1  # nothing undone twice


def test_identity_phases_not_done_is_named(env: tuple[str, Cli], tmp_path) -> None:  # type: ignore[no-untyped-def]
    url, cli = env
    fresh = Cli(url, tmp_path / "fresh.db", cli.config)
    res = fresh("run", "hillside", "--phase", "domain", "--replan", check=False)
    assert res.code == 1
    assert res.err.strip() == (
        "error: the domain phase for hillside needs its identity phases done and verified first: "
        "users (not-started), groups (not-started), memberships (not-started), verify (not-started)"
    )


def test_domain_verified_elsewhere_stops_with_one_line(env: tuple[str, Cli]) -> None:
    url, cli = env
    exchange_readdress(url)
    other = url.world.tenant("2b3c4d5e-0002-4f6a-9b0c-1d2e3f4a5b62") or next(  # type: ignore[attr-defined]
        t
        for t in url.world.tenants.values()
        if t.id not in (LEGACY, TRUST)  # type: ignore[attr-defined]
    )
    other.domains.append({"id": DOMAIN, "isVerified": True, "isDefault": False, "isInitial": False})
    res = cli(*REPLAN, check=False)
    assert res.code == 1
    assert res.err.strip().splitlines()[-1] == (
        f"error: {DOMAIN} is verified in another tenant, so the trust tenant cannot add it: "
        "it must first be removed there"
    )


def test_more_renames_than_one_write_window_continue_in_the_next(env: tuple[str, Cli]) -> None:
    url, cli = env
    exchange_readdress(url)
    res = cli(*REPLAN, "--write-budget", "8/1", "--json")
    out = json.loads(res.out)
    assert out["status"] == "waiting-for-dns" and out["counts"]["failed"] == 0
    assert out["counts"]["renamed"] > 8 * 2  # at least three windows' worth, none refused
    legacy = url.world.tenant(LEGACY)  # type: ignore[attr-defined]
    assert not any(u["userPrincipalName"].endswith("@" + DOMAIN) for u in legacy.users.values())

"""The domain cut-over end to end against the sandbox: plan, run to the DNS checkpoint, publish, run to
completion, verify, roll back to the snapshot from before the phase (DNS aside)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx

from migrations.core.store import StateStore
from migrations.domain import runbook
from tests.domain.conftest import (
    DOMAIN,
    LEGACY,
    TRUST,
    Cli,
    exchange_readdress,
    publish,
    snapshot,
    withdraw,
)


def _status(cli: Cli) -> str:
    rows = json.loads(cli("status", "hillside", "--json").out)
    return next(r["status"] for r in rows if r["phase"] == "domain")


def test_plan_run_dns_checkpoint_publish_complete_verify_rollback(env: tuple[str, Cli]) -> None:
    url, cli = env
    before = {t: snapshot(url, t) for t in (LEGACY, TRUST)}
    plan = json.loads(cli("plan", "hillside", "--phase", "domain", "--json").out)
    ops = plan["counts"]
    assert ops["rename-user"] > 20 and ops["switch-upn"] > 20, ops  # more than one $batch of renames
    assert any("mail-enabled group(s) are owned by Exchange" in n for n in plan["notes"])

    # Exchange-owned groups block the removal until an Exchange admin readdresses them: named, exit 1.
    res = cli("run", "hillside", "--phase", "domain", check=False)
    assert res.code == 1 and "Exchange" in res.err and "Set-UnifiedGroup" in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1 and "nothing was changed" in res.err
    assert snapshot(url, LEGACY) == before[LEGACY]
    moved = exchange_readdress(url)

    res = cli("run", "hillside", "--phase", "domain", "--json")
    out = json.loads(res.out)
    assert out["status"] == "waiting-for-dns"
    record = out["counts"]["dns_records"][0]
    assert record["name"] == DOMAIN and record["text"].startswith("MS=ms")
    change = Path(cli.state).parent / "runs" / "dns-change-hillside.txt"
    assert f'{DOMAIN}. 3600 IN TXT "{record["text"]}"' in change.read_text()
    assert stat.S_IMODE(change.stat().st_mode) == 0o600
    assert _status(cli) == "waiting-for-dns"
    legacy = url.world.tenant(LEGACY)
    assert DOMAIN not in {d["id"] for d in legacy.domains}
    assert not any(u["userPrincipalName"].endswith("@" + DOMAIN) for u in legacy.users.values())

    # DNS not published in time: exit 1, one line, status unchanged; run again later.
    res = cli("run", "hillside", "--phase", "domain", "--dns-wait", "1", check=False)
    assert res.code == 1 and "not visible in DNS" in res.err and "run again" in res.err
    assert _status(cli) == "waiting-for-dns"

    cli("plan", "hillside", "--phase", "domain")  # reviewing the plan again must not lose the checkpoint

    text = publish(url, delay=0.5)  # propagation delay: the run polls with backoff until it resolves
    assert text == record["text"]
    res = cli("run", "hillside", "--phase", "domain", "--dns-wait", "30")
    assert _status(cli) == "done"
    trust = url.world.tenant(TRUST)
    assert next(d for d in trust.domains if d["id"] == DOMAIN)["isVerified"] is True
    switched = [u for u in trust.users.values() if u["userPrincipalName"].endswith("@" + DOMAIN)]
    assert len(switched) == ops["switch-upn"]
    res = cli("verify", "hillside", "--json")
    assert json.loads(res.out)["ok"] is True

    # Runbook: timestamped events, the DNS wait, the staff notice.
    store = StateStore.open(cli.state)
    steps = [e["event"] for e in runbook.events(store, "hillside")]
    assert any("waiting for DNS" in e for e in steps) and any("verified in the trust" in e for e in steps)
    assert any("legacy user(s) renamed" in e for e in steps), steps
    assert runbook.dns_wait_seconds(store, "hillside") is not None
    md = cli("report", "--format", "md", "--out", "-").out
    assert "Domain cut-over" in md and DOMAIN in md and "What users will notice" in md
    assert "Waiting time for DNS" in md

    # Rollback: reverse, checkpointed at DNS; says exactly which records to withdraw and publish.
    res = cli("rollback", "hillside", "--phase", "domain", "--yes")
    assert f"withdraw TXT at {DOMAIN}: {text}" in res.out
    assert "publish TXT at" in res.out
    withdraw(url, text)
    legacy_text = publish(url, tenant=LEGACY)
    assert legacy_text in res.out
    cli("rollback", "hillside", "--phase", "domain", "--yes")
    assert _status(cli) == "rolled-back"
    # The Exchange admin's readdressing is outside trustfold: the rehearsal puts it back by the same call.
    r = httpx.post(f"{url}/sandbox/exchange", json={"tenant": LEGACY, "domain": DOMAIN, "restore": moved})
    r.raise_for_status()
    after = {t: snapshot(url, t) for t in (LEGACY, TRUST)}
    assert after[TRUST] == before[TRUST]
    changed = [(b, a) for b, a in zip(before[LEGACY]["users"], after[LEGACY]["users"], strict=True) if a != b]
    assert not changed, changed[:2]
    assert after[LEGACY] == before[LEGACY]

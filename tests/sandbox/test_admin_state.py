"""Admin API shapes, persistence, the generator, settings parsers, the CLI and the sandbox credential."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from click.testing import CliRunner

from migrations.graph.sandbox_credential import AsyncSandboxCredential, SandboxCredential
from sandbox.bootstrap import make_world
from sandbox.generator import generate_world_tenants
from sandbox.settings import Settings, parse_budget, parse_faults, parse_size
from sandbox.testing import graph_client, running_sandbox
from sandbox.throttle import Throttle
from tests.sandbox.conftest import make_user
from trust import load_trust


# Admin API -------------------------------------------------------------------------------------------------
def test_admin_tenants_shape(sandbox_url, config_dir):
    trust = load_trust(config_dir)
    tenants = httpx.get(f"{sandbox_url}/sandbox/tenants").json()
    assert [set(t) for t in tenants] == [{"id", "role", "academy", "domains"}] * len(tenants)
    assert {t["id"] for t in tenants} == {r.id for r in trust.tenants()}
    assert [t["role"] for t in tenants].count("target") == 1
    assert {t["academy"] for t in tenants if t["role"] == "source"} == {a.code for a in trust.academies}


def test_admin_stats_shape(sandbox_url, source):
    source.get("/organization")
    stats = httpx.get(f"{sandbox_url}/sandbox/stats").json()
    one = next(iter(stats["tenants"].values()))
    assert set(one) == {"requests", "writes", "throttled", "bytes_in", "bytes_out", "by_method"}
    assert any(s["by_method"].get("GET", 0) > 0 and s["bytes_out"] > 0 for s in stats["tenants"].values())


def test_admin_snapshot_stable_and_reflects_changes(sandbox_url, target, target_id):
    url = f"{sandbox_url}/sandbox/tenants/{target_id}/snapshot"
    a, b = httpx.get(url).text, httpx.get(url).text
    assert a == b
    snap = json.loads(a)
    assert {
        "users",
        "groups",
        "members",
        "owners",
        "deletedItems",
        "domains",
        "subscribedSkus",
        "drives",
    } <= set(snap)
    ids = [u["id"] for u in snap["users"]]
    assert ids == sorted(ids)
    u = make_user(target)
    assert u["id"] in [x["id"] for x in httpx.get(url).json()["users"]]
    assert httpx.get(f"{sandbox_url}/sandbox/tenants/nope/snapshot").status_code == 404


def test_admin_reset_regenerates(config_dir):
    with running_sandbox(config_dir, size=30, throttling=False) as base:
        tid = base.world.tenant_list()[0]["id"]
        url = f"{base}/sandbox/tenants/{tid}/snapshot"
        before = httpx.get(url).json()
        with graph_client(base, tid) as c:
            make_user(c)
        assert httpx.get(url).json() != before
        r = httpx.post(f"{base}/sandbox/reset", json={})
        assert r.status_code == 200 and r.json()["reset"] is True
        assert httpx.get(url).json() == before
        assert httpx.get(f"{base}/sandbox/stats").json()["tenants"][tid]["requests"] == 0
        r = httpx.post(f"{base}/sandbox/reset", json={"size": 5})
        assert r.status_code == 400 and "between" in r.json()["error"]


# Persistence -----------------------------------------------------------------------------------------------
def test_state_file_shared_across_restarts(config_dir, tmp_path):
    state = tmp_path / "sandbox.json"
    with running_sandbox(config_dir, size=30, throttling=False, state_path=state) as base:
        tid = base.world.tenant_list()[0]["id"]
        with graph_client(base, tid) as c:
            u = make_user(c)
        deadline = time.monotonic() + 10
        while base.world.dirty and time.monotonic() < deadline:
            time.sleep(0.05)
    assert state.exists()
    with (
        running_sandbox(config_dir, size=30, throttling=False, state_path=state) as base,
        graph_client(base, tid) as c,
    ):
        assert c.get(f"/users/{u['id']}").status_code == 200
    assert not list(tmp_path.glob(".*.tmp"))


def _saved(base) -> None:
    deadline = time.monotonic() + 10
    while base.world.dirty and time.monotonic() < deadline:
        time.sleep(0.05)


def test_sharing_policy_and_invitation_log_survive_a_restart(config_dir, tmp_path):
    """The permissions API's tenant state (sharing policy, invitations requested) is saved with --state,
    as the directory and the drives are; before, a restart forgot both."""
    state = tmp_path / "sandbox.json"
    with running_sandbox(config_dir, size=30, throttling=False, state_path=state) as base:
        t = next(t for t in base.world.tenants.values() if t.role == "source")
        item = next(i for i in t.drives.items.values() if i["_parent"] is not None and not i.get("_deleted"))
        admin = f"{base}/sandbox/tenants/{t.id}/sharing"
        r = httpx.post(admin, json={"sharingCapability": "existingExternalUserSharingOnly"})
        assert r.status_code == 200
        with graph_client(base, t.id) as c:
            r = c.post(
                f"/drives/{item['_drive']}/items/{item['id']}/invite",
                json={"recipients": [{"email": "visitor@example.net"}], "roles": ["read"]},
            )
            assert r.status_code == 200, r.text
        before = httpx.get(admin).json()
        assert before["invitations"] and before["invitations"][-1]["item"] == item["id"]
        _saved(base)
    with running_sandbox(config_dir, size=30, throttling=False, state_path=state) as base:
        after = httpx.get(f"{base}/sandbox/tenants/{t.id}/sharing").json()
    assert after == before
    assert after["policy"]["sharingCapability"] == "existingExternalUserSharingOnly"


def test_damaged_state_file_rejected(config_dir, tmp_path):
    from sandbox.world import StateFileError

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(StateFileError, match="cannot read sandbox state"):
        make_world(config_dir, Settings(size=30), bad)


# Generator -------------------------------------------------------------------------------------------------
def test_generator_deterministic(config_dir):
    trust = load_trust(config_dir)
    a = {k: v.snapshot() for k, v in generate_world_tenants(trust, 80, 3).items()}
    b = {k: v.snapshot() for k, v in generate_world_tenants(trust, 80, 3).items()}
    c = {k: v.snapshot() for k, v in generate_world_tenants(trust, 80, 4).items()}
    assert a == b and a != c


def test_generator_realistic_awkward_data(config_dir):
    trust = load_trust(config_dir)
    tenants = generate_world_tenants(trust, 400, 1)
    sources = [t for t in tenants.values() if t.role == "source"]
    names = [u["displayName"] for t in sources for u in t.users.values()]
    assert any("'" in n for n in names) and any("-" in n for n in names)
    assert any(not n.isascii() for n in names) and any(len(n) > 30 for n in names)
    per_academy = [{u["displayName"] for u in t.users.values()} for t in sources]
    assert "James Smith" in set.intersection(*per_academy)
    for t in sources:
        users = list(t.users.values())
        assert {u.get("employeeType") for u in users} >= {"Staff", "Pupil"}
        assert any(not u["accountEnabled"] for u in users)
        assert any(u["userType"] == "Guest" for u in users)
        assert all(u["userPrincipalName"].isascii() for u in users)
        groups = list(t.groups.values())
        assert any(g["groupTypes"] == ["Unified"] for g in groups)
        assert any(g["mailEnabled"] and g["securityEnabled"] and not g["groupTypes"] for g in groups)
        assert any(m in t.groups for ms in t.members.values() for m in ms)  # nested groups
        # `size` people per academy; Exchange shared mailboxes (office, admissions) add their own disabled,
        # unlicensed user objects, as real tenants have them.
        shared = {o for o, kinds in t.mail.by_user.items() if "shared" in kinds}
        assert len(shared) == 2 and len([u for u in users if u["id"] not in shared]) == 400
    target = next(t for t in tenants.values() if t.role == "target")
    assert 0 < len(target.users) < 20 and target.groups


def test_generation_speed_ratio(config_dir):
    """Not a timing assertion: prints how long 4 x default size takes (issue: a couple of seconds at most)."""
    trust = load_trust(config_dir)
    start = time.perf_counter()
    generate_world_tenants(trust, 250, 1)
    print(f"generated {len(trust.academies)} academies x 250 in {time.perf_counter() - start:.3f}s")


# Settings and throttle --------------------------------------------------------------------------------------
def test_settings_parsers():
    assert parse_budget("3000/150").limit == 3000
    assert parse_faults("429=0.10,503=0.02,504=0.01,drop=0.01,slow=0.05").r503 == 0.02
    for text, message in (("3000", "N/SECONDS"), ("0/10", "at least 1"), ("5/0", "window")):
        with pytest.raises(ValueError, match=message):
            parse_budget(text)
    for text, message in (
        ("429", "KIND=RATE"),
        ("429=x", "number"),
        ("429=0.6,503=0.6", "add up"),
        ("418=0.1", "unknown fault kind"),
        ("429=0.1,429=0.2", "twice"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_faults(text)
    with pytest.raises(ValueError, match="between"):
        parse_size(60_000)


def test_throttle_sliding_window_with_clock():
    now = [0.0]
    s = Settings(write_budget=parse_budget("10/10"))
    t = Throttle(s, clock=lambda: now[0])
    admitted = sum(t.charge("t", "identity", 1, True) is None for _ in range(15))
    assert admitted == 10
    retry = t.charge("t", "identity", 1, True)
    assert retry is not None and 9.9 <= retry <= 10.02
    now[0] = retry  # waiting exactly Retry-After is enough
    assert t.charge("t", "identity", 1, True) is None
    assert t.charge("t", "sharepoint", 5, False) is None
    with pytest.raises(ValueError):
        t.charge("t", "exchange", 1, False)


def test_identity_budget_by_tenant_size():
    t = Throttle(Settings())
    for users, ru in ((10, 3500), (200, 5000), (5000, 8000)):
        t.set_tenant_size("x", users, 0)
        assert t.identity_budget("x").limit == ru
    for licences, ru in ((10, 1250), (2000, 2500), (10_000, 3750), (20_000, 5000), (60_000, 6250)):
        t.set_tenant_size("x", 0, licences)
        assert t.sharepoint_budget("x").limit == ru


# CLI --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--faults", "429=2"], "between 0 and 1"),
        (["--write-budget", "lots"], "N/SECONDS"),
        (["--size", "5"], "between"),
        (["--host", "0.0.0.0"], "loopback"),
        (["--latency-ms", "-5"], "latency"),
    ],
)
def test_cli_serve_bad_flags_exit_2(args, message, config_dir):
    from cli.main import cli

    result = CliRunner().invoke(cli, ["--config-dir", str(config_dir), "sandbox", "serve", *args])
    assert result.exit_code == 2
    assert message in result.output


# Credential -------------------------------------------------------------------------------------------------
def test_sandbox_credential_sync_caches(sandbox_url, target_id):
    cred = SandboxCredential(sandbox_url, target_id)
    a = cred.get_token("https://graph.microsoft.com/.default")
    b = cred.get_token("https://graph.microsoft.com/.default")
    assert a.token == b.token and a.expires_on > time.time() + 600
    r = httpx.get(f"{sandbox_url}/v1.0/organization", headers={"Authorization": f"Bearer {a.token}"})
    assert r.json()["value"][0]["id"] == target_id
    assert cred.get_token_info("https://graph.microsoft.com/.default").token == a.token


def test_sandbox_credential_async(sandbox_url, target_id):
    async def go() -> str:
        async with AsyncSandboxCredential(sandbox_url, target_id) as cred:
            a = await cred.get_token("https://graph.microsoft.com/.default")
            b = await cred.get_token("https://graph.microsoft.com/.default")
            assert a.token == b.token
            return a.token

    assert asyncio.run(go())


def test_sandbox_credential_errors(sandbox_url):
    with pytest.raises(ValueError, match="loopback"):
        SandboxCredential("https://graph.microsoft.com", "x")
    with pytest.raises(ClientAuthenticationError, match="90002"):
        SandboxCredential(sandbox_url, "00000000-0000-0000-0000-000000000099").get_token(
            "https://graph.microsoft.com/.default"
        )


def test_cost_classification():
    """learn.microsoft.com/sharepoint/dev/general-development/how-to-avoid-getting-throttled-or-blocked-in-
    sharepoint-online#application-throttling: SharePoint resource unit costs; identity costs otherwise."""
    from sandbox.pipeline import classify

    assert classify("GET", "/v1.0/drives/d/items/i", {}) == ("sharepoint", 1)
    assert classify("GET", "/v1.0/drives/d/items/i/children", {}) == ("sharepoint", 2)
    assert classify("GET", "/v1.0/drives/d/root/delta", {}) == ("sharepoint", 2)
    assert classify("GET", "/v1.0/drives/d/root/delta", {"token": "x"}) == ("sharepoint", 1)
    assert classify("PUT", "/v1.0/users/u/drive/items/p:/f.txt:/content", {}) == ("sharepoint", 2)
    assert classify("POST", "/v1.0/drives/d/items/i/invite", {}) == ("sharepoint", 5)
    assert classify("GET", "/v1.0/sites/s/drives", {}) == ("sharepoint", 1)
    assert classify("GET", "/v1.0/users/u", {}) == ("identity", 2)
    assert classify("GET", "/v1.0/users/u", {"$select": "id"}) == ("identity", 1)
    assert classify("GET", "/v1.0/groups/g/members", {"$select": "id"}) == ("identity", 2)
    assert classify("GET", "/v1.0/domains", {"$expand": "x"}) == ("identity", 2)
    assert classify("DELETE", "/v1.0/groups/g", {}) == ("identity", 1)


def test_state_file_for_other_tenants_rejected(config_dir, tmp_path):
    import json as _json

    from sandbox.world import StateFileError

    state = tmp_path / "s.json"
    world = make_world(config_dir, Settings(size=30), state)
    data = _json.loads(state.read_text())
    data["tenants"] = data["tenants"][:1]
    state.write_text(_json.dumps(data))
    assert world.tenants
    with pytest.raises(StateFileError, match="missing"):
        make_world(config_dir, Settings(size=30), state)

"""The permissions phase end to end on hillside's nested sharing. The tests share one sandbox and run in file
order: an academy forbidding organisation links (run, then rolled back), the journey killed mid-run and
resumed, incremental sharing changes, then a hand-made grant that verify reports and rollback keeps."""

from __future__ import annotations

import json
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import httpx

from migrations.core.killpoints import ENV as KILL
from migrations.core.store import StateStore
from migrations.reporting.model import build_report
from migrations.reporting.render import render_md
from tests.identity.conftest import CONFIG, TARGET
from tests.permissions.conftest import InProcessCli, World, run_with, variant
from trust import load_trust


def _plan(w: World) -> dict:
    """The plan the last `run` made and stored (each CLI call costs seconds: runs plan for themselves)."""
    rows = w.rows(
        "SELECT body FROM plans WHERE academy = 'hillside' AND phase = 'permissions' ORDER BY created_at DESC"
    )
    return dict(json.loads(rows[0]["body"]))


def _findings(w: World) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in w.rows("SELECT kind, display, handling FROM share_findings WHERE academy = 'hillside'"):
        out.setdefault(r["kind"], []).append(f"{r['display']}: {r['handling']}")
    return out


def _people_group(w: World) -> str | None:
    """The academy's people group (academy-wide sharing goes to it), once the run created it."""
    rows = w.rows(
        "SELECT target_id FROM journal WHERE phase = 'permissions' AND step_key = 'audience' "
        "AND event = 'done' ORDER BY seq DESC LIMIT 1"
    )
    return rows[0]["target_id"] if rows else None


def _expected(plan: dict, group: str | None = None) -> dict[tuple[str, str], Counter]:
    """What the plan grants, per (target drive, target item); `group` stands for the plan's placeholder of
    the academy's people group, created by the run."""
    out: dict[tuple[str, str], Counter] = {}
    for s in plan["steps"]:
        a = s["args"]
        if s["op"] not in ("share-link", "share-invite"):
            continue
        c = out.setdefault((a["target_drive"], a["target_item"]), Counter())
        if s["op"] == "share-link":
            c[("link", a["type"], a["scope"])] += 1
        elif s["op"] == "share-invite":
            for r in a["recipients"]:
                rid = group if r["id"] == "audience" and group else r["id"]
                c[(r["kind"], rid, ",".join(sorted(a["roles"])))] += 1
    return out


def test_permissions_before_files_is_refused_with_the_next_step(copied: World, tmp_path: Path) -> None:
    fresh = InProcessCli(copied.url, tmp_path / "fresh.db")
    proc = fresh("plan", "hillside", "--phase", "permissions", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "error: no drives scanned for hillside: run `trustfold run hillside --phase files` first"
    )


def test_academy_forbidding_organisation_links_gets_none(copied: World, tmp_path: Path) -> None:
    w = variant(copied, tmp_path, "organization_links: forbid")
    result = w.cli.json("run", "hillside", "--phase", "permissions", "--replan")
    assert result["status"] == "succeeded", result
    plan = _plan(w)
    assert plan["steps"] and not [s for s in plan["steps"] if s["op"] == "share-link"]
    found = _findings(w)
    assert len(found["sharing-organization-link"]) >= 2  # Policies and a worksheet, at least
    assert all("organization_links" in h for h in found["sharing-organization-link"])
    for (drive, item), _ in _expected(plan).items():
        assert not [p for p in w.direct(drive, item) if "link" in p], "an organisation link was created"
    rolled = w.cli.json("rollback", "hillside", "--phase", "permissions", "--yes")
    assert rolled[0]["result"]["status"] == "succeeded"
    for (drive, item), _ in _expected(plan).items():
        assert w.direct(drive, item) == []  # the trust tenant is as it was for the tests below


def test_anonymous_links_allowed_meet_the_trust_tenants_policy(copied: World, tmp_path: Path) -> None:
    """An academy may allow "Anyone" links; a trust tenant whose policy refuses them fails those steps
    with SharePoint's answer, and the operator sees it."""
    w = variant(copied, tmp_path, "anonymous_links: allow")
    admin = f"{w.url}/sandbox/tenants/{TARGET}/sharing"
    httpx.post(admin, json={"sharingCapability": "externalUserSharingOnly"}).raise_for_status()
    try:
        proc = w.cli("run", "hillside", "--phase", "permissions", "--replan", check=False)
    finally:
        httpx.post(admin, json={"sharingCapability": "externalUserAndGuestSharing"}).raise_for_status()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "create anonymous view link on 'Media/Sports Day 2024.mp4'" in proc.stderr
    assert "403 accessDenied" in proc.stderr and "step(s) failed" in proc.stderr
    assert "sharing-anonymous-link" not in _findings(w)
    rolled = w.cli.json("rollback", "hillside", "--phase", "permissions", "--yes")
    assert rolled[0]["result"]["status"] == "succeeded"


def test_killed_mid_run_resumes_to_exactly_the_plan(copied: World) -> None:
    w = copied
    # Killed straight after its third grant reached the trust tenant, before the journal heard of it.
    proc = run_with(
        w.cli, {KILL: "permissions.sent:3"}, "run", "hillside", "--phase", "permissions", "--replan"
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    plan = _plan(w)
    ops = Counter(s["op"] for s in plan["steps"])
    # Organisation links (Policies, a worksheet) go to the academy's people group: invites, never links.
    assert ops["share-invite"] >= 6 and ops["share-link"] == 0
    assert ops["ensure-audience-group"] == 1 and ops["sync-audience-members"] == 1
    kinds = {r["kind"] for s in plan["steps"] if s["op"] == "share-invite" for r in s["args"]["recipients"]}
    assert kinds == {"user", "group"}
    found = _findings(w)
    for kind in ("sharing-anonymous-link", "sharing-guest", "sharing-unmigrated-user", "sharing-inherited"):
        assert found.get(kind), kind
    assert any("DfE baseline" in h for h in found["sharing-anonymous-link"])
    result = w.cli.json("run", "hillside", "--phase", "permissions", "--replan")
    assert result["status"] == "succeeded", result
    assert result["counts"]["reconciled"] >= 1 and result["counts"]["already_present"] >= 2
    # Exactly the planned grants, each once, on every item (no duplicate from the interrupted step).
    for (drive, item), want in _expected(plan, _people_group(w)).items():
        assert w.signatures(drive, item) == want, item
    verified = w.cli("verify", "hillside", "--json", check=False)
    assert verified.returncode == 0, verified.stdout
    perms = json.loads(verified.stdout)["permissions"]
    assert perms["differences"] == [] and perms["matched"] == perms["grants"] > 0
    # Nobody was e-mailed: every invitation asked for none and required sign-in.
    asked = w.sharing()["invitations"]
    assert asked and all(i["sendInvitation"] is False and i["requireSignIn"] is True for i in asked)
    # The report says what was carried and what was not, and why.
    store = StateStore.open(w.state)
    try:
        text = render_md(build_report(store, load_trust(CONFIG), "hillside"))
    finally:
        store.close()
    assert "Sharing carried: academy-group " in text and "link-organization" not in text
    assert "| sharing-anonymous-link | 2 | not re-created: public links are forbidden (DfE baseline" in text


def test_inherited_grants_are_told_apart_without_inherited_from(copied: World) -> None:
    """OneDrive for Business and SharePoint libraries never send inheritedFrom (Graph's permission resource),
    and neither does the sandbox: the scan compares each shared item with its parent. The site's Members and
    Visitors groups and a parent folder's grants are inherited, never re-invited on nested items, and verify
    (which compares the trust's copies with their parents the same way) finds nothing extra."""
    w = copied
    tenant = w.url.world.tenant(w.source)  # type: ignore[attr-defined]
    rows = w.rows("SELECT item_id, drive_key, permissions FROM share_items WHERE academy = 'hillside'")
    assert len(rows) >= 5
    with w.graph(w.source) as src:
        for r in rows:
            item = tenant.drives.items[r["item_id"]]
            listed = src.get(f"/drives/{item['_drive']}/items/{r['item_id']}/permissions").json()["value"]
            assert listed and not any("inheritedFrom" in p for p in listed)
            # What the scan took as the item's own is exactly what the sandbox holds on the item itself
            # (a OneDrive owner's grant, never carried, is not looked up: the OneDrive's root is not read).
            stored = json.loads(r["permissions"])
            own = {p["id"] for p in item.get("_perms", [])}
            took = {p["id"] for p in stored if "inheritedFrom" not in p and "owner" not in p["roles"]}
            assert took == own, item["name"]
            assert all(p["inheritedFrom"]["deducedBy"] == "trustfold" for p in stored if "inheritedFrom" in p)
    said = w.rows("SELECT kind, message FROM share_findings WHERE academy = 'hillside'")
    # The site's groups are inherited wherever an item is shared, never taken for the item's own.
    assert (
        sum(r["kind"] == "sharing-inherited" and r["message"].endswith("Members: inherited") for r in said)
        >= 5
    )
    assert not [r["message"] for r in said if r["kind"] == "sharing-site-principal"]
    verified = w.cli("verify", "hillside", "--json", check=False)
    assert verified.returncode == 0, verified.stdout
    perms = json.loads(verified.stdout)["permissions"]
    assert perms["differences"] == [] and perms["matched"] == perms["grants"] > 0


def test_sharing_scan_refused_without_sites_full_control(copied: World) -> None:
    """driveitem-delta: without Sites.FullControl.All drive delta leaves sharing changes out, silently; the
    scan refuses rather than carry stale access, naming the fix."""
    admin = f"{copied.url}/sandbox/tenants/{copied.source}/roles"
    httpx.post(admin, json={"withhold": ["Sites.FullControl.All"]}).raise_for_status()
    before = copied.rows("SELECT count(*) AS n FROM plans")[0]["n"]
    try:
        proc = copied.cli("plan", "hillside", "--phase", "permissions", check=False)
    finally:
        httpx.post(admin, json={"reset": True}).raise_for_status()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(
        "error: the sharing scan for hillside needs Microsoft Graph application permission "
        "Sites.FullControl.All in its legacy tenant"
    )
    assert "trustfold preflight hillside" in proc.stderr
    assert copied.rows("SELECT count(*) AS n FROM plans")[0]["n"] == before


def test_incremental_pass_carries_sharing_changes_at_source(copied: World) -> None:
    w = copied
    # Straight after a pass, --scan-age reuses its sharing scan: no delta call, nothing to do.
    reused = w.cli.json("run", "hillside", "--phase", "permissions", "--replan", "--scan-age", "600")[
        "counts"
    ]
    assert (reused["delta_requests"], reused["planned"], reused["permission_writes"]) == (0, 0, 0)
    copies = w.copies()
    policies = next(v for k, v in copies.items() if k.endswith("|Policies"))
    with w.graph(w.source) as src:
        drive = next(
            r["source_drive_id"]
            for r in w.rows("SELECT * FROM drives")
            if r["drive_key"].startswith("library:")
        )
        item = src.get(f"/drives/{drive}/root:/Policies").json()["id"]
        perms = src.get(f"/drives/{drive}/items/{item}/permissions").json()["value"]
        org = next(p for p in perms if p.get("link", {}).get("scope") == "organization")
        assert src.delete(f"/drives/{drive}/items/{item}/permissions/{org['id']}").status_code == 204
        teacher = w.rows(
            "SELECT source_id FROM mappings WHERE kind = 'user' AND action = 'create' "
            "ORDER BY source_key LIMIT 1"
        )[0]["source_id"]
        body = {"recipients": [{"objectId": teacher}], "roles": ["write"], "requireSignIn": True}
        assert src.post(
            f"/drives/{drive}/items/{item}/invite", json={**body, "sendInvitation": False}
        ).is_success
    assert w.cli.json("run", "hillside", "--phase", "permissions", "--replan")["status"] == "succeeded"
    plan = _plan(w)
    assert Counter(s["op"] for s in plan["steps"]) == {"share-invite": 1, "share-revoke": 1}
    now = w.signatures(*policies)
    assert [s[:2] for s in now] == [("user", plan["steps"][0]["args"]["recipients"][0]["id"])]
    assert list(now.values()) == [1]


def test_nested_change_compares_with_the_stored_parent(copied: World) -> None:
    """A later pass reads only what changed: an item nested in a shared folder whose sharing did not change
    is compared with that folder's stored list, and the folder's grants are still not re-invited on it."""
    w = copied
    tenant = w.url.world.tenant(w.source)  # type: ignore[attr-defined]
    shared = {r["item_id"] for r in w.rows("SELECT item_id FROM share_items WHERE removed = 0")}
    items = tenant.drives.items

    def above(i: str) -> set[str]:
        out, cur = set(), items[i]["_parent"]
        while cur is not None:
            out.add(cur)
            cur = items[cur]["_parent"]
        return out

    nested = next(i for i in sorted(shared) if above(i) & shared)  # below a shared folder
    item = items[nested]
    teacher = w.rows(
        "SELECT source_id FROM mappings WHERE kind = 'user' AND action = 'create' "
        "ORDER BY source_key DESC LIMIT 1"
    )[0]["source_id"]
    body = {"recipients": [{"objectId": teacher}], "roles": ["read"], "requireSignIn": True}
    with w.graph(w.source) as src:
        r = src.post(
            f"/drives/{item['_drive']}/items/{nested}/invite", json={**body, "sendInvitation": False}
        )
        assert r.status_code == 200, r.text
    result = w.cli.json("run", "hillside", "--phase", "permissions", "--replan")
    assert result["status"] == "succeeded" and result["counts"]["permission_reads"] == 1, result["counts"]
    plan = _plan(w)
    assert [(s["op"], [x["kind"] for x in s["args"]["recipients"]]) for s in plan["steps"]] == [
        ("share-invite", ["user"])
    ]
    stored = json.loads(
        w.rows(f"SELECT permissions FROM share_items WHERE item_id = '{nested}'")[0]["permissions"]
    )
    assert {p["id"] for p in stored if "inheritedFrom" not in p} == {p["id"] for p in item["_perms"]}


def test_hand_made_grant_is_reported_by_verify_and_kept_by_rollback(copied: World) -> None:
    w = copied
    drive, item = next(v for k, v in w.copies().items() if k.endswith("|Curriculum"))
    stranger = w.rows(
        "SELECT target_id FROM journal WHERE phase = 'users' AND event = 'done' AND "
        "op = 'create-user' ORDER BY step_key DESC LIMIT 1"
    )[0]["target_id"]
    with w.graph(TARGET) as g:
        body = {
            "recipients": [{"objectId": stranger}],
            "roles": ["write"],
            "requireSignIn": True,
            "sendInvitation": False,
        }
        r = g.post(f"/drives/{drive}/items/{item}/invite", json=body)
        assert r.status_code == 200, r.text
        hand = r.json()["value"][0]["id"]
    verified = w.cli("verify", "hillside", "--json", check=False)
    assert verified.returncode == 1
    diffs = json.loads(verified.stdout)["permissions"]["differences"]
    assert [d["kind"] for d in diffs] == ["permission-extra"] and "more access than planned" in diffs[0][
        "message"
    ]
    (rolled_back,) = w.cli.json("rollback", "hillside", "--phase", "permissions", "--yes")
    *grants, group = rolled_back["steps"]
    assert grants and all(s.startswith("remove grant to") for s in grants)
    assert group.startswith("delete group 'Hillside Academy Everyone'")  # after every grant to it
    rolled = rolled_back["result"]
    assert rolled["status"] == "succeeded" and rolled["counts"]["kept"] == 1
    assert any("Curriculum" in n and "not added by trustfold" in n for n in rolled["notes"])
    assert [p["id"] for p in w.direct(drive, item)] == [hand]
    for key, (d, i) in w.copies().items():
        if i != item:
            assert w.direct(d, i) == [], key


def test_sharing_scan_reads_only_drives_with_content(copied: World, tmp_path: Path) -> None:
    """A drive whose files scan found nothing below the root (most pupils' OneDrives) costs no delta call;
    every drive with content gets its sharing read and a delta link for later passes."""
    state = tmp_path / "state.db"
    with sqlite3.connect(copied.state) as src, sqlite3.connect(state) as dst:
        src.backup(dst)
    w = World(copied.url, InProcessCli(copied.url, state), copied.source, state)
    w.cli("plan", "hillside", "--phase", "permissions")
    drives = w.rows(
        "SELECT d.drive_key, (SELECT count(*) FROM drive_items i WHERE i.academy = d.academy AND "
        "i.drive_key = d.drive_key AND i.parent_id IS NOT NULL AND i.deleted = 0) AS items, "
        "(SELECT count(*) FROM delta_links l WHERE l.academy = d.academy "
        "AND l.resource = 'sharing:' || d.drive_key) AS linked "
        "FROM drives d WHERE d.academy = 'hillside' AND d.source_drive_id IS NOT NULL"
    )
    assert any(r["items"] == 0 for r in drives) and any(r["items"] > 0 for r in drives)
    assert all(bool(r["linked"]) == (r["items"] > 0) for r in drives), [tuple(r) for r in drives]


def test_sharing_api_limit_is_met_by_waiting_as_told(copied: World, tmp_path: Path) -> None:
    """A trust tenant whose "Specific Sharing APIs" window is nearly spent (here: 3 calls per 2 s) answers
    429 with Retry-After; the run waits as told and completes every step, none failed."""
    state = tmp_path / "state.db"
    with sqlite3.connect(copied.state) as src, sqlite3.connect(state) as dst:
        src.backup(dst)
    w = World(copied.url, InProcessCli(copied.url, state), copied.source, state)
    throttle = f"{w.url}/sandbox/throttle"
    httpx.post(throttle, json={"sharing_api": "3/2"}).raise_for_status()
    try:
        result = w.cli.json("run", "hillside", "--phase", "permissions", "--replan")
    finally:
        httpx.post(throttle, json={"sharing_api": "300/300"}).raise_for_status()
    counts = result["counts"]
    assert result["status"] == "succeeded" and counts["failed"] == 0, result
    assert counts["permission_writes"] > 3 and counts["throttled"] >= 1, counts
    rolled = w.cli.json("rollback", "hillside", "--phase", "permissions", "--yes")
    assert rolled[0]["result"]["status"] == "succeeded"

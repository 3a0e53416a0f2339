"""Sharing keeps its audience (issue 23), end to end: the CLI against the sandbox.

Hillside's legacy tenant is seeded (through the sandbox's admin and Graph calls) with every grantee kind and
every link kind and restriction on copied items: a member, a group, a guest, a disabled user, a site group,
academy-wide links (plain, expiring, blocking download, already expired), "Anyone" links (password,
expiring) and a "specific people" link. After the permissions phase, every target item's effective audience
is compared with its source's: never wider, and narrower only where a finding names that grant.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrations.core.killpoints import ENV as KILL
from migrations.core.store import StateStore
from migrations.reporting.model import build_report
from migrations.reporting.render import render_md
from tests.identity.conftest import CONFIG, TARGET
from tests.permissions.conftest import World, run_with, variant
from tests.sandbox.conftest import make_user
from trust import load_trust

FUTURE = "2099-03-01T12:00:00Z"
PAST = "2020-01-01T00:00:00Z"


def _seed(w: World) -> dict[str, dict[str, Any]]:
    """Source item id -> {drive_key, perm ids seeded, kind}: one grant kind per copied library item."""
    users = {
        r["object_id"]: json.loads(r["data"])
        for r in w.rows("SELECT object_id, data FROM inventory WHERE academy = 'hillside' AND kind = 'user'")
    }
    mapped = {
        r["source_id"]
        for r in w.rows(
            "SELECT source_id FROM mappings WHERE academy = 'hillside' AND kind = 'user' AND action != 'skip'"
        )
    }
    member = next(
        u
        for u, d in sorted(users.items())
        if u in mapped and d.get("userType") != "Guest" and d.get("accountEnabled", True)
    )
    guest = next(u for u, d in sorted(users.items()) if d.get("userType") == "Guest")
    disabled = next((u for u, d in sorted(users.items()) if d.get("accountEnabled") is False), None)
    group = w.rows(
        "SELECT source_id FROM mappings WHERE academy = 'hillside' AND kind = 'group' AND action != 'skip' "
        "ORDER BY source_id LIMIT 1"
    )[0]["source_id"]
    seeds: list[tuple[str, dict[str, Any]]] = [
        ("member", {"kind": "user", "id": member, "roles": ["write"]}),
        ("group", {"kind": "group", "id": group, "roles": ["read"]}),
        ("guest", {"kind": "user", "id": guest, "roles": ["read"]}),
        *([("disabled", {"kind": "user", "id": disabled, "roles": ["read"]})] if disabled else []),
        ("site-group", {"kind": "siteGroup", "displayName": "Hillside Governors", "roles": ["read"]}),
        ("academy-view", {"kind": "link", "type": "view", "scope": "organization"}),
        (
            "academy-edit-expiring",
            {"kind": "link", "type": "edit", "scope": "organization", "expirationDateTime": FUTURE},
        ),
        (
            "academy-no-download",
            {"kind": "link", "type": "view", "scope": "organization", "preventsDownload": True},
        ),
        (
            "academy-expired",
            {"kind": "link", "type": "view", "scope": "organization", "expirationDateTime": PAST},
        ),
        ("anyone-password", {"kind": "link", "type": "view", "scope": "anonymous", "hasPassword": True}),
        (
            "anyone-expiring",
            {"kind": "link", "type": "edit", "scope": "anonymous", "expirationDateTime": FUTURE},
        ),
        ("people", {"kind": "link", "type": "edit", "scope": "users", "people": [member, guest]}),
    ]
    # Copied library items that nobody shares, directly or from above: the source lists only the library's
    # site groups for them (whether or not a listing marks inherited grants). Folders trustfold made itself
    # (the long-paths folder) have no source item.
    rows = w.rows(
        "SELECT c.drive_key, c.source_id, d.source_drive_id FROM file_copies c JOIN drives d "
        "ON d.academy = c.academy AND d.drive_key = c.drive_key WHERE c.academy = 'hillside' "
        "AND c.drive_key LIKE 'library:%' AND c.source_id != '' ORDER BY c.path"
    )
    candidates = []
    with w.graph(w.source) as src:
        for r in rows:
            perms = _get_honouring_retry_after(
                src, f"/drives/{r['source_drive_id']}/items/{r['source_id']}/permissions"
            )["value"]
            if all("siteGroup" in p.get("grantedToV2", {}) for p in perms):
                candidates.append(r)
            if len(candidates) == len(seeds):
                break
    assert len(candidates) == len(seeds)
    out: dict[str, dict[str, Any]] = {}
    for (kind, body), row in zip(seeds, candidates, strict=True):
        url = (
            f"{w.url}/sandbox/tenants/{w.source}/drives/{row['source_drive_id']}/items/{row['source_id']}"
            "/permissions"
        )
        r = httpx.post(url, json=body, timeout=30)
        assert r.status_code == 201, r.text
        out[row["source_id"]] = {"drive_key": row["drive_key"], "perm": r.json()["id"], "kind": kind}
    return out


def _trust_ids(w: World) -> dict[str, str]:
    """Source user/group id -> trust id, for what the identity phases created or matched."""
    out: dict[str, str] = {}
    for r in w.rows(
        "SELECT phase, step_key, target_id FROM journal WHERE event = 'done' AND target_id IS NOT NULL"
    ):
        if r["phase"] in ("users", "groups") and r["step_key"].split(":")[0] in ("user", "group"):
            out[r["step_key"].split(":", 1)[1]] = r["target_id"]
    for r in w.rows("SELECT source_id, data FROM mappings WHERE action = 'match'"):
        tid = json.loads(r["data"] or "{}").get("target_id")
        if tid:
            out[r["source_id"]] = str(tid)
    return out


def _source_audience(perm: dict[str, Any], ids: dict[str, str]) -> set[tuple[str, str]]:
    """Who a source grant lets in, in trust terms: ("person"|"group", trust id), ("academy", role),
    ("anyone", role); a principal with no trust identity is ("unmapped", ...)."""
    roles = ",".join(sorted(perm["roles"]))
    if "link" in perm:
        link = perm["link"]
        if link["scope"] == "organization":
            return {("academy", roles)}
        if link["scope"] == "anonymous":
            return {("anyone", roles)}
        return {
            ("person", ids.get(p["user"]["id"], "unmapped:" + p["user"]["id"]))
            for p in perm["grantedToIdentitiesV2"]
        }
    who = perm["grantedToV2"]
    for kind in ("user", "group"):
        if kind in who:
            pid = who[kind]["id"]
            return {("person" if kind == "user" else "group", ids.get(pid, "unmapped:" + pid))}
    return {("unmapped", who.get("siteGroup", {}).get("displayName", ""))}


def _target_audience(perm: dict[str, Any], people_group: str | None) -> set[tuple[str, str]]:
    roles = ",".join(sorted(perm["roles"]))
    if "link" in perm:
        scope = perm["link"]["scope"]
        # A trust tenant's organisation link opens to every academy: wider than one academy.
        return {("trust" if scope == "organization" else scope if scope == "anonymous" else "anyone", roles)}
    who = perm["grantedToV2"]
    if "group" in who and who["group"]["id"] == people_group:
        return {("academy", roles)}
    if "group" in who:
        return {("group", who["group"]["id"])}
    return {("person", who["user"]["id"])}


WIDER_THAN = {"trust": {"academy"}, "anyone": {"academy", "trust"}}


def _compare(w: World, seeded: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Per seeded kind: 'same', or 'narrower' (asserted to carry a finding); fails on anything wider."""
    ids = _trust_ids(w)
    group_rows = w.rows(
        "SELECT target_id FROM journal WHERE phase = 'permissions' AND step_key = 'audience' "
        "AND event = 'done' ORDER BY seq DESC LIMIT 1"
    )
    people_group = group_rows[0]["target_id"] if group_rows else None
    copies = {
        r["source_id"]: (r["target_drive"], r["target_id"]) for r in w.rows("SELECT * FROM file_copies")
    }
    findings = {r["object_id"] for r in w.rows("SELECT object_id FROM share_findings")}
    drives = {r["drive_key"]: r["source_drive_id"] for r in w.rows("SELECT * FROM drives")}
    out: dict[str, str] = {}
    with w.graph(w.source) as src, w.graph(TARGET) as tgt:
        for sid, seed in seeded.items():
            r = src.get(f"/drives/{drives[seed['drive_key']]}/items/{sid}/permissions")
            (perm,) = [p for p in r.json()["value"] if p["id"] == seed["perm"]]
            source = _source_audience(perm, ids)
            # Graph never says which grants are inherited in SharePoint (no inheritedFrom): a grant the
            # copy's parent lists with the same id comes from the parent, not from this item's sharing.
            tdrive, titem = copies[sid]
            parent = tgt.get(f"/drives/{tdrive}/items/{titem}").json()["parentReference"]["id"]
            inherited = {
                q["id"] for q in tgt.get(f"/drives/{tdrive}/items/{parent}/permissions").json()["value"]
            }
            live = [
                p
                for p in tgt.get(f"/drives/{tdrive}/items/{titem}/permissions").json()["value"]
                if p["id"] not in inherited
                and "owner" not in p["roles"]
                and "siteGroup" not in p.get("grantedToV2", {})
            ]
            target: set[tuple[str, str]] = set()
            for p in live:
                target |= _target_audience(p, people_group)
                if "link" in p and perm.get("expirationDateTime"):
                    # a copy of an expiring link must expire no later than its source
                    assert p.get("expirationDateTime") == perm["expirationDateTime"], (seed["kind"], p)
            for who in target:
                assert who in source, f"{seed['kind']}: the copy lets in {who}, the source only {source}"
            if target == source:
                out[seed["kind"]] = "same"
            else:
                assert any(f.startswith(f"{seed['drive_key']}|{sid}|{seed['perm']}") for f in findings), (
                    f"{seed['kind']}: narrower ({target} of {source}) without a finding"
                )
                out[seed["kind"]] = "narrower"
    return out


def _get_honouring_retry_after(client: httpx.Client, path: str) -> dict[str, Any]:
    """The test's own reads spend the legacy tenant's SharePoint budget too (a throttled request counts): it
    waits as a client must when told to."""
    for _ in range(60):
        r = client.get(path)
        if r.status_code not in (429, 503):
            r.raise_for_status()
            return dict(r.json())
        time.sleep(float(r.headers.get("Retry-After", "1")))
    raise AssertionError(f"{path} still throttled")


@pytest.fixture(scope="module")
def seeded(copied: World) -> Iterator[tuple[World, dict[str, dict[str, Any]]]]:
    yield copied, _seed(copied)


def test_every_grant_keeps_its_audience_by_default(seeded: tuple[World, dict[str, dict[str, Any]]]) -> None:
    w, seeds = seeded
    result = w.cli.json("run", "hillside", "--phase", "permissions", "--replan")
    assert result["status"] == "succeeded", result
    seen = _compare(w, seeds)
    assert seen == {
        "member": "same",
        "group": "same",
        "guest": "narrower",
        **({"disabled": seen["disabled"]} if "disabled" in seen else {}),  # a finding unless carried
        "site-group": "narrower",
        "academy-view": "same",  # a grant to the academy's people group
        "academy-edit-expiring": "narrower",  # a grant cannot expire: not carried
        "academy-no-download": "narrower",  # Graph cannot block download: not carried
        "academy-expired": "narrower",
        "anyone-password": "narrower",
        "anyone-expiring": "narrower",  # Anyone links are forbidden by default
        "people": "narrower",  # the member carried, the guest listed
    }
    # No organisation link anywhere in the trust tenant: academy-wide never became trust-wide.
    for drive, item in w.copies().values():
        assert not [p for p in w.direct(drive, item) if p.get("link", {}).get("scope") == "organization"]
    # The people group holds exactly the academy's migrated members (no guest).
    gid = w.rows(
        "SELECT target_id FROM journal WHERE phase = 'permissions' AND step_key = 'audience' "
        "AND event = 'done'"
    )[0]["target_id"]
    with w.graph() as g:
        members = {m["id"] for m in g.get(f"/groups/{gid}/members", params={"$top": "999"}).json()["value"]}
        group = g.get(f"/groups/{gid}").json()
    assert group["displayName"] == "Hillside Academy Everyone" and group["securityEnabled"] is True
    ids = _trust_ids(w)
    guests = {
        r["object_id"]
        for r in w.rows("SELECT object_id, data FROM inventory WHERE kind = 'user'")
        if json.loads(r["data"]).get("userType") == "Guest"
    }
    mapped = {
        ids[r["source_id"]]
        for r in w.rows("SELECT source_id FROM mappings WHERE kind = 'user' AND action != 'skip'")
        if r["source_id"] in ids and r["source_id"] not in guests
    }
    assert members == mapped and members
    verified = w.cli("verify", "hillside", "--json", check=False)
    assert json.loads(verified.stdout)["permissions"]["differences"] == [], verified.stdout


def test_verify_reports_a_wider_audience(seeded: tuple[World, dict[str, dict[str, Any]]]) -> None:
    """A trust-wide link on a copy whose source was academy-wide (what trustfold used to make) and a
    stranger slipped into the people group are both differences."""
    w, seeds = seeded
    sid = next(s for s, v in seeds.items() if v["kind"] == "academy-view")
    drive, item = next(
        (r["target_drive"], r["target_id"])
        for r in w.rows("SELECT * FROM file_copies")
        if r["source_id"] == sid
    )
    gid = w.rows(
        "SELECT target_id FROM journal WHERE phase = 'permissions' AND step_key = 'audience' "
        "AND event = 'done'"
    )[0]["target_id"]
    with w.graph() as g:
        link = g.post(
            f"/drives/{drive}/items/{item}/createLink", json={"type": "view", "scope": "organization"}
        )
        assert link.status_code == 201, link.text
        stranger = make_user(g, displayName="Someone Else")["id"]
        body = {"members@odata.bind": [f"https://graph.microsoft.com/v1.0/directoryObjects/{stranger}"]}
        assert g.patch(f"/groups/{gid}", json=body).status_code == 204
    try:
        verified = w.cli("verify", "hillside", "--json", check=False)
        assert verified.returncode == 1
        diffs = json.loads(verified.stdout)["permissions"]["differences"]
        wider = [d for d in diffs if d["kind"] == "permission-wider"]
        assert len(wider) == 2, diffs
        assert any("organization link" in d["message"] for d in wider)
        assert any("Someone Else" in d["message"] for d in wider)
    finally:
        with w.graph() as g:
            g.delete(f"/drives/{drive}/items/{item}/permissions/{link.json()['id']}")
            g.delete(f"/groups/{gid}/members/{stranger}/$ref")
    # With the link and the stranger removed again, verify is clean.
    assert w.cli("verify", "hillside", "--json", check=False).returncode == 0


def test_trust_wide_by_decision_and_restrictions_carried(
    seeded: tuple[World, dict[str, dict[str, Any]]], tmp_path: Path
) -> None:
    """`organization_links: trust-wide` (with Anyone links allowed): academy-wide links become trust-wide
    links with a finding each; an expiry is re-applied on every link trustfold creates; a password or
    block-download is still not carried (stricter); the report says all of it."""
    base, seeds = seeded
    rolled = base.cli.json("rollback", "hillside", "--phase", "permissions", "--yes")
    assert rolled[0]["result"]["status"] == "succeeded", rolled
    assert rolled[0]["steps"][-1].startswith("delete group 'Hillside Academy Everyone'")
    w = variant(base, tmp_path, "organization_links: trust-wide, anonymous_links: allow")
    result = w.cli.json("run", "hillside", "--phase", "permissions", "--replan")
    assert result["status"] == "succeeded", result
    ids = _trust_ids(w)
    copies = {
        r["source_id"]: (r["target_drive"], r["target_id"]) for r in w.rows("SELECT * FROM file_copies")
    }
    by_kind = {v["kind"]: s for s, v in seeds.items()}
    with w.graph() as g:

        def links(kind: str) -> list[dict[str, Any]]:
            d, i = copies[by_kind[kind]]
            return [p for p in g.get(f"/drives/{d}/items/{i}/permissions").json()["value"] if "link" in p]

        (view,) = links("academy-view")
        assert view["link"]["scope"] == "organization" and "expirationDateTime" not in view
        (edit,) = links("academy-edit-expiring")
        assert edit["link"]["scope"] == "organization" and edit["expirationDateTime"] == FUTURE
        (anyone,) = links("anyone-expiring")
        assert anyone["link"]["scope"] == "anonymous" and anyone["expirationDateTime"] == FUTURE
        for kind in ("academy-no-download", "anyone-password", "academy-expired"):
            assert links(kind) == [], kind
    assert ids
    found = {
        r["kind"]: r["handling"]
        for r in w.rows("SELECT kind, handling FROM share_findings WHERE academy = 'hillside'")
    }
    assert "trust-wide" in found["sharing-trust-wide-link"]
    for kind in ("sharing-link-password", "sharing-link-blocks-download", "sharing-link-expired"):
        assert kind in found, kind
    verified = w.cli("verify", "hillside", "--json", check=False)
    assert json.loads(verified.stdout)["permissions"]["differences"] == [], verified.stdout
    store = StateStore.open(w.state)
    try:
        text = render_md(build_report(store, load_trust(w.cli.config), "hillside"))
    finally:
        store.close()
    assert "Sharing audience: Sharing keeps its audience" in text
    assert re.search(r"trust-wide by decision: [1-9]\d*;", text), text
    assert re.search(r"narrowed \(not carried, stricter\): [1-9]", text), text
    assert "link-organization (trust-wide) " in text
    w.cli.json("rollback", "hillside", "--phase", "permissions", "--yes")


def test_someone_elses_group_with_the_people_groups_name_gets_no_sharing(
    seeded: tuple[World, dict[str, dict[str, Any]]],
) -> None:
    """A group holding the people group's mailNickname that trustfold did not create is never used: its
    members are not the academy's to vouch for. The step fails naming the group; nothing is shared to it."""
    w, _ = seeded
    trust = load_trust(CONFIG)
    _, nickname = trust.names.entra_group(trust.academy("hillside"), "everyone")
    with w.graph() as g:
        body = {
            "displayName": "Everyone (made by hand)",
            "mailNickname": nickname,
            "mailEnabled": False,
            "securityEnabled": True,
            "groupTypes": [],
            "description": "made by hand",
        }
        r = g.post("/groups", json=body)
        assert r.status_code == 201, r.text
        foreign = r.json()["id"]
    try:
        proc = w.cli("run", "hillside", "--phase", "permissions", "--replan", check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert f"a group with mailNickname {nickname} exists that trustfold did not create" in proc.stderr
        for drive, item in w.copies().values():
            assert not [
                p
                for p in w.direct(drive, item)
                if p.get("grantedToV2", {}).get("group", {}).get("id") == foreign
            ]
    finally:
        w.cli("rollback", "hillside", "--phase", "permissions", "--yes", check=False)
        with w.graph() as g:
            g.delete(f"/groups/{foreign}")


def test_killed_after_creating_the_people_group_adopts_it(
    seeded: tuple[World, dict[str, dict[str, Any]]],
) -> None:
    """SIGKILL after the group reached the trust tenant, before the journal heard of it: the next run finds
    it (its nickname and trustfold's description) instead of making a second one; rollback deletes it."""
    w, _ = seeded
    trust = load_trust(CONFIG)
    _, nickname = trust.names.entra_group(trust.academy("hillside"), "everyone")

    def groups() -> list[str]:
        with w.graph() as g:
            r = g.get("/groups", params={"$filter": f"mailNickname eq '{nickname}'", "$select": "id"})
        return [x["id"] for x in r.json()["value"]]

    assert groups() == []
    proc = run_with(
        w.cli,
        {KILL: "outcome:ensure-audience-group:1:before"},
        "run",
        "hillside",
        "--phase",
        "permissions",
        "--replan",
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (made,) = groups()
    result = w.cli.json("run", "hillside", "--phase", "permissions", "--replan")
    assert result["status"] == "succeeded", result
    assert groups() == [made]
    assert w.cli("verify", "hillside", "--json", check=False).returncode == 0
    w.cli("rollback", "hillside", "--phase", "permissions", "--yes")
    assert groups() == []

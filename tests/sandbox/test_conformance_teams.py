"""Conformance of the sandbox's Teams (issue 25): one test per behaviour, each naming the Microsoft page it
follows (docs/sandbox.md, "Teams"). The session sandbox runs with throttling off; tests that need the Teams
limits, the new-group delay or the async time set them and put them back."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sandbox.settings import Budget
from sandbox.testing import SandboxURL, token
from tests.sandbox.conftest import error_of, make_group, make_user, unique

OTHER_APP = "00000000-0000-0000-0000-0000000beef1"
WEB_APP = "https://graph.microsoft.com/v1.0/appCatalogs/teamsApps/com.microsoft.teamspace.tab.web"
STANDARD = "https://graph.microsoft.com/v1.0/teamsTemplates('standard')"
CLASS = "https://graph.microsoft.com/v1.0/teamsTemplates('educationClass')"
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\nnot-really-a-png").decode()


@contextlib.contextmanager
def teams_settings(url: SandboxURL, **changes: Any) -> Iterator[None]:
    world = url.world
    before = world.settings
    world.apply_settings(before.replace(**changes))
    try:
        yield
    finally:
        world.apply_settings(before)


@pytest.fixture
def instant(sandbox_url: SandboxURL) -> Iterator[None]:
    """No new-group delay and no async wait: most tests are about something else."""
    with teams_settings(sandbox_url, teams_group_delay_s=0.0, teams_operation_s=0.0):
        yield


def owned_group(client: httpx.Client) -> tuple[dict, dict]:
    owner = make_user(client)
    group = make_group(
        client,
        unified=True,
        **{"owners@odata.bind": [f"https://graph.microsoft.com/v1.0/users/{owner['id']}"]},
    )
    return group, owner


def new_team(client: httpx.Client) -> tuple[str, dict]:
    group, owner = owned_group(client)
    r = client.put(f"/groups/{group['id']}/team", json={})
    assert r.status_code == 201, r.text
    return group["id"], owner


def other_client(url: SandboxURL, tenant_id: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{url}/v1.0",
        headers={"Authorization": f"Bearer {token(url, tenant_id, client_id=OTHER_APP)}"},
        timeout=30,
    )


def migration_channel(client: httpx.Client, team_id: str, created: datetime) -> dict:
    r = client.post(
        f"/teams/{team_id}/channels",
        json={
            "@microsoft.graph.channelCreationMode": "migration",
            "displayName": unique("Hist"),
            "createdDateTime": created.isoformat().replace("+00:00", "Z"),
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def imported(author: dict, when: datetime, text: str = "hello", **extra: Any) -> dict:
    return {
        "createdDateTime": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "from": {
            "user": {"id": author["id"], "displayName": author["displayName"], "userIdentityType": "aadUser"}
        },
        "body": {"contentType": "html", "content": f"<p>{text}</p>"},
        **extra,
    }


# ---- teams -------------------------------------------------------------------------------------------------
def test_team_from_group_waits_for_replication_and_needs_an_owner(target, sandbox_url):
    """team-put-teams: a group created less than 15 minutes ago may answer 404 (retry, bounded); the group
    needs at least one owner; 201 with the team; a second PUT conflicts; the group shows the Team option."""
    group, _ = owned_group(target)
    with teams_settings(sandbox_url, teams_group_delay_s=60.0):
        err = error_of(target.put(f"/groups/{group['id']}/team", json={}))
        assert err["code"] == "NotFound"
    with teams_settings(sandbox_url, teams_group_delay_s=0.0):
        ownerless = make_group(target, unified=True)
        err = error_of(target.put(f"/groups/{ownerless['id']}/team", json={}))
        assert "at least one owner" in err["message"]
        security = make_group(target)
        assert target.put(f"/groups/{security['id']}/team", json={}).status_code == 400
        r = target.put(
            f"/groups/{group['id']}/team",
            json={"funSettings": {"allowGiphy": False, "giphyContentRating": "strict"}},
        )
        assert r.status_code == 201, r.text
        team = r.json()
        assert team["id"] == group["id"] and team["specialization"] == "none"
        assert team["funSettings"]["allowGiphy"] is False
        assert team["messagingSettings"]["allowUserEditMessages"] is True
        assert target.put(f"/groups/{group['id']}/team", json={}).status_code == 409
    assert "Team" in target.get(f"/groups/{group['id']}").json()["resourceProvisioningOptions"]
    assert target.get(f"/teams/{group['id']}").json()["funSettings"]["giphyContentRating"] == "strict"
    assert target.get(f"/groups/{group['id']}/team").status_code == 200


def test_team_settings_are_checked_and_patched(target, instant):
    """team-update: settings objects with known properties and typed values; 204."""
    tid, _ = new_team(target)
    bad = target.patch(f"/teams/{tid}", json={"memberSettings": {"allowEverything": True}})
    assert bad.status_code == 400
    assert (
        target.patch(f"/teams/{tid}", json={"funSettings": {"giphyContentRating": "wild"}}).status_code == 400
    )
    assert (
        target.patch(f"/teams/{tid}", json={"memberSettings": {"allowDeleteChannels": False}}).status_code
        == 204
    )
    assert target.get(f"/teams/{tid}").json()["memberSettings"]["allowDeleteChannels"] is False


def test_post_teams_is_asynchronous(target, sandbox_url, target_id):
    """team-post: 202 Accepted, Location a teamsAsyncOperation, Content-Location the team; the team answers
    404 until the operation succeeded; app-only creation needs an owner among members."""
    owner = make_user(target)
    body = {"template@odata.bind": STANDARD, "displayName": unique("Team ")}
    assert error_of(target.post("/teams", json=body))["code"] == "BadRequest"
    body["members"] = [
        {
            "@odata.type": "#microsoft.graph.aadUserConversationMember",
            "roles": ["owner"],
            "user@odata.bind": f"https://graph.microsoft.com/v1.0/users('{owner['id']}')",
        }
    ]
    with teams_settings(sandbox_url, teams_operation_s=60.0):
        r = target.post("/teams", json=body)
        assert r.status_code == 202 and not r.content
        location, team_at = r.headers["Location"], r.headers["Content-Location"]
        tid = team_at.split("'")[1]
        assert location.startswith(f"/teams('{tid}')/operations('")
        op = target.get(location.replace("('", "/").replace("')", "")).json()
        assert op["status"] == "inProgress" and op["targetResourceId"] == tid
        assert target.get(f"/teams/{tid}").status_code == 404
        store = sandbox_url.world.tenant(target_id).teams
        store.teams[tid]["_ready"] = 0
        for o in store.operations.values():
            o["_ready"] = 0
    assert target.get(location.replace("('", "/").replace("')", "")).json()["status"] == "succeeded"
    assert target.get(f"/teams/{tid}").json()["displayName"] == body["displayName"]


# ---- education ---------------------------------------------------------------------------------------------
def test_class_team_from_an_education_class(target, instant):
    """educationclass-post, educationclass-post-teachers/members, educationclass-get-group, team-post ("create
    a team from a class", educationClass template): a class team is a class's group with the template:
    specialization educationClass, membership limited to owners, Assignments and Class Notebook installed,
    Class Materials in General's files."""
    nick = unique("cls")
    r = target.post(
        "/education/classes",
        json={"displayName": "7A Maths", "mailNickname": nick, "description": "Maths", "classCode": "7AMA"},
    )
    assert r.status_code == 201, r.text
    cls = r.json()
    assert cls["externalSource"] == "manual" and cls["classCode"] == "7AMA"
    assert target.post("/education/classes", json={"displayName": "x"}).status_code == 400
    teacher, pupil = make_user(target), make_user(target)
    ref = "https://graph.microsoft.com/v1.0/education/users/"
    assert (
        target.post(
            f"/education/classes/{cls['id']}/teachers/$ref", json={"@odata.id": ref + teacher["id"]}
        ).status_code
        == 204
    )
    assert (
        target.post(
            f"/education/classes/{cls['id']}/members/$ref", json={"@odata.id": ref + pupil["id"]}
        ).status_code
        == 204
    )
    again = target.post(f"/education/classes/{cls['id']}/members/$ref", json={"@odata.id": ref + pupil["id"]})
    assert again.status_code == 400
    assert [u["id"] for u in target.get(f"/education/classes/{cls['id']}/teachers").json()["value"]] == [
        teacher["id"]
    ]
    group = target.get(f"/education/classes/{cls['id']}/group").json()
    assert group["id"] == cls["id"] and "HideGroupInOutlook" in group["resourceBehaviorOptions"]
    assert any(c["id"] == cls["id"] for c in target.get("/education/classes").json()["value"])
    plain, _ = owned_group(target)
    refused = target.post(
        "/teams",
        json={
            "template@odata.bind": CLASS,
            "group@odata.bind": f"https://graph.microsoft.com/v1.0/groups('{plain['id']}')",
        },
    )
    assert refused.status_code == 400
    r = target.post(
        "/teams",
        json={
            "template@odata.bind": CLASS,
            "group@odata.bind": f"https://graph.microsoft.com/v1.0/groups('{cls['id']}')",
        },
    )
    assert r.status_code == 202, r.text
    team = target.get(f"/teams/{cls['id']}").json()
    assert team["specialization"] == "educationClass" and team["isMembershipLimitedToOwners"] is True
    apps = target.get(f"/teams/{cls['id']}/installedApps", params={"$expand": "teamsApp"}).json()["value"]
    assert {"Assignments", "OneNote"} <= {a["teamsApp"]["displayName"] for a in apps}
    general = target.get(f"/teams/{cls['id']}/primaryChannel").json()
    folder = target.get(f"/teams/{cls['id']}/channels/{general['id']}/filesFolder").json()
    children = target.get(
        f"/drives/{folder['parentReference']['driveId']}/items/{folder['id']}/children"
    ).json()
    assert [c["name"] for c in children["value"]] == ["Class Materials"]
    tabs = target.get(f"/teams/{cls['id']}/channels/{general['id']}/tabs").json()["value"]
    assert {"Class Notebook", "Assignments"} <= {t["displayName"] for t in tabs}


# ---- channels ----------------------------------------------------------------------------------------------
def test_channel_names_kinds_and_files_folders(target, instant):
    """channel-post and channel-get-filesfolder, teams-connected-sites, limits-specifications-teams (channel
    names): names checked and unique in the team; a standard channel's folder sits in the team site's library
    named after it; a private channel has its own site and needs an owner in app-only creation."""
    tid, owner = new_team(target)
    for bad in ("a/b", "_x", "x.", "y" * 51, ""):
        assert target.post(f"/teams/{tid}/channels", json={"displayName": bad}).status_code == 400, bad
    r = target.post(f"/teams/{tid}/channels", json={"displayName": "Homework", "description": "Due work"})
    assert r.status_code == 201, r.text
    homework = r.json()
    assert homework["membershipType"] == "standard" and homework["id"].startswith("19:")
    dup = error_of(target.post(f"/teams/{tid}/channels", json={"displayName": "homework"}))
    assert dup["code"] == "NameAlreadyExists"
    general = target.get(f"/teams/{tid}/primaryChannel").json()
    assert general["displayName"] == "General"
    g_folder = target.get(f"/teams/{tid}/channels/{general['id']}/filesFolder").json()
    h_folder = target.get(f"/teams/{tid}/channels/{homework['id']}/filesFolder").json()
    assert h_folder["name"] == "Homework"
    assert h_folder["parentReference"]["driveId"] == g_folder["parentReference"]["driveId"]
    put = target.put(
        f"/drives/{h_folder['parentReference']['driveId']}/items/{h_folder['id']}:/sheet.txt:/content",
        content=b"x",
    )
    assert put.status_code in (200, 201), put.text
    body = {"displayName": "Staff only", "membershipType": "private"}
    assert target.post(f"/teams/{tid}/channels", json=body).status_code == 400
    body["members"] = [
        {
            "@odata.type": "#microsoft.graph.aadUserConversationMember",
            "user@odata.bind": f"https://graph.microsoft.com/v1.0/users('{owner['id']}')",
            "roles": ["owner"],
        }
    ]
    r = target.post(f"/teams/{tid}/channels", json=body)
    assert r.status_code == 201, r.text
    private = r.json()
    p_folder = target.get(f"/teams/{tid}/channels/{private['id']}/filesFolder").json()
    assert p_folder["parentReference"]["driveId"] != g_folder["parentReference"]["driveId"]
    assert p_folder["parentReference"]["siteId"] != g_folder["parentReference"]["siteId"]
    members = target.get(f"/teams/{tid}/channels/{private['id']}/members").json()["value"]
    assert [(m["userId"], m["roles"]) for m in members] == [(owner["id"], ["owner"])]
    private_only = target.get(
        f"/teams/{tid}/channels", params={"$filter": "membershipType eq 'private'"}
    ).json()
    assert [c["id"] for c in private_only["value"]] == [private["id"]]
    assert target.delete(f"/teams/{tid}/channels/{general['id']}").status_code == 400


def test_tabs_website_and_file(target, instant):
    """channel-post-tabs, teams-configuring-builtin-tabs: a known app, https contentUrl and websiteUrl for a
    website tab, entityId and contentUrl for a file tab; unknown apps are not installed."""
    tid, _ = new_team(target)
    general = target.get(f"/teams/{tid}/primaryChannel").json()
    tabs = f"/teams/{tid}/channels/{general['id']}/tabs"
    web = {
        "displayName": "BBC",
        "teamsApp@odata.bind": WEB_APP,
        "configuration": {"contentUrl": "http://x", "websiteUrl": "http://x"},
    }
    assert target.post(tabs, json=web).status_code == 400
    web["configuration"] = {"contentUrl": "https://www.bbc.co.uk", "websiteUrl": "https://www.bbc.co.uk"}
    r = target.post(tabs, json=web)
    assert r.status_code == 201, r.text
    assert r.json()["teamsApp"]["id"] == "com.microsoft.teamspace.tab.web"
    unknown = dict(
        web, **{"teamsApp@odata.bind": "https://graph.microsoft.com/v1.0/appCatalogs/teamsApps/nope"}
    )
    assert target.post(tabs, json=unknown).status_code == 404
    file_tab = {
        "displayName": "Plan.docx",
        "teamsApp@odata.bind": "https://graph.microsoft.com/v1.0/appCatalogs/teamsApps/com.microsoft.teamspace.tab.file.staticviewer.word",
        "configuration": {
            "entityId": "ABC",
            "contentUrl": "https://contoso.sharepoint.com/sites/x/Shared%20Documents/General/Plan.docx",
        },
    }
    assert target.post(tabs, json=file_tab).status_code == 201
    listed = target.get(tabs, params={"$expand": "teamsApp"}).json()["value"]
    assert {t["displayName"] for t in listed} == {"BBC", "Plan.docx"}


# ---- messages ----------------------------------------------------------------------------------------------
def test_reading_channel_messages_is_a_protected_api(source, sandbox_url, source_id):
    """teams-protected-apis: app-only reads of channel messages answer 403 until Microsoft approves the app;
    then root messages newest first, replies, and inline images through hostedContents/$value."""
    tid = source.get("/teams").json()["value"][0]["id"]
    general = source.get(f"/teams/{tid}/primaryChannel").json()
    url = f"/teams/{tid}/channels/{general['id']}/messages"
    err = error_of(source.get(url))
    assert err["code"] == "Forbidden" and "Protected API" in err["message"]
    app = "00000000-0000-0000-0000-00000000c0de"
    approve = f"{sandbox_url}/sandbox/tenants/{source_id}/teams/protected-api"
    assert httpx.post(approve, json={"appId": app, "approved": True}).status_code == 200
    try:
        msgs = source.get(url).json()["value"]
        assert msgs and all(m["replyToId"] is None for m in msgs)
        assert [m["createdDateTime"] for m in msgs] == sorted(
            (m["createdDateTime"] for m in msgs), reverse=True
        )
        with_reply = next(m for m in msgs if source.get(f"{url}/{m['id']}/replies").json()["value"])
        reply = source.get(f"{url}/{with_reply['id']}/replies").json()["value"][0]
        assert reply["replyToId"] == with_reply["id"] and reply["from"]["user"]["id"]
        assert source.get(url, params={"$top": "51"}).status_code == 400
        # The generator gives one class message per academy an inline image.
        pictures = [
            (t["id"], c["id"], m)
            for t in source.get("/teams").json()["value"]
            for c in source.get(f"/teams/{t['id']}/channels").json()["value"]
            if c["membershipType"] == "standard"
            for m in source.get(f"/teams/{t['id']}/channels/{c['id']}/messages").json()["value"]
            if "hostedContents" in m["body"]["content"]
        ]
        assert pictures
        team_id, cid, m = pictures[0]
        hosted = source.get(f"/teams/{team_id}/channels/{cid}/messages/{m['id']}/hostedContents").json()[
            "value"
        ]
        data = source.get(
            f"/teams/{team_id}/channels/{cid}/messages/{m['id']}/hostedContents/{hosted[0]['id']}/$value"
        )
        assert data.status_code == 200 and data.content.startswith(b"\x89PNG")
    finally:
        httpx.post(approve, json={"appId": app, "approved": False})


def test_message_import_in_migration_mode(target, sandbox_url, target_id, instant):
    """teams-import-messages, channel-completemigration: a channel created in migration mode takes messages
    with their original `from` and createdDateTime (after the channel's, not in the future, unique to the
    millisecond or 409), only from the app that started the migration; completion by that app alone; after
    it, imports are refused; outside migration mode an app cannot post at all."""
    tid, owner = new_team(target)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    channel = migration_channel(target, tid, start)
    assert channel["migrationMode"] == "inProgress"
    url = f"/teams/{tid}/channels/{channel['id']}/messages"
    when = start + timedelta(days=3, milliseconds=123)
    r = target.post(url, json=imported(owner, when))
    assert r.status_code == 201, r.text
    msg = r.json()
    assert msg["createdDateTime"] == "2024-01-04T00:00:00.123Z" and msg["from"]["user"]["id"] == owner["id"]
    assert error_of(target.post(url, json=imported(owner, when)))["code"] == "Conflict"
    assert target.post(url, json=imported(owner, when + timedelta(milliseconds=1))).status_code == 201
    assert target.post(url, json=imported(owner, start - timedelta(days=1))).status_code == 400
    assert target.post(url, json=imported(owner, datetime.now(UTC) + timedelta(days=1))).status_code == 400
    nobody = imported(owner, when + timedelta(seconds=5))
    nobody["from"] = {"user": {"id": "00000000-0000-0000-0000-000000000000"}}
    assert target.post(url, json=nobody).status_code == 400
    reply = target.post(f"{url}/{msg['id']}/replies", json=imported(owner, when + timedelta(hours=1), "re"))
    assert reply.status_code == 201 and reply.json()["replyToId"] == msg["id"]
    image = imported(
        owner,
        when + timedelta(hours=2),
        'pic <img src="../hostedContents/1/$value">',
        hostedContents=[
            {"@microsoft.graph.temporaryId": "1", "contentBytes": PIXEL, "contentType": "image/png"}
        ],
    )
    r = target.post(url, json=image)
    assert r.status_code == 201, r.text
    assert (
        "/hostedContents/" in r.json()["body"]["content"]
        and "../hostedContents" not in r.json()["body"]["content"]
    )
    with other_client(sandbox_url, target_id) as other:
        assert other.post(url, json=imported(owner, when + timedelta(hours=3))).status_code == 403
        assert other.post(f"/teams/{tid}/channels/{channel['id']}/completeMigration").status_code == 403
    assert target.post(f"/teams/{tid}/channels/{channel['id']}/completeMigration").status_code == 204
    after = error_of(target.post(url, json=imported(owner, when + timedelta(hours=4))))
    assert after["code"] == "Forbidden"
    state = httpx.get(
        f"{sandbox_url}/sandbox/tenants/{target_id}/teams/{tid}/channels/{channel['id']}/messages"
    ).json()
    assert state["migrationMode"] == "completed" and len(state["value"]) == 4
    general = target.get(f"/teams/{tid}/primaryChannel").json()
    plain = {"body": {"content": "hi"}}
    err = error_of(target.post(f"/teams/{tid}/channels/{general['id']}/messages", json=plain))
    assert err["code"] == "Unauthorized" and "only for import" in err["message"]


def test_start_migration_on_an_existing_channel(target, sandbox_url, target_id, instant):
    """channel-startmigration: the calling app owns the session; conversationCreationDateTime must be older
    than the channel's createdDateTime and replaces it; starting twice conflicts, another app is refused."""
    tid, owner = new_team(target)
    ch = target.post(f"/teams/{tid}/channels", json={"displayName": unique("Old")}).json()
    base = f"/teams/{tid}/channels/{ch['id']}"
    future = {"conversationCreationDateTime": "2999-01-01T00:00:00Z"}
    assert target.post(f"{base}/startMigration", json=future).status_code == 400
    assert (
        target.post(
            f"{base}/startMigration", json={"conversationCreationDateTime": "2023-09-01T00:00:00Z"}
        ).status_code
        == 204
    )
    assert target.get(base).json()["createdDateTime"].startswith("2023-09-01")
    assert target.post(f"{base}/startMigration", json={}).status_code == 409
    with other_client(sandbox_url, target_id) as other:
        assert other.post(f"{base}/startMigration", json={}).status_code == 403
    assert (
        target.post(f"{base}/messages", json=imported(owner, datetime(2023, 10, 1, tzinfo=UTC))).status_code
        == 201
    )


def test_teams_service_limits(target, sandbox_url, instant):
    """throttling-limits, "Microsoft Teams service limits": requests per team and message imports per
    channel are limited per app; the answer is 429 with Retry-After in whole seconds."""
    tid, owner = new_team(target)
    channel = migration_channel(target, tid, datetime(2024, 1, 1, tzinfo=UTC))
    url = f"/teams/{tid}/channels/{channel['id']}/messages"
    with teams_settings(
        sandbox_url, throttling=True, teams_import=Budget(2, 60.0), teams_per_team=Budget(100, 1.0)
    ):
        codes = [
            target.post(url, json=imported(owner, datetime(2024, 2, 1, 0, 0, i, tzinfo=UTC))).status_code
            for i in range(3)
        ]
        assert codes == [201, 201, 429]
        r = target.post(url, json=imported(owner, datetime(2024, 2, 2, tzinfo=UTC)))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    with teams_settings(sandbox_url, throttling=True, teams_per_team=Budget(2, 60.0)):
        codes = [target.get(f"/teams/{tid}").status_code for _ in range(3)]
        assert codes == [200, 200, 429]


def test_teams_survive_a_save_and_load(sandbox_url, source_id):
    """The world's state file carries teams, channels, messages and classes."""
    from sandbox.world import TenantState

    t = sandbox_url.world.tenant(source_id)
    again = TenantState.from_state(t.to_state())
    assert again.teams.to_state() == t.teams.to_state()
    assert again.snapshot()["teams"] == t.snapshot()["teams"]

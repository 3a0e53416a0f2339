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
from tests.sandbox.conftest import CONFIG, error_of, make_group, make_user, unique

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
    with teams_settings(sandbox_url, teams_group_delay_s=0.0, teams_operation_s=0.0, teams_site_delay_s=0.0):
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
    specialization educationClass, hidden membership, Assignments and Class Notebook installed,
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
    assert group["visibility"] == "HiddenMembership"
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
    assert team["specialization"] == "educationClass" and team["visibility"] == "hiddenMembership"
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
    # channel-patch-tabs: re-pointing a tab is checked as creating one.
    bbc = next(t for t in listed if t["displayName"] == "BBC")
    assert (
        target.patch(f"{tabs}/{bbc['id']}", json={"configuration": {"contentUrl": "ftp://x"}}).status_code
        == 400
    )
    moved = {"configuration": {"contentUrl": "https://example.org/", "websiteUrl": "https://example.org/"}}
    r = target.patch(f"{tabs}/{bbc['id']}", json=moved)
    assert r.status_code == 200 and r.json()["configuration"]["websiteUrl"] == "https://example.org/"


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
    admin = f"{sandbox_url}/sandbox/tenants/{target_id}/teams/{tid}/channels/{channel['id']}/messages"
    by_user = httpx.post(admin, json={"from": owner["id"], "content": "typed in Teams"})
    assert by_user.status_code == 400 and "migration mode" in by_user.json()["error"]  # users cannot post
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


def test_a_channels_requests_are_its_own_not_its_teams(target, sandbox_url, instant):
    """throttling-limits, "Microsoft Teams service limits": "4 requests per second per app ... on a given
    team or channel". A request on a channel is counted against that channel: two channels of one team each
    have the whole limit, and the team's own requests are untouched by theirs (were a channel's requests its
    team's too, a channel's limit could never bind and the page would not name it)."""
    tid, _ = new_team(target)
    a = migration_channel(target, tid, datetime(2024, 1, 1, tzinfo=UTC))["id"]
    b = migration_channel(target, tid, datetime(2024, 1, 1, tzinfo=UTC))["id"]
    with teams_settings(sandbox_url, throttling=True, teams_per_team=Budget(2, 60.0)):
        codes = [target.get(f"/teams/{tid}/channels/{cid}").status_code for cid in (a, b, a, b)]
        assert codes == [200, 200, 200, 200]
        assert target.get(f"/teams/{tid}/channels/{a}").status_code == 429
        assert [target.get(f"/teams/{tid}").status_code for _ in range(3)] == [200, 200, 429]


def test_teams_survive_a_save_and_load(sandbox_url, source_id):
    """The world's state file carries teams, channels, messages and classes."""
    from sandbox.world import TenantState

    t = sandbox_url.world.tenant(source_id)
    again = TenantState.from_state(t.to_state())
    assert again.teams.to_state() == t.teams.to_state()
    assert again.snapshot()["teams"] == t.snapshot()["teams"]


def test_routes_need_their_application_roles(target, sandbox_url, target_id, instant):
    """teams-import-messages (Teamwork.Migrate.All alone) and channel-list-messages
    (ChannelMessage.Read.All): without the role, 403 Authorization_RequestDenied before anything runs."""
    from sandbox.tenancy import ALL_ROLES

    tid, owner = new_team(target)
    channel = migration_channel(target, tid, datetime(2024, 1, 1, tzinfo=UTC))
    tenant = sandbox_url.world.tenant(target_id)
    before = tenant.granted_roles
    tenant.granted_roles = [
        r
        for r in ALL_ROLES
        if r not in ("Teamwork.Migrate.All", "ChannelMessage.Read.All", "ChannelMessage.ReadWrite.All")
    ]
    try:
        with other_client(sandbox_url, target_id) as limited:
            url = f"/teams/{tid}/channels/{channel['id']}/messages"
            r = limited.post(url, json=imported(owner, datetime(2024, 2, 1, tzinfo=UTC)))
            assert r.status_code == 403 and error_of(r)["code"] == "Authorization_RequestDenied"
            assert error_of(limited.get(url))["code"] == "Authorization_RequestDenied"
            assert limited.get(f"/teams/{tid}").status_code == 200
    finally:
        tenant.granted_roles = before


def test_team_goes_and_comes_back_with_its_group(target, instant):
    """team-delete ("delete the group"), directory-deleteditems-restore: the team is its group's."""
    tid, _ = new_team(target)
    assert target.delete(f"/groups/{tid}").status_code == 204
    assert target.get(f"/teams/{tid}").status_code == 404
    assert all(t["id"] != tid for t in target.get("/teams").json()["value"])
    assert target.post(f"/directory/deletedItems/{tid}/restore").status_code == 200
    assert target.get(f"/teams/{tid}").status_code == 200


def test_private_channel_members(target, instant):
    """channel-post-members: private and shared channels only, roles owner or empty, a private channel's
    members must be in the team, twice → 409; barred while the channel is in migration mode."""
    tid, owner = new_team(target)
    outsider = make_user(target)

    def member(uid: str, roles: list[str]) -> dict:
        return {
            "@odata.type": "#microsoft.graph.aadUserConversationMember",
            "user@odata.bind": f"https://graph.microsoft.com/v1.0/users('{uid}')",
            "roles": roles,
        }

    body = {
        "displayName": unique("P"),
        "membershipType": "private",
        "members": [member(owner["id"], ["owner"])],
    }
    private = target.post(f"/teams/{tid}/channels", json=body).json()
    url = f"/teams/{tid}/channels/{private['id']}/members"
    assert target.post(url, json=member(outsider["id"], [])).status_code == 400
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{outsider['id']}"}
    assert target.post(f"/groups/{tid}/members/$ref", json=ref).status_code == 204
    assert target.post(url, json=member(outsider["id"], ["admin"])).status_code == 400
    r = target.post(url, json=member(outsider["id"], []))
    assert r.status_code == 201 and r.json()["roles"] == []
    assert target.post(url, json=member(outsider["id"], [])).status_code == 409
    general = target.get(f"/teams/{tid}/primaryChannel").json()
    standard = target.post(f"/teams/{tid}/channels/{general['id']}/members", json=member(outsider["id"], []))
    assert standard.status_code == 400


def test_message_pages_follow_next_links(target, sandbox_url, target_id, instant):
    """channel-list-messages: $top pages with @odata.nextLink until the last."""
    tid, owner = new_team(target)
    channel = migration_channel(target, tid, datetime(2024, 1, 1, tzinfo=UTC))
    url = f"/teams/{tid}/channels/{channel['id']}/messages"
    for i in range(5):
        assert (
            target.post(url, json=imported(owner, datetime(2024, 3, 1, 0, i, tzinfo=UTC))).status_code == 201
        )
    with teams_settings(sandbox_url, teams_protected_api_approved=True):
        page = target.get(url, params={"$top": "2"}).json()
        seen = [m["id"] for m in page["value"]]
        while "@odata.nextLink" in page:
            page = httpx.get(page["@odata.nextLink"], headers=target.headers).json()
            seen += [m["id"] for m in page["value"]]
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)


def test_admin_routes_post_at_the_source_and_set_the_knobs(source, sandbox_url, source_id):
    """Sandbox-only: a message posted at the source after a run appears to readers; the Teams knobs take
    one-line errors for bad values and change nothing then."""
    tid = source.get("/teams").json()["value"][0]["id"]
    general = source.get(f"/teams/{tid}/primaryChannel").json()
    admin = f"{sandbox_url}/sandbox/tenants/{source_id}/teams/{tid}/channels/{general['id']}/messages"
    author = next(iter(sandbox_url.world.tenant(source_id).owners[tid]))
    before = httpx.get(admin).json()["value"]
    r = httpx.post(admin, json={"from": author, "content": "<p>New after the run</p>"})
    assert r.status_code == 201, r.text
    after = httpx.get(admin).json()["value"]
    assert len(after) == len(before) + 1 and after[-1]["body"]["content"] == "<p>New after the run</p>"
    assert httpx.post(admin, json={"from": "nobody@nowhere", "content": "x"}).status_code == 400
    knobs = f"{sandbox_url}/sandbox/teams/settings"
    bad = httpx.post(knobs, json={"teams_import": "fast"})
    assert bad.status_code == 400 and "teams import must look like N/SECONDS" in bad.json()["error"]
    assert httpx.post(knobs, json={"teams_colour": 1}).status_code == 400
    assert sandbox_url.world.settings.teams_import == Budget(5, 1.0)
    ok = httpx.post(knobs, json={"teams_import": "7/1"})
    try:
        assert ok.status_code == 200 and ok.json()["teams_import"] == "7/1"
    finally:
        httpx.post(knobs, json={"teams_import": "5/1"})


def test_generator_gives_each_academy_class_and_staff_teams(sandbox_url, source_id):
    """Every year group's Maths class group is an education class made into a class team with a teacher
    owner, two channels, a file in the subject channel and a few messages; the Staff Room is a staff team
    with a private channel; the same seed gives the same teams."""
    from sandbox.generator import generate_world_tenants

    t = sandbox_url.world.tenant(source_id)
    store = t.teams
    class_groups = [
        g
        for g in t.groups.values()
        if "Unified" in g["groupTypes"] and str(g.get("mailNickname", "")).endswith("-maths")
    ]
    assert class_groups
    for g in class_groups:
        team = store.teams[g["id"]]
        assert team["specialization"] == "educationClass"
        assert set(store.teachers[g["id"]]) == set(t.owners[g["id"]])
        channels = store.channels_of(g["id"])
        assert len(channels) == 2 and all(store.messages[c["id"]] for c in channels)
    staff = next(g for g in t.groups.values() if g.get("mailNickname") == "staffroom")
    assert any(c["membershipType"] == "private" for c in store.channels_of(staff["id"]))
    assert sum(len(m) for m in store.messages.values()) < 150  # the demo's scale: tens of messages
    from trust import load_trust

    world = sandbox_url.world
    trust = load_trust(CONFIG)
    again = generate_world_tenants(trust, world.settings.size, world.settings.seed)[source_id].teams
    assert again.channels.keys() == store.channels.keys() and again.classes == store.classes


def test_team_created_in_migration_mode(target, sandbox_url, target_id, instant):
    """team-post (migration), team-completemigration: a new team with teamCreationMode migration and its
    original createdDateTime starts with General in migration mode; completing the team waits for its
    channels and is the creating app's alone."""
    owner = make_user(target)
    body = {
        "@microsoft.graph.teamCreationMode": "migration",
        "template@odata.bind": STANDARD,
        "displayName": unique("Old team "),
        "createdDateTime": "2021-03-14T11:22:17.043Z",
    }
    with_group, _ = owned_group(target)
    refused = dict(
        body, **{"group@odata.bind": f"https://graph.microsoft.com/v1.0/groups('{with_group['id']}')"}
    )
    assert target.post("/teams", json=refused).status_code == 400
    r = target.post("/teams", json=body)
    assert r.status_code == 202, r.text
    tid = r.headers["Content-Location"].split("'")[1]
    team = target.get(f"/teams/{tid}").json()
    assert team["createdDateTime"] == "2021-03-14T11:22:17.043Z"
    general = target.get(f"/teams/{tid}/primaryChannel").json()
    assert general["migrationMode"] == "inProgress"
    channel = migration_channel(target, tid, datetime(2021, 4, 1, tzinfo=UTC))
    url = f"/teams/{tid}/channels/{general['id']}/messages"
    assert target.post(url, json=imported(owner, datetime(2021, 5, 1, tzinfo=UTC))).status_code == 201
    with other_client(sandbox_url, target_id) as other:
        assert other.post(f"/teams/{tid}/completeMigration").status_code == 403
    assert target.post(f"/teams/{tid}/completeMigration").status_code == 400  # its channel first
    assert target.post(f"/teams/{tid}/channels/{channel['id']}/completeMigration").status_code == 204
    assert target.post(f"/teams/{tid}/completeMigration").status_code == 204
    assert target.get(f"/teams/{tid}/primaryChannel").json()["migrationMode"] == "completed"
    assert target.post(f"/teams/{tid}/completeMigration").status_code == 400


def test_hosted_contents_must_match_the_body(target, instant):
    """chatmessage-post (hostedContents): each hosted content is referenced in the body by its temporary id
    and only those are; contentBytes is base64."""
    tid, owner = new_team(target)
    channel = migration_channel(target, tid, datetime(2024, 1, 1, tzinfo=UTC))
    url = f"/teams/{tid}/channels/{channel['id']}/messages"
    image = [{"@microsoft.graph.temporaryId": "1", "contentBytes": PIXEL, "contentType": "image/png"}]
    unreferenced = imported(owner, datetime(2024, 2, 1, tzinfo=UTC), "no image", hostedContents=image)
    assert target.post(url, json=unreferenced).status_code == 400
    dangling = imported(owner, datetime(2024, 2, 2, tzinfo=UTC), '<img src="../hostedContents/2/$value">')
    assert target.post(url, json=dangling).status_code == 400
    broken = [dict(image[0], contentBytes="not base64!")]
    text = '<img src="../hostedContents/1/$value">'
    assert (
        target.post(
            url, json=imported(owner, datetime(2024, 2, 3, tzinfo=UTC), text, hostedContents=broken)
        ).status_code
        == 400
    )


def test_team_creation_is_limited_per_tenant(target, sandbox_url, instant):
    """throttling-limits, Teams: POST /teams per app per tenant (10 a second by default); 429 and
    Retry-After."""
    owner = make_user(target)
    body = {
        "template@odata.bind": STANDARD,
        "members": [
            {
                "@odata.type": "#microsoft.graph.aadUserConversationMember",
                "roles": ["owner"],
                "user@odata.bind": f"https://graph.microsoft.com/v1.0/users('{owner['id']}')",
            }
        ],
    }
    with teams_settings(sandbox_url, throttling=True, teams_create=Budget(2, 60.0)):
        codes = [
            target.post("/teams", json=dict(body, displayName=unique("T "))).status_code for _ in range(3)
        ]
        assert codes[:2] == [202, 202] and codes[2] == 429


def test_files_folder_waits_for_the_site(target, sandbox_url):
    """team-put-teams ("SharePoint provisioning doesn't occur in real time"): a new team's channel files
    folder answers 404 until the site is provisioned (teams_site_delay_s); then the folder."""
    with teams_settings(sandbox_url, teams_group_delay_s=0.0, teams_site_delay_s=60.0):
        tid, _ = new_team(target)
        general = target.get(f"/teams/{tid}/primaryChannel").json()
        url = f"/teams/{tid}/channels/{general['id']}/filesFolder"
        err = error_of(target.get(url))
        assert err["code"] == "NotFound" and "not ready yet" in err["message"]
        sandbox_url.world.tenant(target_tenant_of(sandbox_url, tid)).teams.teams[tid]["_site_ready"] = 0
        assert target.get(url).json()["name"] == "General"


def target_tenant_of(url: SandboxURL, team_id: str) -> str:
    return next(t.id for t in url.world.tenants.values() if t.teams is not None and team_id in t.teams.teams)


def test_message_delta_gives_only_new_messages(source, sandbox_url, source_id):
    """chatmessage-delta: root messages since the token, then a deltaLink; a message posted at the source
    after the first round is all the second round returns (the incremental pass)."""
    tid = source.get("/teams").json()["value"][0]["id"]
    general = source.get(f"/teams/{tid}/primaryChannel").json()
    url = f"/teams/{tid}/channels/{general['id']}/messages/delta"
    with teams_settings(sandbox_url, teams_protected_api_approved=True):
        first = source.get(url, params={"$top": "1"}).json()
        seen = [m["id"] for m in first["value"]]
        while "@odata.nextLink" in first:
            first = httpx.get(first["@odata.nextLink"], headers=source.headers).json()
            seen += [m["id"] for m in first["value"]]
        roots = [
            m["id"] for m in source.get(f"/teams/{tid}/channels/{general['id']}/messages").json()["value"]
        ]
        assert sorted(seen) == sorted(roots)
        admin = f"{sandbox_url}/sandbox/tenants/{source_id}/teams/{tid}/channels/{general['id']}/messages"
        author = next(iter(sandbox_url.world.tenant(source_id).owners[tid]))
        new = httpx.post(admin, json={"from": author, "content": "<p>After the first pass</p>"}).json()
        again = httpx.get(first["@odata.deltaLink"], headers=source.headers).json()
        assert [m["id"] for m in again["value"]] == [new["id"]]


def test_put_team_makes_standard_teams_only(target, instant):
    """team-put-teams makes a team from the group; a template (a class team) goes through POST /teams."""
    group, _ = owned_group(target)
    body = {"template@odata.bind": CLASS}
    assert target.put(f"/groups/{group['id']}/team", json=body).status_code == 400


def test_education_classes_filter_select_and_page(target, instant):
    """educationroot-list-classes: $filter by externalId (what a migration looks its classes up by),
    $select, $top with @odata.nextLink; an unsupported filter is refused, never ignored."""
    marker = unique("ext")
    made = [
        target.post(
            "/education/classes",
            json={"displayName": f"C{i}", "mailNickname": unique("c"), "externalId": f"{marker}-{i}"},
        ).json()
        for i in range(3)
    ]
    r = target.get(
        "/education/classes", params={"$filter": f"externalId eq '{marker}-1'", "$select": "id,externalId"}
    )
    assert r.json()["value"] == [{"id": made[1]["id"], "externalId": f"{marker}-1"}]
    assert (
        target.get("/education/classes", params={"$filter": "startswith(externalId,'x')"}).status_code == 400
    )
    page = target.get("/education/classes", params={"$top": "2"}).json()
    seen = [c["id"] for c in page["value"]]
    while "@odata.nextLink" in page:
        page = httpx.get(page["@odata.nextLink"], headers=target.headers).json()
        seen += [c["id"] for c in page["value"]]
    assert {c["id"] for c in made} <= set(seen) and len(seen) == len(set(seen))


def test_select_returns_only_what_was_asked(target, instant):
    """team-get, channel-get, channel-list ($select): only the selected properties and the id."""
    tid, _ = new_team(target)
    assert set(target.get(f"/teams/{tid}", params={"$select": "displayName"}).json()) == {"id", "displayName"}
    general = target.get(f"/teams/{tid}/primaryChannel", params={"$select": "id"}).json()
    assert set(general) == {"id"}
    listed = target.get(
        f"/teams/{tid}/channels", params={"$select": "displayName", "$filter": "membershipType eq 'standard'"}
    ).json()["value"]
    assert listed == [{"id": general["id"], "displayName": "General"}]


def test_files_folder_needs_a_files_role(target, sandbox_url, target_id, instant):
    """channel-get-filesfolder lists Files.Read.All and Files.ReadWrite.All (Group.Read.All and
    Group.ReadWrite.All, deprecated): a Sites.* role alone does not read a channel's files folder."""
    from sandbox.tenancy import ALL_ROLES

    tid, _ = new_team(target)
    general = target.get(f"/teams/{tid}/primaryChannel").json()
    url = f"/teams/{tid}/channels/{general['id']}/filesFolder"
    tenant = sandbox_url.world.tenant(target_id)
    before = tenant.granted_roles
    files_roles = ("Files.Read.All", "Files.ReadWrite.All", "Group.Read.All", "Group.ReadWrite.All")
    tenant.granted_roles = [r for r in ALL_ROLES if r not in files_roles]
    try:
        with other_client(sandbox_url, target_id) as limited:
            assert error_of(limited.get(url))["code"] == "Authorization_RequestDenied"
        tenant.granted_roles = [*tenant.granted_roles, "Files.Read.All"]
        with other_client(sandbox_url, target_id) as reader:
            assert reader.get(url).json()["name"] == "General"
    finally:
        tenant.granted_roles = before


def test_teams_requests_spend_teams_limits_not_the_directorys(target, sandbox_url, instant):
    """throttling-limits: the identity and access limits (3,000 writes per 2 min 30 s per app and tenant,
    resource units per 10 s) apply to the directory's resources listed under them (users, groups,
    applications, ...); teams, channels and channel messages are not among them and have the "Microsoft Teams
    service limits" instead. Channels made and messages imported leave the directory's write quota whole;
    a user's creation still spends it."""
    tid, owner = new_team(target)
    with teams_settings(
        sandbox_url, throttling=True, write_budget=Budget(3, 150.0), identity_ru=Budget(1_000, 10.0)
    ):
        channel = migration_channel(target, tid, datetime(2024, 1, 1, tzinfo=UTC))
        url = f"/teams/{tid}/channels/{channel['id']}/messages"
        for i in range(3):
            r = target.post(url, json=imported(owner, datetime(2024, 3, 1, 0, 0, i, tzinfo=UTC)))
            assert r.status_code == 201, r.text
        assert target.get(f"/teams/{tid}/channels").status_code == 200
        made = [make_user(target) for _ in range(3)]
        assert len(made) == 3  # the directory's three writes are all still there
        r = target.post("/users", json={"displayName": "x"})
        assert r.status_code == 429
        assert r.headers["x-ms-throttle-information"] == "WriteLimitExceeded"

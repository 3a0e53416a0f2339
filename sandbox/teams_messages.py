"""Channel messages: reading (a protected API for apps), importing in migration mode, replies and hosted
contents (inline images). Pure state logic; sandbox/teams_api.py serves it.

Pages: channel-list-messages, chatmessage-get, chatmessage-list-replies, chatmessage-post,
chatmessage-post-replies, chatmessagehostedcontent-get, teams-import-messages, teams-protected-apis.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

from sandbox.errors import GraphError
from sandbox.teams_state import TeamsStore, content_id, epoch_ms, iso_ms, now_ms, parse_time
from sandbox.world import TenantState

PROTECTED = (
    "Invoked API requires Protected API access in application-only context when not using Resource Specific "
    "Consent. Visit https://docs.microsoft.com/en-us/graph/teams-protected-apis for more details."
)
APP_ONLY_POST = (
    "Message POST is allowed in application-only context only for import purposes. Refer to "
    "https://docs.microsoft.com/microsoftteams/platform/graph-api/import-messages/"
    "import-external-messages-to-teams "
    "for more details."
)
_HOSTED_REF = re.compile(r"\.\./hostedContents/([^/\"']+)/\$value")
MAX_HOSTED_BYTES = 4 * 1024 * 1024


def check_protected(store: TeamsStore, app_id: str, approve_all: bool) -> None:
    """Reading channel messages with application permissions is a protected API (teams-protected-apis):
    403 until Microsoft approves the app."""
    if not approve_all and app_id.lower() not in store.approved_apps:
        raise GraphError(403, "Forbidden", PROTECTED)


def _author(t: TenantState, body: dict[str, Any]) -> dict[str, Any]:
    who = body.get("from")
    user = who.get("user") if isinstance(who, dict) else None
    if not isinstance(user, dict) or not user.get("id"):
        raise GraphError(
            400, "BadRequest", "An imported message needs 'from' with a user (author attribution)."
        )
    found = t.users.get(str(user["id"]))
    if found is None:
        raise GraphError(
            400, "BadRequest", "The message's author must be a user of the same tenant as the application."
        )
    return {
        "application": None,
        "device": None,
        "user": {
            "@odata.type": "#microsoft.graph.teamworkUserIdentity",
            "id": found["id"],
            "displayName": user.get("displayName") or found.get("displayName"),
            "userIdentityType": "aadUser",
        },
    }


def _message_body(body: dict[str, Any]) -> dict[str, Any]:
    content = body.get("body")
    if not isinstance(content, dict) or not isinstance(content.get("content"), str):
        raise GraphError(400, "BadRequest", "A message needs a body with content.")
    kind = content.get("contentType", "text")
    if kind not in ("text", "html"):
        raise GraphError(400, "BadRequest", f"Invalid value '{kind}' for 'body.contentType'.")
    return {"contentType": kind, "content": content["content"]}


def import_message(
    t: TenantState,
    store: TeamsStore,
    channel: dict[str, Any],
    body: Any,
    *,
    app_id: str,
    reply_to: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """POST .../messages (or .../replies) into a channel in migration mode (teams-import-messages): only the
    app that started the migration; `from` a user of this tenant; createdDateTime after the channel's, not in
    the future, unique to the millisecond in the channel (409 otherwise)."""
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Invalid request body.")
    mode = channel.get("migrationMode")
    if mode != "inProgress":
        if "createdDateTime" in body or "from" in body:
            raise GraphError(
                403,
                "Forbidden",
                "Import is not allowed: the channel is not in migration mode"
                + (" (its migration was completed)." if mode == "completed" else "."),
            )
        raise GraphError(401, "Unauthorized", APP_ONLY_POST)
    if channel.get("_migration") != app_id:
        raise GraphError(
            403, "Forbidden", "Only the application that started the migration can import messages into it."
        )
    author = _author(t, body)
    text = _message_body(body)
    now = datetime.now(UTC)
    stamp = parse_time(body["createdDateTime"], "createdDateTime") if body.get("createdDateTime") else now
    if stamp > now:
        raise GraphError(400, "BadRequest", "createdDateTime cannot be in the future.")
    if stamp <= parse_time(channel["createdDateTime"], "createdDateTime"):
        raise GraphError(
            400, "BadRequest", "createdDateTime must be later than the channel's createdDateTime."
        )
    if reply_to is not None and stamp <= parse_time(reply_to["createdDateTime"], "createdDateTime"):
        raise GraphError(400, "BadRequest", "A reply's createdDateTime must be later than its message's.")
    msgs = store.messages.setdefault(channel["id"], {})
    mid = str(epoch_ms(stamp))
    if mid in msgs:
        raise GraphError(
            409, "Conflict", "A message with the same createdDateTime already exists in this channel."
        )
    return _store(t, store, channel, msgs, mid, stamp, author, text, body, reply_to)


def _store(
    t: TenantState,
    store: TeamsStore,
    channel: dict[str, Any],
    msgs: dict[str, dict[str, Any]],
    mid: str,
    stamp: datetime,
    author: dict[str, Any],
    text: dict[str, Any],
    body: dict[str, Any],
    reply_to: dict[str, Any] | None,
) -> dict[str, Any]:
    hosted = body.get("hostedContents") or []
    if not isinstance(hosted, list):
        raise GraphError(400, "BadRequest", "Invalid value for 'hostedContents'.")
    ids: dict[str, str] = {}
    saved: list[tuple[str, dict[str, Any]]] = []
    for h in hosted:
        temp = h.get("@microsoft.graph.temporaryId") if isinstance(h, dict) else None
        if not temp or not isinstance(h.get("contentBytes"), str) or not h.get("contentType"):
            raise GraphError(
                400,
                "BadRequest",
                "Each hostedContent needs @microsoft.graph.temporaryId, contentBytes, contentType.",
            )
        try:
            data = base64.b64decode(h["contentBytes"], validate=True)
        except (binascii.Error, ValueError):
            raise GraphError(400, "BadRequest", "hostedContents contentBytes must be base64.") from None
        if len(data) > MAX_HOSTED_BYTES:
            raise GraphError(413, "RequestEntityTooLarge", "A hosted content is larger than 4 MB.")
        hid = content_id(data + mid.encode() + str(temp).encode())
        ids[str(temp)] = hid
        saved.append((hid, {"contentType": h["contentType"], "bytes": h["contentBytes"]}))
    referenced = set(_HOSTED_REF.findall(text["content"]))
    if referenced - set(ids) or set(ids) - referenced:
        raise GraphError(
            400,
            "BadRequest",
            "Every hostedContent must be referenced in the body as ../hostedContents/{id}/$value.",
        )
    team_id = channel["_team"]
    root_id = reply_to["id"] if reply_to else mid
    base = f"https://graph.microsoft.com/v1.0/teams('{team_id}')/channels('{channel['id']}')/messages('{root_id}')"
    if reply_to:
        base += f"/replies('{mid}')"
    text = dict(text)
    text["content"] = _HOSTED_REF.sub(
        lambda m: f"{base}/hostedContents/{ids[m.group(1)]}/$value", text["content"]
    )
    iso = iso_ms(stamp)
    message: dict[str, Any] = {
        "id": mid,
        "replyToId": reply_to["id"] if reply_to else None,
        "etag": mid,
        "messageType": "message",
        "createdDateTime": iso,
        "lastModifiedDateTime": iso,
        "lastEditedDateTime": None,
        "deletedDateTime": None,
        "subject": body.get("subject") if not reply_to else None,
        "summary": None,
        "chatId": None,
        "importance": body.get("importance") or "normal",
        "locale": "en-us",
        "webUrl": f"https://teams.microsoft.com/l/message/{channel['id']}/{mid}?groupId={team_id}&tenantId={t.id}&parentMessageId={root_id}",
        "channelIdentity": {"teamId": team_id, "channelId": channel["id"]},
        "from": author,
        "body": text,
        "attachments": body.get("attachments") or [],
        "mentions": body.get("mentions") or [],
        "reactions": [],
        "_hosted": [hid for hid, _ in saved],
        "_activity": iso,
    }
    for hid, data in saved:
        store.hosted[f"{channel['id']}/{mid}/{hid}"] = data
    msgs[mid] = message
    if reply_to is not None:
        reply_to["_activity"] = max(reply_to["_activity"], iso)
    return message


def admin_post(
    t: TenantState, store: TeamsStore, channel: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    """A message posted at the source as a user would (admin API: after a run, tests add new history).
    The same shape checks, no migration rules; ids unique by bumping a millisecond."""
    uid = str(body.get("from") or "")
    user = t.user_by_key(uid)
    if user is None:
        raise GraphError(400, "BadRequest", f"unknown author {uid[:80]!r}")
    author = {"user": {"id": user["id"], "displayName": user.get("displayName")}}
    msgs = store.messages.setdefault(channel["id"], {})
    stamp = parse_time(body["createdDateTime"], "createdDateTime") if body.get("createdDateTime") else None
    if stamp is None:
        stamp = parse_time(now_ms(), "createdDateTime")
    while str(epoch_ms(stamp)) in msgs:
        stamp = datetime.fromtimestamp((epoch_ms(stamp) + 1) / 1000, UTC)
    reply_to = store.message(channel["id"], str(body["replyToId"])) if body.get("replyToId") else None
    text = {"contentType": body.get("contentType", "html"), "content": str(body.get("content", ""))}
    full = {"hostedContents": body.get("hostedContents") or [], "subject": body.get("subject")}
    return _store(
        t,
        store,
        channel,
        msgs,
        str(epoch_ms(stamp)),
        stamp,
        _author(t, {"from": author}),
        text,
        full,
        reply_to,
    )


def render_message(msg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in msg.items() if not k.startswith("_")}

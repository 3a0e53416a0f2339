"""The same mailbox items as the ordinary Outlook endpoints show them: message (learn.microsoft.com/graph/api/
resources/message), event (resources/event), contact (resources/contact), mailFolder (resources/mailfolder).
Only the fields a migration compares are carried; they come from the item's props, so an imported item reads
back exactly as its source did."""

from __future__ import annotations

import re
from typing import Any

_TAGS = re.compile(r"<[^>]*>")


def _preview(body: dict[str, Any] | None) -> str:
    text = str((body or {}).get("content") or "")
    if (body or {}).get("contentType") == "html":
        text = _TAGS.sub(" ", text)
    return " ".join(text.split())[:255]


def _common(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item["id"],
        "createdDateTime": item["createdDateTime"],
        "lastModifiedDateTime": item["lastModifiedDateTime"],
        "changeKey": item["changeKey"],
        "categories": list(item["props"].get("categories") or []),
    }


def message_out(item: dict[str, Any]) -> dict[str, Any]:
    p = item["props"]
    attachments = list(p.get("attachments") or []) + ([p["blob"]] if p.get("blob") else [])
    return {
        "@odata.etag": f'W/"{item["changeKey"]}"',
        **_common(item),
        "receivedDateTime": p.get("receivedDateTime"),
        "sentDateTime": p.get("sentDateTime"),
        "hasAttachments": bool(attachments),
        "internetMessageId": p.get("internetMessageId"),
        "subject": p.get("subject"),
        "bodyPreview": _preview(p.get("body")),
        "importance": p.get("importance", "normal"),
        "parentFolderId": item["folderId"],
        "isRead": bool(p.get("isRead", True)),
        "isDraft": bool(p.get("isDraft", False)),
        "body": p.get("body") or {"contentType": "text", "content": ""},
        "from": p.get("from"),
        "sender": p.get("from"),
        "toRecipients": list(p.get("toRecipients") or []),
        "ccRecipients": list(p.get("ccRecipients") or []),
    }


def event_out(item: dict[str, Any]) -> dict[str, Any]:
    p = item["props"]
    return {
        "@odata.etag": f'W/"{item["changeKey"]}"',
        **_common(item),
        "subject": p.get("subject"),
        "bodyPreview": _preview(p.get("body")),
        "body": p.get("body") or {"contentType": "text", "content": ""},
        "start": p.get("start"),
        "end": p.get("end"),
        "isAllDay": bool(p.get("isAllDay", False)),
        "recurrence": p.get("recurrence"),
        "type": "seriesMaster" if p.get("recurrence") else "singleInstance",
        "location": p.get("location") or {"displayName": ""},
        "attendees": list(p.get("attendees") or []),
        "organizer": p.get("organizer"),
        "hasAttachments": bool(p.get("attachments")),
    }


def contact_out(item: dict[str, Any]) -> dict[str, Any]:
    p = item["props"]
    return {
        "@odata.etag": f'W/"{item["changeKey"]}"',
        **_common(item),
        "parentFolderId": item["folderId"],
        "displayName": p.get("displayName"),
        "givenName": p.get("givenName"),
        "surname": p.get("surname"),
        "companyName": p.get("companyName"),
        "jobTitle": p.get("jobTitle"),
        "emailAddresses": list(p.get("emailAddresses") or []),
        "businessPhones": list(p.get("businessPhones") or []),
        "mobilePhone": p.get("mobilePhone"),
    }


def mail_folder_out(f: dict[str, Any], children: int, total: int, unread: int) -> dict[str, Any]:
    return {
        "id": f["id"],
        "displayName": f["displayName"],
        "parentFolderId": f["parentFolderId"],
        "childFolderCount": children,
        "unreadItemCount": unread,
        "totalItemCount": total,
        "isHidden": False,
    }

"""A channel's history archive: one HTML page carried into the channel's files folder in the trust when its
messages cannot be imported.

What a trust can read decides what the archive holds. Reading channel messages with application permissions
is a protected API (teams-protected-apis: Microsoft approves it per app, by request); Teams' export APIs
(teams-export-api-overview) are protected the same way, so an app without approval reads no message at all,
by any route. The archive then says so plainly: the channel, what trustfold could read of it (kind,
description, tabs), why its messages are not there, and how the trust gets them (request the approval, then
run the phase again; a channel still in migration mode takes them). Messages that were read are listed, as
text only.

Every legacy-tenant string reaches the page through migrations/safety/ (`html_text`, `html_plain`): a
message body is reduced to its words, never its markup, so a message carrying script is inert here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from migrations.safety.sanitise import clean_name, html_plain, html_text

NAME_LIMIT = 200  # characters of a name shown; a very long name is cut with an ellipsis
APPROVAL = "https://learn.microsoft.com/graph/teams-protected-apis"


@dataclass(frozen=True)
class ArchivedMessage:
    created: str
    author: str
    content_type: str
    content: str
    reply: bool = False


def file_name(channel_name: str) -> str:
    """The archive's file name: the channel's name made safe for a SharePoint file name."""
    base = clean_name(channel_name, replacement="_")
    for ch in '"*:<>?/\\|#%~&{}':
        base = base.replace(ch, "_")
    base = base.strip(" .")[:80] or "channel"
    return f"{base} - history archive.html"


def render(
    team: str,
    channel: str,
    kind: str,
    description: str | None,
    refusal: str,
    tabs: Iterable[dict[str, Any]] = (),
    messages: Iterable[ArchivedMessage] = (),
) -> bytes:
    """The archive page (UTF-8)."""
    rows = []
    for m in messages:
        text = html_plain(m.content) if m.content_type == "html" else m.content
        body = "<br>".join(html_text(line, limit=4000) for line in text.split("\n"))
        cls = ' class="reply"' if m.reply else ""
        rows.append(
            f"<li{cls}><p><strong>{html_text(m.author, limit=NAME_LIMIT)}</strong>, "
            f"<time>{html_text(m.created)}</time></p><p>{body}</p></li>"
        )
    tab_rows = "".join(
        f"<li>{html_text(t.get('name'), limit=NAME_LIMIT)}: "
        f"{html_text((t.get('config') or {}).get('websiteUrl') or '', limit=500)}</li>"
        for t in tabs
    )
    held = (
        f"<ol>{''.join(rows)}</ol>"
        if rows
        else "<p>This archive holds none of the channel's messages: the legacy tenant refused to let "
        "trustfold read them.</p>"
    )
    title = f"{html_text(team, limit=NAME_LIMIT)} / {html_text(channel, limit=NAME_LIMIT)}"
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        # No script, no remote content: the page shows text only, whatever the messages held.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{title}: history archive</title>"
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}li.reply{margin-left:2em}</style>"
        "</head><body>"
        f"<h1>{title}</h1>"
        f"<p>A {html_text(kind)} channel. {html_text(description or '', limit=2000)}</p>"
        "<h2>Why its history is an archive</h2>"
        f"<p>The legacy tenant answered: {html_text(refusal, limit=1000)}</p>"
        "<p>Reading channel messages with application permissions is a protected API that Microsoft "
        f'approves per app (<a href="{APPROVAL}">{APPROVAL}</a>). Once the trust\'s app is approved, run the '
        "teams phase again before cut-over: the history is imported into this channel with its authors "
        "and times.</p>"
        f"<h2>Tabs</h2><ul>{tab_rows or '<li>none</li>'}</ul>"
        f"<h2>Messages</h2>{held}"
        "</body></html>\n"
    )
    return page.encode("utf-8")

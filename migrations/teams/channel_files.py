"""Channel files: each channel's files folder (channel-get-filesfolder) carried into its trust channel's
folder by the files phase's engine, as a folder pair (files/scan.py DrivePair with source_folder and
target_folder): the same scan, conflict rules, quickXorHash checks, timestamps and verify.

The copies are journaled under the teams phase, not the files phase: their folders belong to channels this
phase made, so `rollback --phase teams` must take them (before the channels), and `rollback --phase files`
must not reach into a team's site. A standard channel's folder is in the team site's library; a private or
shared channel's is in a site of its own. A new team's or channel's site is provisioned in the background:
its filesFolder answers 404 for a while (team-put-teams), so it is asked again, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

from migrations.core.journal import history
from migrations.core.steps import Step
from migrations.core.store import StateStore
from migrations.files.scan import DrivePair, source_tree
from migrations.graph.client import GraphError
from migrations.teams.steps import PHASE

log = logging.getLogger("trustfold.teams")
KEY_PREFIX = "channel:"  # file_copies drive key: "channel:<source team id>/<source channel id>"
FOLDER_TRIES = 8  # filesFolder asked at most this often while the site is provisioned
FOLDER_WAIT_S = 2.0  # first wait between asks; doubled each time (about four minutes in all)
CHANNEL_OPS = ("create-channel", "general-channel")


@dataclass(frozen=True)
class MadeChannel:
    """A channel this phase made (or found by name), with what its files pair needs."""

    source_team: str
    source_channel: str
    team_id: str
    channel_id: str
    name: str


def made_channels(store: StateStore, code: str) -> list[MadeChannel]:
    out: list[MadeChannel] = []
    for key, h in sorted(history(store, code, PHASE).items()):
        if h.op not in CHANNEL_OPS or h.done is None or not h.done.target_id:
            continue
        _, sid, cid = key.split(":", 2)
        tid = str(h.done.data.get("team_id") or "")
        if tid:
            shown = f"{h.args.get('team_name') or sid} / {h.args.get('name') or cid}"
            out.append(MadeChannel(sid, cid, tid, h.done.target_id, shown))
    return out


async def files_folder(
    conn: Any, team_id: str, channel_id: str, *, tries: int = FOLDER_TRIES
) -> dict[str, Any]:
    """The channel's files folder (a driveItem), asked again while its site is provisioned (404)."""
    path = f"/teams/{team_id}/channels/{channel_id}/filesFolder"
    wait = FOLDER_WAIT_S
    for attempt in range(tries):
        resp = await conn.request("GET", path, counts_as_write=False)
        if resp.ok:
            return dict(resp.body)
        if resp.status != 404 or attempt == tries - 1:
            raise GraphError("GET", path, resp)
        await asyncio.sleep(wait)
        wait = min(wait * 2, 60.0)
    raise AssertionError("unreachable")  # pragma: no cover


def pair_key(source_team: str, source_channel: str) -> str:
    return f"{KEY_PREFIX}{source_team}/{source_channel}"


@dataclass
class ChannelFiles:
    pairs: list[DrivePair] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source_urls: dict[str, str] = field(default_factory=dict)  # pair key -> source folder webUrl


async def channel_pairs(store: StateStore, code: str, source: Any, target: Any) -> ChannelFiles:
    """A folder pair per channel this phase made; notes for channels whose folder could not be had."""
    out = ChannelFiles()
    pairs, notes = out.pairs, out.notes
    for ch in made_channels(store, code):
        try:
            src = await files_folder(source, ch.source_team, ch.source_channel)
            dst = await files_folder(target, ch.team_id, ch.channel_id)
        except GraphError as exc:
            notes.append(f"{ch.name}: channel files not carried this pass ({exc.response.status})")
            continue
        sdrive = str((src.get("parentReference") or {}).get("driveId") or "")
        tdrive = str((dst.get("parentReference") or {}).get("driveId") or "")
        key = pair_key(ch.source_team, ch.source_channel)
        out.source_urls[key] = str(src.get("webUrl") or "")
        pairs.append(
            DrivePair(
                key,
                "channel",
                f"{ch.name} -> trust channel",
                f"drive:{sdrive}",
                f"drive:{tdrive}",
                source_folder=str(src["id"]),
                target_folder=str(dst["id"]),
            )
        )
    return out


def _relative(url: str, folder_url: str) -> str | None:
    """The path of `url` under `folder_url` (both as SharePoint writes them, %20 or not), if it is there."""
    u, f = unquote(url).split("?", 1)[0].rstrip("/"), unquote(folder_url).rstrip("/")
    if f and u.lower().startswith(f.lower() + "/"):
        return u[len(f) + 1 :]
    return None


def _entity_id(item: dict[str, Any]) -> str:
    """A file tab's entityId is the file's sourceDoc id (teams-configuring-builtin-tabs): SharePoint's list
    item unique id, which a SharePoint driveItem's eTag carries as '"{GUID},version"'."""
    unique = (item.get("sharepointIds") or {}).get("listItemUniqueId")
    if unique:
        return str(unique).strip("{}").upper()
    m = re.search(r"\{([^}]+)\}", str(item.get("eTag") or ""))
    return (m.group(1) if m else str(item["id"])).upper()


async def resolve_file_tabs(
    store: StateStore, code: str, steps: list[Step], carried: ChannelFiles, target: Any, budget: Any
) -> tuple[list[Step], list[str]]:
    """File tabs re-pointed at the migrated copy of their file (teams-configuring-builtin-tabs: entityId the
    copy's sourceDoc id, contentUrl '{folder-webUrl}/{item-name}'); a tab whose file is not in its channel's
    files, or not copied, stays behind with a note."""
    pairs = {p.key: p for p in carried.pairs}
    ready: list[Step] = []
    notes: list[str] = []
    for step in steps:
        a = step.args
        key = pair_key(a["source_team"], a["source_channel"])
        pair = pairs.get(key)
        rel = _relative(str(a["file_url"]), carried.source_urls.get(key, "")) if pair else None
        found = None
        if pair is not None and rel is not None:
            tree = source_tree(store, code, key)[0].subtree(pair.source_folder)
            found = tree.find(rel)
        rec = (
            store.rows(
                "SELECT target_drive, target_id FROM file_copies WHERE academy = ? AND drive_key = ? "
                "AND source_id = ? AND folder = 0",
                (code, key, found.id),
            )
            if found is not None and not found.folder
            else []
        )
        if not rec:
            notes.append(
                f"tab '{a['name']}' on '{a['channel_name']}' points at a file that is not among the "
                "channel's migrated files: not carried; add it again in the trust"
            )
            continue
        drive, item_id = rec[0]["target_drive"], rec[0]["target_id"]
        async with budget.spend(target.tenant_id, 2):
            item = await target.get(f"/drives/{drive}/items/{item_id}")
            parent_id = (item.get("parentReference") or {}).get("id")
            parent = await target.get(f"/drives/{drive}/items/{parent_id}", {"$select": "id,webUrl"})
        args = {
            **a,
            "entity_id": _entity_id(item),
            "content_url": f"{str(parent['webUrl']).rstrip('/')}/{item['name']}",
            "website_url": None,
        }
        ready.append(replace(step, args=args))
    return ready, notes

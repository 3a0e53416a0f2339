"""One file of a Migration API package imported into the sandbox's drives: its blob decrypted, checked
against the manifest (size, parent GUID, GUID conflicts), created or replaced with the manifest's timestamps
and its authors resolved against the target tenant's users."""

from __future__ import annotations

import asyncio
from typing import Any

from sandbox.drives_state import GraphError as DriveError
from sandbox.migration_package import PPackage
from sandbox.migration_service import Job, item_guid
from sandbox.migration_storage import Unreadable, read_file
from sandbox.world import TenantState


def _user(tenant: TenantState, pkg: PPackage, uid: str | None) -> tuple[dict[str, Any] | None, str]:
    if not uid:
        return None, ""
    login = pkg.users.get(uid, "")
    user = next((u for u in tenant.users.values() if u["userPrincipalName"].lower() == login.lower()), None)
    if user is None:
        return None, f"Failed to ensure user '{login}'"
    return {"user": {"id": user["id"], "displayName": user.get("displayName") or ""}}, ""


async def import_one(
    tenant: TenantState,
    drive: dict[str, Any],
    pkg: PPackage,
    f: Any,
    src: Any,
    blobs: dict[str, Any],
    job: Job,
) -> tuple[str, str, int]:
    """(error message or '', warning or '', bytes)."""
    info = blobs[f.blob]
    if info["snapshot"] is None:
        return "the file has no snapshot in the content container", "", 0
    try:
        content, digest = await asyncio.to_thread(read_file, src, f.blob, info, job.key)
    except Unreadable as exc:
        return str(exc), "", 0
    if f.size >= 0 and content["size"] != f.size:
        return f"the blob holds {content['size']} bytes, the manifest says {f.size}", "", 0
    store = tenant.drives
    root = store.items[drive["_root"]]
    rel = f.url[len(pkg.list_url) + 1 :]
    parent_rel, _, name = rel.rpartition("/")
    try:
        parent = store.by_path(root, parent_rel) if parent_rel else root
    except DriveError:
        return f"the parent folder '{parent_rel}' does not exist", "", 0
    if item_guid(parent) != f.parent_id:
        return "ParentId is not the GUID of the folder at the file's Url (incorrect identifiers)", "", 0
    existing = store.child(parent, name)
    if existing is not None and (existing.get("_folder") or item_guid(existing) != f.id):
        return "an item with another Id already exists at this Url (GUID conflict)", "", 0
    author, warn = _user(tenant, pkg, f.author)
    editor, warn2 = _user(tenant, pkg, f.editor)
    fs = {"createdDateTime": _iso(f.created), "lastModifiedDateTime": _iso(f.modified)}
    fs = {k: v for k, v in fs.items() if v}
    try:
        # Resubmitting a file replaces it (the Migration API is an overwrite API).
        item, _ = store.create_item(
            parent,
            name,
            folder=False,
            content=content,
            quick_xor=digest,
            conflict="replace",
            fs=fs or None,
            by=editor or author or {"user": {"displayName": "System Account"}},
        )
    except DriveError as exc:
        return str(exc), "", 0
    item["_spguid"] = f.id
    if author:
        item["_created_by"] = author
    return "", warn or warn2, int(content["size"])


def _iso(stamp: str) -> str:
    if not stamp:
        return ""
    return stamp if stamp.endswith("Z") or "+" in stamp[10:] else stamp + "Z"

"""One tenant's sites, drives and drive items: the OneDrive and SharePoint side of the sandbox.

Items are kept flat by id with a per-folder name index (SharePoint names are case-insensitive). Every change
takes the drive's next sequence number, so drive delta is "items whose sequence is above the token's",
and deleted items stay (in the recycle bin) to be reported as deleted: memory is bounded by the data.
Rules follow learn.microsoft.com/graph/api/resources/driveitem and the SharePoint naming restrictions
(support.microsoft.com "Restrictions and limitations in OneDrive and SharePoint").
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime
from typing import Any

from sandbox import drives_content as content_mod
from sandbox import permissions_state
from sandbox.errors import GraphError, now_iso

FORBIDDEN_CHARS = set('"*:<>?/\\|')
RESERVED_NAMES = {".lock", "con", "prn", "aux", "nul", "desktop.ini"} | {
    f"{p}{n}" for p in ("com", "lpt") for n in range(10)
}
MAX_PATH = 400  # characters of the decoded path, site URL included
MAX_FILE_SIZE = 250 * 1024**3
SIMPLE_UPLOAD_MAX = 250 * 1024 * 1024
PRIVATE = "_"


def name_problem(name: str) -> str | None:
    """Why SharePoint would refuse this item name, or None."""
    if not name or name in (".", ".."):
        return "The name is empty."
    if name != name.strip(" "):
        return "Names cannot begin or end with a space."
    if name.endswith("."):
        return "Names cannot end with a period."
    bad = sorted(set(name) & FORBIDDEN_CHARS)
    if bad:
        return f"The name contains characters that are not allowed: {' '.join(bad)}"
    lower = name.lower()
    stem = lower.split(".")[0]
    if lower in RESERVED_NAMES or stem in RESERVED_NAMES - {".lock", "desktop.ini"}:
        return f"'{name}' is a reserved name."
    if lower.startswith("~$"):
        return "Names cannot begin with ~$."
    if "_vti_" in lower:
        return "Names cannot contain _vti_."
    return None


def check_file_system_info(fs: Any) -> dict[str, Any] | None:
    """fileSystemInfo from a request body: an object whose timestamps are ISO 8601 date-times (Graph answers
    400 otherwise; a stored malformed value would break every client that parses the item later)."""
    if fs is None:
        return None
    if not isinstance(fs, dict):
        raise GraphError(400, "invalidRequest", "fileSystemInfo must be an object.")
    for key in ("createdDateTime", "lastModifiedDateTime"):
        value = fs.get(key)
        if value is None:
            continue
        try:
            if not isinstance(value, str):
                raise ValueError
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise GraphError(
                400, "invalidRequest", f"fileSystemInfo.{key} '{value}' is not a valid date and time."
            ) from None
    return fs


def _stable_id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def item_id(*parts: str) -> str:
    """SharePoint-looking item ids: '01' and 32 uppercase base-32 characters."""
    digest = _stable_id(*parts)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return "01" + "".join(alphabet[int(digest[i : i + 2], 16) % 32] for i in range(0, 64, 2))


def drive_id(*parts: str) -> str:
    return "b!" + _stable_id("drive", *parts)[:48]


class DriveStore:
    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.host = "contoso.sharepoint.com"
        self.sites: dict[str, dict[str, Any]] = {}
        self.drives: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.user_drive: dict[str, str] = {}
        self.children: dict[str, dict[str, str]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}  # upload sessions, not persisted (they expire anyway)
        self.counter = 0
        # The tenant's sharing policy and invitation log (sandbox/permissions_state.py), saved too.
        self.sharing_policy: dict[str, Any] | None = None
        self.invitation_log: list[dict[str, Any]] | None = None

    # ---- construction ------------------------------------------------------------------------------------
    def set_host(self, initial_domain: str) -> None:
        self.host = f"{initial_domain.split('.')[0]}.sharepoint.com"

    def add_site(self, name: str, display_name: str, created: str | None = None) -> dict[str, Any]:
        for s in self.sites.values():
            if s["name"].lower() == name.lower():
                return s
        a, b = (
            str(uuid.UUID(_stable_id(self.tenant_id, "site", name)[:32])),
            str(uuid.UUID(_stable_id(self.tenant_id, "web", name)[:32])),
        )
        site = {
            "id": f"{self.host},{a},{b}",
            "name": name,
            "displayName": display_name,
            "webUrl": f"https://{self.host}/sites/{name}",
            "createdDateTime": created or now_iso(),
            "siteCollection": {"hostname": self.host},
            "_drives": [],
        }
        self.sites[site["id"]] = site
        return site

    def add_library(self, site: dict[str, Any], name: str, created: str | None = None) -> dict[str, Any]:
        for did in site["_drives"]:
            if self.drives[did]["name"].lower() == name.lower():
                return self.drives[did]
        url_name = "Shared%20Documents" if name == "Documents" else name.replace(" ", "%20")
        drive = self._new_drive(
            drive_id(self.tenant_id, site["id"], name),
            "documentLibrary",
            name,
            f"{site['webUrl']}/{url_name}",
            # The sandbox's sites are not group-connected: SharePoint shows such a library's owner as the
            # System Account (an identitySet the SDK models; group-connected ones add an unmodelled "group").
            {"user": {"displayName": "System Account"}},
            created,
        )
        drive["_site"] = site["id"]
        site["_drives"].append(drive["id"])
        return drive

    def add_user_drive(self, user: dict[str, Any], created: str | None = None) -> dict[str, Any]:
        existing = self.user_drive.get(user["id"])
        if existing:
            return self.drives[existing]
        personal = re.sub(r"[^a-z0-9]", "_", user["userPrincipalName"].lower())
        drive = self._new_drive(
            drive_id(self.tenant_id, "user", user["id"]),
            "business",
            "OneDrive",
            f"https://{self.host.replace('.sharepoint', '-my.sharepoint')}/personal/{personal}/Documents",
            {"user": {"id": user["id"], "displayName": user.get("displayName") or ""}},
            created,
        )
        drive["_user"] = user["id"]
        self.user_drive[user["id"]] = drive["id"]
        return drive

    def _new_drive(
        self, did: str, kind: str, name: str, url: str, owner: dict[str, Any], created: str | None
    ) -> dict[str, Any]:
        stamp = created or now_iso()
        root = item_id(self.tenant_id, did, "root")
        drive = {
            "id": did,
            "driveType": kind,
            "name": name,
            "description": "",
            "createdDateTime": stamp,
            "lastModifiedDateTime": stamp,
            "webUrl": url,
            "owner": owner,
            "_root": root,
            "_seq": 0,
        }
        self.drives[did] = drive
        self.items[root] = {
            "id": root,
            "name": "root",
            "_drive": did,
            "_parent": None,
            "_folder": True,
            "createdDateTime": stamp,
            "lastModifiedDateTime": stamp,
            "fileSystemInfo": {"createdDateTime": stamp, "lastModifiedDateTime": stamp},
            "_v": 1,
            "_cv": 1,
            "_seq": 0,
        }
        self.children[root] = {}
        self._touch(self.items[root])
        return drive

    # ---- lookups -----------------------------------------------------------------------------------------
    def drive(self, did: str) -> dict[str, Any]:
        drive = self.drives.get(did)
        if drive is None:
            raise GraphError(404, "itemNotFound", "The requested drive was not found.")
        return drive

    def site_by_path(self, host: str, name: str) -> dict[str, Any]:
        if host.lower() == self.host:
            for s in self.sites.values():
                if s["name"].lower() == name.lower():
                    return s
        raise GraphError(404, "itemNotFound", "Requested site could not be found")

    def site(self, sid: str) -> dict[str, Any]:
        site = self.sites.get(sid)
        if site is None and sid.count(",") == 0:
            site = next((s for s in self.sites.values() if s["id"].split(",")[1] == sid), None)
        if site is None:
            raise GraphError(404, "itemNotFound", "Requested site could not be found")
        return site

    def item(self, did: str, iid: str) -> dict[str, Any]:
        drive = self.drive(did)
        if iid == "root":
            iid = drive["_root"]
        item = self.items.get(iid)
        if item is None or item.get("_deleted") or item["_drive"] != did:
            raise GraphError(404, "itemNotFound", "The resource could not be found.")
        return item

    def child(self, parent: dict[str, Any], name: str) -> dict[str, Any] | None:
        cid = self.children.get(parent["id"], {}).get(name.lower())
        return self.items[cid] if cid else None

    def by_path(self, base: dict[str, Any], path: str) -> dict[str, Any]:
        item = base
        for part in [p for p in path.split("/") if p]:
            if not item.get("_folder"):
                raise GraphError(404, "itemNotFound", "The resource could not be found.")
            nxt = self.child(item, part)
            if nxt is None:
                raise GraphError(404, "itemNotFound", "The resource could not be found.")
            item = nxt
        return item

    def path_of(self, item: dict[str, Any]) -> str:
        """'/drives/{id}/root:' plus the folder path of the item's parent, as parentReference.path gives."""
        parts: list[str] = []
        cur = item
        while cur["_parent"] is not None:
            parts.append(cur["name"])
            cur = self.items[cur["_parent"]]
        return "/".join(reversed(parts))

    def list_children(self, folder: dict[str, Any]) -> list[dict[str, Any]]:
        kids = [self.items[c] for c in self.children.get(folder["id"], {}).values()]
        return sorted(kids, key=lambda i: i["name"].lower())

    # ---- changes -----------------------------------------------------------------------------------------
    def _touch(self, item: dict[str, Any]) -> None:
        drive = self.drives[item["_drive"]]
        drive["_seq"] += 1
        item["_seq"] = drive["_seq"]

    def _next_id(self, did: str) -> str:
        self.counter += 1
        return item_id(self.tenant_id, did, "new", str(self.counter))

    def _available(
        self, parent: dict[str, Any], name: str, conflict: str
    ) -> tuple[str, dict[str, Any] | None]:
        """The name to use and the item it replaces, per @microsoft.graph.conflictBehavior."""
        existing = self.child(parent, name)
        if existing is None:
            return name, None
        if conflict == "fail":
            raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
        if conflict == "replace":
            return name, existing
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, ext, dot = name, "", ""
        n = 1
        while True:
            candidate = f"{stem} {n}{dot}{ext}"
            if self.child(parent, candidate) is None:
                return candidate, None
            n += 1

    def _check_path(self, parent: dict[str, Any], name: str) -> None:
        drive = self.drives[parent["_drive"]]
        full = f"{drive['webUrl']}/{self.path_of(parent)}/{name}".replace("%20", " ")
        full = full.split("://", 1)[-1].split("/", 1)[-1]
        if len(full) > MAX_PATH:
            raise GraphError(
                400, "invalidRequest", f"The path is {len(full)} characters; the limit is {MAX_PATH}."
            )

    def validate_name(self, parent: dict[str, Any], name: str) -> None:
        problem = name_problem(name)
        if problem:
            raise GraphError(400, "invalidRequest", f"Invalid name '{name}'. {problem}")
        self._check_path(parent, name)

    def create_item(
        self,
        parent: dict[str, Any],
        name: str,
        *,
        folder: bool,
        content: dict[str, Any] | None = None,
        quick_xor: str | None = None,
        conflict: str = "fail",
        fs: dict[str, Any] | None = None,
        created: str | None = None,
        by: dict[str, Any] | None = None,
        validate: bool = True,
        iid: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """(item, created) — created False when an existing file got a new version (replace)."""
        if not parent.get("_folder"):
            raise GraphError(400, "invalidRequest", "The parent item is not a folder.")
        if validate:
            self.validate_name(parent, name)
        name, existing = self._available(parent, name, conflict)
        stamp = created or now_iso()
        if existing is not None:
            if existing.get("_folder") != folder:
                raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
            if folder:
                return existing, False
            self._set_content(existing, content or content_mod.in_memory(b""), quick_xor, stamp, fs, by)
            return existing, False
        did = parent["_drive"]
        item: dict[str, Any] = {
            "id": iid or self._next_id(did),
            "name": name,
            "_drive": did,
            "_parent": parent["id"],
            "_folder": folder,
            "createdDateTime": stamp,
            "lastModifiedDateTime": stamp,
            "fileSystemInfo": {
                "createdDateTime": (fs or {}).get("createdDateTime") or stamp,
                "lastModifiedDateTime": (fs or {}).get("lastModifiedDateTime") or stamp,
            },
            "_v": 1,
            "_cv": 1,
            "_by": by or {"application": {"displayName": "trustfold sandbox"}},
        }
        if by:
            item["_created_by"] = by  # createdBy stays with the creator when others change the file
        if folder:
            self.children[item["id"]] = {}
        else:
            item["_content"] = content or content_mod.in_memory(b"")
            item["_hash"] = quick_xor
        self.items[item["id"]] = item
        self.children[parent["id"]][name.lower()] = item["id"]
        self._touch(item)
        self._modified(parent, stamp)
        return item, True

    def _set_content(
        self,
        item: dict[str, Any],
        content: dict[str, Any],
        quick_xor: str | None,
        stamp: str,
        fs: dict[str, Any] | None,
        by: dict[str, Any] | None,
    ) -> None:
        # The replaced content stays as a version of the file (driveitem-list-versions), newest last.
        if "_content" in item:
            item.setdefault("_versions", []).append(
                {
                    "v": item["_cv"],
                    "content": item["_content"],
                    "hash": item.get("_hash"),
                    "at": item["lastModifiedDateTime"],
                    "by": item.get("_by"),
                }
            )
        item["_content"] = content
        item["_hash"] = quick_xor
        item["_v"] += 1
        item["_cv"] += 1
        item["lastModifiedDateTime"] = stamp
        item["fileSystemInfo"] = {
            "createdDateTime": (fs or {}).get("createdDateTime") or item["fileSystemInfo"]["createdDateTime"],
            "lastModifiedDateTime": (fs or {}).get("lastModifiedDateTime") or stamp,
        }
        if by:
            item["_by"] = by
        self._touch(item)

    def _modified(self, folder: dict[str, Any], stamp: str) -> None:
        folder["lastModifiedDateTime"] = stamp
        folder["_v"] += 1

    def update(self, item: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """PATCH: rename, move (parentReference.id), fileSystemInfo."""
        if item["_parent"] is None and ("name" in body or "parentReference" in body):
            raise GraphError(400, "invalidRequest", "The root folder cannot be renamed or moved.")
        if "name" in body and not isinstance(body["name"], str):
            raise GraphError(400, "invalidRequest", "name must be a string.")
        ref = body.get("parentReference") or {}
        if not isinstance(ref, dict):
            raise GraphError(400, "invalidRequest", "parentReference must be an object.")
        fs = check_file_system_info(body.get("fileSystemInfo"))
        new_parent = self.items[item["_parent"]] if item["_parent"] else None
        if ref.get("id"):
            new_parent = self.item(item["_drive"], ref["id"])
            if not new_parent.get("_folder"):
                raise GraphError(400, "invalidRequest", "The destination is not a folder.")
            cur: dict[str, Any] | None = new_parent
            while cur is not None:
                if cur["id"] == item["id"]:
                    raise GraphError(400, "invalidRequest", "A folder cannot be moved into itself.")
                cur = self.items[cur["_parent"]] if cur["_parent"] else None
        new_name = body.get("name", item["name"])
        if new_parent is not None and (new_name != item["name"] or new_parent["id"] != item["_parent"]):
            self.validate_name(new_parent, new_name)
            clash = self.child(new_parent, new_name)
            if clash is not None and clash["id"] != item["id"]:
                raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
            old_parent = self.items[item["_parent"]]
            del self.children[old_parent["id"]][item["name"].lower()]
            self.children[new_parent["id"]][new_name.lower()] = item["id"]
            item["name"] = new_name
            item["_parent"] = new_parent["id"]
            self._modified(old_parent, now_iso())
            self._modified(new_parent, now_iso())
        if fs:
            item["fileSystemInfo"] = {
                "createdDateTime": fs.get("createdDateTime") or item["fileSystemInfo"]["createdDateTime"],
                "lastModifiedDateTime": fs.get("lastModifiedDateTime")
                or item["fileSystemInfo"]["lastModifiedDateTime"],
            }
        item["_v"] += 1
        item["lastModifiedDateTime"] = now_iso()
        self._touch(item)
        return item

    def delete(self, item: dict[str, Any]) -> None:
        """To the recycle bin, with everything below it."""
        if item["_parent"] is None:
            raise GraphError(400, "invalidRequest", "The root folder cannot be deleted.")
        del self.children[item["_parent"]][item["name"].lower()]
        self._modified(self.items[item["_parent"]], now_iso())
        stack = [item]
        while stack:
            cur = stack.pop()
            for cid in self.children.get(cur["id"], {}).values():
                stack.append(self.items[cid])
            cur["_deleted"] = True
            cur["_deletedAt"] = now_iso()
            self._touch(cur)

    # ---- versions (driveitem-list-versions, driveitemversion-get/-delete/-restore) --------------------
    def versions(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        """The file's versions as Graph lists them: the current one first, then older ones, newest first."""
        if item.get("_folder"):
            raise GraphError(400, "invalidRequest", "Versions are available for files only.")
        current = {
            "v": item["_cv"],
            "content": item["_content"],
            "at": item["lastModifiedDateTime"],
            "by": item.get("_by"),
        }
        return [self._render_version(v) for v in [current, *reversed(item.get("_versions") or [])]]

    @staticmethod
    def _render_version(v: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"{v['v']}.0",
            "lastModifiedDateTime": v["at"],
            "lastModifiedBy": v.get("by") or {"application": {"displayName": "trustfold sandbox"}},
            "size": int(v["content"]["size"]),
        }

    def _old_version(self, item: dict[str, Any], vid: str) -> dict[str, Any] | None:
        return next((v for v in item.get("_versions") or [] if f"{v['v']}.0" == vid), None)

    def version(self, item: dict[str, Any], vid: str) -> dict[str, Any]:
        found = next((v for v in self.versions(item) if v["id"] == vid), None)
        if found is None:
            raise GraphError(404, "itemNotFound", "The requested version was not found.")
        return found

    def delete_version(self, item: dict[str, Any], vid: str) -> None:
        if vid == f"{item['_cv']}.0":
            # The current version is the file itself: delete the item, not its version.
            raise GraphError(400, "invalidRequest", "The current version of a file cannot be deleted.")
        old = self._old_version(item, vid)
        if old is None:
            raise GraphError(404, "itemNotFound", "The requested version was not found.")
        item["_versions"].remove(old)
        self._touch(item)

    def restore_version(self, item: dict[str, Any], vid: str) -> None:
        """A new current version with the old content; every existing version is kept."""
        self.version(item, vid)  # 404 for an unknown id
        old = self._old_version(item, vid)
        if old is None:
            return  # restoring the current version changes nothing
        self._set_content(item, old["content"], old.get("hash"), now_iso(), None, None)

    # ---- copy (driveitem-copy) --------------------------------------------------------------------------
    def check_copy(self, item: dict[str, Any], parent: dict[str, Any], name: str, conflict: str) -> None:
        """What the copy request itself is refused for (before it is accepted)."""
        if item["_parent"] is None:
            raise GraphError(400, "invalidRequest", "The root folder cannot be copied.")
        if not parent.get("_folder"):
            raise GraphError(400, "invalidRequest", "The destination is not a folder.")
        cur: dict[str, Any] | None = parent
        while cur is not None:
            if cur["id"] == item["id"]:
                raise GraphError(400, "invalidRequest", "A folder cannot be copied into itself.")
            cur = self.items[cur["_parent"]] if cur["_parent"] else None
        self.validate_name(parent, name)
        clash = self.child(parent, name)
        if clash is not None and conflict == "fail":
            raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
        if (
            clash is not None
            and conflict == "replace"
            and bool(clash.get("_folder")) != bool(item.get("_folder"))
        ):
            raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")

    def copy(self, item: dict[str, Any], parent: dict[str, Any], name: str, conflict: str) -> dict[str, Any]:
        """The copy itself (content and, for a folder, everything below it; no versions, no sharing)."""
        if item.get("_folder"):
            made, _ = self.create_item(parent, name, folder=True, conflict=conflict)
            for cid in list(self.children.get(item["id"], {}).values()):
                child = self.items[cid]
                self.copy(child, made, child["name"], "fail")
            return made
        made, _ = self.create_item(
            parent,
            name,
            folder=False,
            content=item["_content"],
            quick_xor=item.get("_hash"),
            conflict=conflict,
            fs=item.get("fileSystemInfo"),
        )
        return made

    def hash_of(self, item: dict[str, Any]) -> str:
        if item.get("_hash") is None:
            item["_hash"] = content_mod.quick_xor(item["_content"])
        return str(item["_hash"])

    # ---- Graph JSON --------------------------------------------------------------------------------------
    def render(
        self, item: dict[str, Any], *, with_path: bool = True, download: str | None = None
    ) -> dict[str, Any]:
        drive = self.drives[item["_drive"]]
        out: dict[str, Any] = {
            "id": item["id"],
            "name": item["name"],
            "eTag": f'"{{{item["id"]}}},{item["_v"]}"',
            "cTag": f'"c:{{{item["id"]}}},{item["_cv"]}"',
            "createdDateTime": item["createdDateTime"],
            "lastModifiedDateTime": item["lastModifiedDateTime"],
            "webUrl": f"{drive['webUrl']}/{self.path_of(item)}".rstrip("/").replace(" ", "%20"),
            "createdBy": item.get("_created_by")
            or item.get("_by")
            or {"application": {"displayName": "trustfold sandbox"}},
            "lastModifiedBy": item.get("_by") or {"application": {"displayName": "trustfold sandbox"}},
            "fileSystemInfo": dict(item["fileSystemInfo"]),
        }
        if item.get("_deleted"):
            out["deleted"] = {"state": "deleted"}
            out["parentReference"] = {"driveId": drive["id"], "driveType": drive["driveType"]}
            if item["_parent"]:
                out["parentReference"]["id"] = item["_parent"]
            return out
        if item["_parent"] is None:
            out["root"] = {}
        else:
            parent = self.items[item["_parent"]]
            ref: dict[str, Any] = {
                "driveId": drive["id"],
                "driveType": drive["driveType"],
                "id": parent["id"],
            }
            if with_path:
                ppath = self.path_of(parent)
                ref["path"] = f"/drives/{drive['id']}/root:" + (f"/{ppath}" if ppath else "")
            if drive.get("_site"):
                ref["siteId"] = drive["_site"]
            out["parentReference"] = ref
        if item.get("_folder"):
            out["folder"] = {"childCount": len(self.children.get(item["id"], {}))}
            out["size"] = self.folder_size(item)
        else:
            out["size"] = int(item["_content"]["size"])
            out["file"] = {
                "mimeType": _mime(item["name"]),
                "hashes": {"quickXorHash": self.hash_of(item)},
            }
            if download:
                out["@microsoft.graph.downloadUrl"] = download
        out.update(permissions_state.shared_facet(item))
        return out

    def folder_size(self, folder: dict[str, Any]) -> int:
        total, stack = 0, [folder["id"]]
        while stack:
            for cid in self.children.get(stack.pop(), {}).values():
                child = self.items[cid]
                if child.get("_folder"):
                    stack.append(cid)
                else:
                    total += int(child["_content"]["size"])
        return total

    def deleted_size(self, did: str) -> int:
        return sum(
            int(i["_content"]["size"])
            for i in self.items.values()
            if i.get("_deleted") and i["_drive"] == did and not i.get("_folder") and i.get("_content")
        )

    def render_drive(self, drive: dict[str, Any]) -> dict[str, Any]:
        used = self.folder_size(self.items[drive["_root"]])
        total = 1024**4
        out = {k: v for k, v in drive.items() if not k.startswith(PRIVATE)}
        out["quota"] = {
            "total": total,
            "used": used,
            "remaining": total - used,
            # What the recycle bin holds (learn.microsoft.com/graph/api/resources/quota).
            "deleted": self.deleted_size(drive["id"]),
            "state": "normal",
        }
        return out

    def render_site(self, site: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in site.items() if not k.startswith(PRIVATE)}

    # ---- delta -------------------------------------------------------------------------------------------
    def changes(self, did: str, since: int, upto: int, after: int, limit: int) -> list[dict[str, Any]]:
        """Items of the drive whose sequence is in (max(since, after), upto], by sequence; deleted items only
        when since > 0 (a full enumeration lists what exists)."""
        low = max(since, after)
        out = [
            i
            for i in self.items.values()
            if i["_drive"] == did and low < i["_seq"] <= upto and (since > 0 or not i.get("_deleted"))
        ]
        out.sort(key=lambda i: i["_seq"])
        return out[:limit]

    # ---- persistence -------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        def entry(i: dict[str, Any]) -> dict[str, Any]:
            e = {
                "id": i["id"],
                "path": self.path_of(i) if not i.get("_deleted") else None,
                "name": i["name"],
                "folder": bool(i.get("_folder")),
                "fileSystemInfo": i["fileSystemInfo"],
            }
            if not i.get("_folder"):
                e["size"] = int(i["_content"]["size"])
                e["quickXorHash"] = self.hash_of(i)
            return e

        drives = []
        for did in sorted(self.drives):
            d = self.drives[did]
            items = [i for i in self.items.values() if i["_drive"] == did and i["_parent"] is not None]
            drives.append(
                {
                    "id": did,
                    "driveType": d["driveType"],
                    "name": d["name"],
                    "owner": d["owner"],
                    "items": sorted(
                        (entry(i) for i in items if not i.get("_deleted")), key=lambda e: e["id"]
                    ),
                    "recycleBin": sorted(
                        ({"id": i["id"], "name": i["name"]} for i in items if i.get("_deleted")),
                        key=lambda e: e["id"],
                    ),
                }
            )
        sites = [self.render_site(self.sites[s]) for s in sorted(self.sites)]
        return {"sites": sites, "drives": drives}

    def to_state(self) -> dict[str, Any]:
        items = []
        for i in self.items.values():
            d = {k: v for k, v in i.items() if k not in ("_content", "_versions")}
            if "_content" in i:
                d["_content"] = content_mod.to_state(i["_content"])
            if i.get("_versions"):
                d["_versions"] = [
                    {**v, "content": content_mod.to_state(v["content"])} for v in i["_versions"]
                ]
            items.append(d)
        return {
            "host": self.host,
            "counter": self.counter,
            "sites": list(self.sites.values()),
            "drives": list(self.drives.values()),
            "items": items,
            "user_drive": self.user_drive,
            "sharing_policy": self.sharing_policy,
            "invitation_log": self.invitation_log,
        }

    @classmethod
    def from_state(cls, tenant_id: str, state: dict[str, Any]) -> DriveStore:
        store = cls(tenant_id)
        if not state:
            return store
        store.host = state["host"]
        store.counter = int(state.get("counter", 0))
        store.sites = {s["id"]: s for s in state["sites"]}
        store.drives = {d["id"]: d for d in state["drives"]}
        store.user_drive = dict(state["user_drive"])
        # Absent in state files written before the policy was saved: the defaults apply, as on a new tenant.
        store.sharing_policy = state.get("sharing_policy")
        store.invitation_log = state.get("invitation_log")
        for d in state["items"]:
            if "_content" in d:
                d["_content"] = content_mod.from_state(d["_content"])
            for v in d.get("_versions") or ():
                v["content"] = content_mod.from_state(v["content"])
            store.items[d["id"]] = d
            if d.get("_folder"):
                store.children.setdefault(d["id"], {})
        for i in store.items.values():
            if i["_parent"] is not None and not i.get("_deleted"):
                store.children.setdefault(i["_parent"], {})[i["name"].lower()] = i["id"]
        return store


_MIME = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "csv": "text/csv",
    "jpg": "image/jpeg",
    "png": "image/png",
    "mp4": "video/mp4",
    "zip": "application/zip",
}


def _mime(name: str) -> str:
    return _MIME.get(name.rpartition(".")[2].lower(), "application/octet-stream")

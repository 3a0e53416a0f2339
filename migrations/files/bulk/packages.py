"""What goes into one Migration API package: steps grouped by Microsoft's sizing guidance, the target
library's ids (web, list, folders) read through SharePoint REST, and the package's manifest XML (authorship
through the reviewed identity mapping)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from migrations.core.steps import Step
from migrations.core.store import StateStore
from migrations.files.bulk import manifest as mf
from migrations.files.bulk.context import BulkContext
from migrations.files.bulk.sharepoint_rest import url_arg
from migrations.safety.sanitise import xml_text


@dataclass
class Lib:
    library: mf.Library
    drive_url: str  # absolute library URL
    folders: dict[str, str]  # library-relative folder path -> GUID ('' = root folder)


def packages(steps: list[Step]) -> list[list[Step]]:
    """Per target library, at most 250 items or 250 MB, whichever comes first; a larger file alone."""
    out: list[list[Step]] = []
    by_drive: dict[str, list[Step]] = {}
    for s in sorted(steps, key=lambda s: (s.args["target_drive"], s.args["path"])):
        by_drive.setdefault(s.args["target_drive"], []).append(s)
    for group in by_drive.values():
        cur: list[Step] = []
        size = 0
        for s in group:
            n = int(s.args["size"])
            if n > mf.MAX_PACKAGE_BYTES:
                out.append([s])
                continue
            if cur and (len(cur) >= mf.MAX_PACKAGE_ITEMS or size + n > mf.MAX_PACKAGE_BYTES):
                out.append(cur)
                cur, size = [], 0
            cur.append(s)
            size += n
        if cur:
            out.append(cur)
    return out


async def library(ctx: BulkContext, libs: dict[str, Lib], drive: str, paths: list[str]) -> Lib:
    """The target library's ids, and those of every folder the paths need (cached per run in `libs`)."""
    lib = libs.get(drive)
    if lib is None:
        async with ctx.budget.spend(ctx.target.tenant_id, 1):
            d = await ctx.target.get(f"/drives/{drive}")
        parts = urlsplit(d["webUrl"])
        web_path, _, list_part = parts.path.rpartition("/")
        site_url = f"{parts.scheme}://{parts.netloc}{web_path}"
        web = await ctx.rest.call("GET", site_url, "web")
        lst = await ctx.rest.call("GET", site_url, f"web/GetList({url_arg(unquote(parts.path))})")
        kind = "OneDrive" if d.get("driveType") == "business" else "SharePointOnline"
        found = mf.Library(
            site_url, web["Id"], web_path, lst["Id"], lst["Title"], unquote(list_part),
            lst["RootFolder"]["UniqueId"], kind,
        )  # fmt: skip
        lib = libs[drive] = Lib(found, d["webUrl"], {"": lst["RootFolder"]["UniqueId"]})
    for p in paths:
        parts_ = p.split("/")[:-1]
        for i in range(1, len(parts_) + 1):
            rel = "/".join(parts_[:i])
            if rel not in lib.folders:
                server = f"{lib.library.web_url}/{lib.library.list_url}/{rel}"
                got = await ctx.rest.call(
                    "GET",
                    lib.library.site_url,
                    f"web/GetFolderByServerRelativePath(decodedUrl={url_arg(server)})",
                )
                lib.folders[rel] = got["UniqueId"]
    return lib


def mapped_users(store: StateStore, code: str) -> dict[str, tuple[str, str]]:
    """Source user id -> (target UPN, display name), from the reviewed mapping."""
    return {
        r["source_id"]: (r["target_key"], r["display_name"] or r["target_key"])
        for r in store.rows(
            "SELECT source_id, target_key, display_name FROM mappings "
            "WHERE academy = ? AND kind = 'user' AND action IN ('create', 'match')",
            (code,),
        )
    }


def manifests(
    steps: list[Step],
    files: dict[str, dict[str, Any]],
    staged: dict[str, dict[str, str | None]],
    lib: Lib,
    mapped_users: dict[str, tuple[str, str]],
) -> dict[str, bytes]:
    """The package's XML files: staged files under their folders, authors and editors mapped to the trust
    tenant's users (unmapped or skipped users are left out: SharePoint shows System Account)."""
    users: dict[str, mf.User] = {}

    def uid(source_user: str | None) -> int | None:
        mapped = mapped_users.get(source_user or "")
        if mapped is None:
            return None  # unmapped or skipped: SharePoint shows System Account
        if mapped[0] not in users:
            # A source display name is untrusted text: bidi, zero-width and what XML cannot carry go.
            users[mapped[0]] = mf.User(len(users) + 1, xml_text(mapped[1]), xml_text(mapped[0]))
        return users[mapped[0]].id

    pfiles, folders = [], {}
    for s in steps:
        a, e = s.args, files[s.key]
        parent = a["path"].rpartition("/")[0]
        for i, part in enumerate(parent.split("/") if parent else []):
            rel = "/".join(parent.split("/")[: i + 1])
            up = rel.rpartition("/")[0]
            folders[rel] = mf.Folder(lib.folders[rel], rel, lib.folders[up])
            del part
        pfiles.append(
            mf.File(
                e["id"],
                e["item"],
                a["path"],
                lib.folders[parent],
                int(a["size"]),
                e["blob"],
                a.get("created") or "",
                a.get("modified") or "",
                uid(staged[s.key].get("author")),
                uid(staged[s.key].get("editor")),
            )
        )
    return mf.build(mf.Package(lib.library, list(folders.values()), pfiles, list(users.values())))

"""The sandbox's reading of a Migration API import package: parse and validate the manifest files the way
Microsoft documents (the constrained schemas in migration-api-overview.md, and migration-manifest.md), with
the stricter reading wherever the pages disagree (docs/sandbox.md "SharePoint Migration API").

Independent of trustfold's packager on purpose: the sandbox must refuse what SharePoint would refuse, not
whatever the client happens to write.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime

NS = {
    "ExportSettings.xml": ("urn:deployment-exportsettings-schema", "ExportSettings"),
    "SystemData.xml": ("urn:deployment-systemdata-schema", "SystemData"),
    "UserGroupMap.xml": ("urn:deployment-usergroupmap-schema", "UserGroupMap"),
    "RootObjectMap.xml": ("urn:deployment-rootobjectmap-schema", "RootObjects"),
    "Requirements.xml": ("urn:deployment-requirements-schema", "Requirements"),
    "LookupListMap.xml": ("urn:deployment-lookuplistmap-schema", "LookupLists"),
}
MANIFEST_NS = "urn:deployment-manifest-schema"
# Required by migration-manifest.md; RootObjectMap.xml is "Optional" there but "This required file" in
# migration-api-overview.md: the stricter reading holds.
REQUIRED = ("ExportSettings.xml", "SystemData.xml", "UserGroupMap.xml", "RootObjectMap.xml")
# Optional; "Omission of this file generates a warning message in the log".
WARN_IF_MISSING = ("Requirements.xml", "LookupListMap.xml")
SOURCE_TYPES = {
    "AmazonS3", "AzureStorage", "Box", "Dropbox", "Egnyte", "FileShare", "GoogleCloudStorage",
    "GoogleDrive", "MicrosoftStream", "OneDrive", "SharePointOnline", "SharePointOnPremServer", "Other",
}  # fmt: skip
OBJECT_TYPES = {
    "SPList": "List", "SPDocumentLibrary": "DocumentLibrary", "SPListItem": "ListItem", "SPFolder": "Folder",
    "SPFile": "File", "SPContentType": "ContentType", "SPDocumentTemplate": None,
    "DeploymentUserX": "UserX", "DeploymentGroupX": "GroupX", "DeploymentRoles": "Roles",
    "DeploymentRoleX": "RoleX", "DeploymentRoleAssignments": "RoleAssignments",
    "DeploymentRoleAssignmentX": "RoleAssignmentX",
}  # fmt: skip
LIST_REQUIRED = ("Id", "Title", "RootFolderUrl", "ParentWebId", "BaseTemplate")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class PackageRefused(Exception):
    """The job fails as a whole (JobFatalError): the package cannot be read."""


@dataclass
class PFile:
    id: str
    url: str  # web-relative
    parent_id: str
    blob: str
    size: int
    created: str
    modified: str
    author: str | None
    editor: str | None


@dataclass
class PPackage:
    site_url: str
    web_id: str
    list_id: str
    list_url: str
    root_folder_id: str
    folders: dict[str, str] = field(default_factory=dict)  # id -> web-relative url
    files: list[PFile] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=dict)  # id -> login (UPN part)
    warnings: list[str] = field(default_factory=list)


def _root(name: str, data: bytes, ns: str, tag: str) -> ET.Element:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise PackageRefused(f"{name} is not well-formed XML ({exc})") from None
    if root.tag != f"{{{ns}}}{tag}":
        raise PackageRefused(f"{name}: root element must be {tag} in namespace {ns}, found {root.tag}")
    return root


def _guid(name: str, what: str, value: str | None) -> str:
    if not value or not _GUID.match(value):
        raise PackageRefused(f"{name}: {what} must be a GUID, found {value!r}")
    return value.lower()


def _time(name: str, what: str, value: str | None) -> str:
    if not value:
        return ""
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PackageRefused(f"{name}: {what} {value!r} is not an xs:dateTime") from None
    return value


def parse(files: dict[str, bytes], blobs: set[str]) -> PPackage:
    """Validate the manifest container's files (already decrypted) against the content container's blob
    names. Raises PackageRefused naming the file and the rule."""
    for name in REQUIRED:
        if name not in files:
            raise PackageRefused(f"{name} is missing from the manifest container")
    warnings = [f"{n} is missing (optional; its absence is logged)" for n in WARN_IF_MISSING]
    warnings = [w for w, n in zip(warnings, WARN_IF_MISSING, strict=True) if n not in files]
    for name, (ns, tag) in NS.items():
        if name in files:
            _root(name, files[name], ns, tag)

    e_ns = NS["ExportSettings.xml"][0]
    export = _root("ExportSettings.xml", files["ExportSettings.xml"], e_ns, "ExportSettings")
    site_url = export.get("SiteUrl")
    if not site_url:
        raise PackageRefused("ExportSettings.xml: SiteUrl is required")
    source = export.get("SourceType")
    if source not in SOURCE_TYPES:
        raise PackageRefused(f"ExportSettings.xml: SourceType {source!r} is not one of Microsoft's values")
    if source == "Other" and not export.get("DetailedSource"):
        raise PackageRefused("ExportSettings.xml: SourceType Other needs DetailedSource")

    s_ns = NS["SystemData.xml"][0]
    system = _root("SystemData.xml", files["SystemData.xml"], s_ns, "SystemData")
    if system.find(f"{{{s_ns}}}SchemaVersion") is None:
        raise PackageRefused("SystemData.xml: SchemaVersion is required")
    listed = system.iterfind(f"{{{s_ns}}}ManifestFiles/{{{s_ns}}}ManifestFile")
    manifests = [m.get("Name") or "" for m in listed]
    if not manifests:
        raise PackageRefused("SystemData.xml: ManifestFiles must list at least one ManifestFile")

    u_ns = NS["UserGroupMap.xml"][0]
    users_root = _root("UserGroupMap.xml", files["UserGroupMap.xml"], u_ns, "UserGroupMap")
    users: dict[str, str] = {}
    for u in users_root.iterfind(f"{{{u_ns}}}Users/{{{u_ns}}}User"):
        uid, login = u.get("Id"), u.get("Login") or ""
        if not uid or uid in users:
            raise PackageRefused(f"UserGroupMap.xml: user Id {uid!r} missing or repeated")
        if login.rpartition("|")[2] in users.values():
            raise PackageRefused(f"UserGroupMap.xml: user {login!r} listed twice (identify a user once)")
        users[uid] = login.rpartition("|")[2]

    pkg: PPackage | None = None
    seen: set[str] = set()
    for mname in manifests:
        if mname not in files:
            raise PackageRefused(f"SystemData.xml lists {mname} but the manifest container has no such file")
        objs = _root(mname, files[mname], MANIFEST_NS, "SPObjects")
        pkg = _objects(mname, objs, site_url, users, blobs, seen, pkg)
    assert pkg is not None
    pkg.users, pkg.warnings = users, warnings

    r_ns = NS["RootObjectMap.xml"][0]
    roots = _root("RootObjectMap.xml", files["RootObjectMap.xml"], r_ns, "RootObjects")
    for r in roots.iterfind(f"{{{r_ns}}}RootObject"):
        if r.get("Type") == "List":
            if _guid("RootObjectMap.xml", "RootObject Id", r.get("Id")) != pkg.list_id:
                raise PackageRefused("RootObjectMap.xml: the List root object is not the manifest's library")
            if _guid("RootObjectMap.xml", "ParentId", r.get("ParentId")) != pkg.web_id:
                raise PackageRefused("RootObjectMap.xml: the List root object's ParentId is not its web")
    return pkg


def _objects(
    mname: str,
    objs: ET.Element,
    site_url: str,
    users: dict[str, str],
    blobs: set[str],
    seen: set[str],
    pkg: PPackage | None,
) -> PPackage:
    m = f"{{{MANIFEST_NS}}}"
    pending: list[tuple[str, ET.Element]] = []
    for o in objs.iterfind(f"{m}SPObject"):
        kind = o.get("ObjectType") or ""
        if kind not in OBJECT_TYPES:
            raise PackageRefused(f"{mname}: ObjectType {kind!r} is not in the schema")
        oid = _guid(mname, f"{kind} Id", o.get("Id"))
        if oid in seen:
            raise PackageRefused(f"{mname}: Id {oid} is used twice")
        seen.add(oid)
        child_tag = OBJECT_TYPES[kind]
        child = o.find(f"{m}{child_tag}") if child_tag else None
        if child_tag and child is None:
            raise PackageRefused(f"{mname}: SPObject {oid} ({kind}) has no {child_tag} element")
        if kind == "SPDocumentLibrary":
            assert child is not None
            for a in LIST_REQUIRED:
                if not child.get(a):
                    raise PackageRefused(f"{mname}: DocumentLibrary {oid} lacks the required attribute {a}")
            if _guid(mname, "DocumentLibrary Id", child.get("Id")) != oid:
                raise PackageRefused(f"{mname}: DocumentLibrary Id differs from its SPObject Id")
            if pkg is not None:
                raise PackageRefused(f"{mname}: one document library per package")
            pkg = PPackage(
                site_url,
                _guid(mname, "ParentWebId", child.get("ParentWebId")),
                oid,
                child.get("RootFolderUrl") or "",
                _guid(mname, "RootFolderId", child.get("RootFolderId")),
            )
        else:
            pending.append((kind, o))
    if pkg is None:
        raise PackageRefused(f"{mname}: no SPDocumentLibrary object (the target library must be named)")
    folders_pending = [(k, o) for k, o in pending if k == "SPFolder"]
    for _, o in folders_pending:
        f = o.find(f"{m}Folder")
        assert f is not None
        pkg.folders[o.get("Id", "").lower()] = f.get("Url") or ""
    folder_ids = set(pkg.folders) | {pkg.root_folder_id}
    for _, o in folders_pending:
        f = o.find(f"{m}Folder")
        assert f is not None
        if _guid(mname, "ParentFolderId", f.get("ParentFolderId")) not in folder_ids:
            raise PackageRefused(f"{mname}: folder {o.get('Id')}: ParentFolderId resolves to nothing")
        if _guid(mname, "ContainingDocumentLibrary", f.get("ContainingDocumentLibrary")) != pkg.list_id:
            raise PackageRefused(f"{mname}: folder {o.get('Id')} names another document library")
    files_by_url: dict[str, str] = {}
    for kind, o in pending:
        if kind == "SPFolder":
            continue
        if _guid(mname, f"{kind} ParentWebId", o.get("ParentWebId")) != pkg.web_id:
            raise PackageRefused(f"{mname}: {kind} {o.get('Id')} names another web (ParentWebId)")
        if kind == "SPFile":
            f = o.find(f"{m}File")
            assert f is not None
            fid = o.get("Id", "").lower()
            if _guid(mname, "File Id", f.get("Id")) != fid:
                raise PackageRefused(f"{mname}: File Id differs from its SPObject Id")
            parent = _guid(mname, "File ParentId", f.get("ParentId"))
            if parent not in folder_ids:
                raise PackageRefused(f"{mname}: file {fid} has a ParentId that resolves to no folder")
            if f.get("ListId") and _guid(mname, "ListId", f.get("ListId")) != pkg.list_id:
                raise PackageRefused(f"{mname}: file {fid} names another list")
            blob = f.get("FileValue") or ""
            if not blob:
                raise PackageRefused(f"{mname}: file {fid} has no FileValue")
            if blob not in blobs:
                raise PackageRefused(f"{mname}: file {fid}: FileValue {blob!r} is not in the content blobs")
            for a in ("Author", "ModifiedBy"):
                if f.get(a) and f.get(a) not in users:
                    raise PackageRefused(f"{mname}: file {fid}: {a} {f.get(a)!r} is not in UserGroupMap.xml")
            url = f.get("Url") or ""
            if not url.startswith(pkg.list_url + "/"):
                raise PackageRefused(f"{mname}: file {fid}: Url {url!r} is outside the library")
            pkg.files.append(
                PFile(
                    fid,
                    url,
                    parent,
                    blob,
                    int(f.get("FileSize") or -1),
                    _time(mname, "TimeCreated", f.get("TimeCreated")),
                    _time(mname, "TimeLastModified", f.get("TimeLastModified")),
                    f.get("Author"),
                    f.get("ModifiedBy"),
                )
            )
            files_by_url[url] = fid
        elif kind == "SPListItem":
            li = o.find(f"{m}ListItem")
            assert li is not None
            if _guid(mname, "ParentListId", li.get("ParentListId")) != pkg.list_id:
                raise PackageRefused(f"{mname}: list item {o.get('Id')} names another list")
    for kind, o in pending:
        if kind == "SPListItem":
            li = o.find(f"{m}ListItem")
            assert li is not None
            if li.get("DocType", "File") == "File" and li.get("FileUrl") not in files_by_url:
                raise PackageRefused(f"{mname}: list item {o.get('Id')}: FileUrl resolves to no file")
    return pkg

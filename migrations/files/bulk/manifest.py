"""The XML files of a Migration API import package, built from Microsoft's documented (constrained) content
migration schemas: docs/sandbox.md "SharePoint Migration API" lists every fact used here with its page.

One package = one target document library. The manifest container holds ExportSettings.xml, SystemData.xml,
Manifest.xml, UserGroupMap.xml, RootObjectMap.xml, Requirements.xml and LookupListMap.xml (the last two empty
but present, because their absence logs a warning); the content container holds one blob per file, named by
the manifest's FileValue. Every id is a GUID; every ParentId / ParentFolderId / ListId / Author points at an
object of the same package (or the target library's root folder), so the package imports on its own.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from migrations.safety.sanitise import xml_forbidden

NS = {
    "manifest": "urn:deployment-manifest-schema",
    "export": "urn:deployment-exportsettings-schema",
    "system": "urn:deployment-systemdata-schema",
    "users": "urn:deployment-usergroupmap-schema",
    "root": "urn:deployment-rootobjectmap-schema",
    "requirements": "urn:deployment-requirements-schema",
    "lookup": "urn:deployment-lookuplistmap-schema",
}
MANIFEST_FILES = (
    "ExportSettings.xml",
    "SystemData.xml",
    "Manifest.xml",
    "UserGroupMap.xml",
    "RootObjectMap.xml",
    "Requirements.xml",
    "LookupListMap.xml",
)
# Microsoft: "package sizes of up to 250 MB OR 250 items (depending which one comes first)"; a larger file
# travels in its own package. Files are at most 15 GB (SharePoint's own limit is higher; the API's is this).
MAX_PACKAGE_ITEMS = 250
MAX_PACKAGE_BYTES = 250 * 1024 * 1024
MAX_FILE_BYTES = 15 * 1024**3
DOCUMENT_CONTENT_TYPE = "0x0101"


class PackagingError(ValueError):
    """A name or value that XML 1.0 cannot carry (the Migration API decodes no escapes)."""


@dataclass(frozen=True)
class Library:
    """The target document library, as SharePoint identifies it."""

    site_url: str  # absolute: https://host/sites/x
    web_id: str
    web_url: str  # server-relative: /sites/x
    list_id: str
    title: str
    list_url: str  # web-relative: 'Shared Documents'
    root_folder_id: str
    source_type: str = "SharePointOnline"  # ExportSettings SourceType, from Microsoft's list


@dataclass(frozen=True)
class Folder:
    id: str
    path: str  # library-relative: 'Admin/Reports'
    parent_id: str  # a Folder id of the package or the library's root folder id


@dataclass(frozen=True)
class File:
    id: str
    item_id: str  # the list item's GUID
    path: str  # library-relative
    parent_id: str
    size: int
    blob: str  # FileValue: the blob's name in the content container
    created: str
    modified: str
    author: int | None = None  # UserGroupMap user id
    editor: int | None = None


@dataclass
class User:
    id: int
    name: str
    login: str  # the target UPN (Microsoft: Login must be a UPN)


@dataclass
class Package:
    library: Library
    folders: list[Folder] = field(default_factory=list)
    files: list[File] = field(default_factory=list)
    users: list[User] = field(default_factory=list)


def _clean(value: str) -> str:
    if xml_forbidden(value):  # the last guard: callers sanitise or fail the item before this
        raise PackagingError(f"{value!r} holds a character XML cannot carry")
    return value


def _time(stamp: str) -> str:
    """xs:dateTime in UTC without fractions, as Microsoft's examples write it."""
    return stamp.replace("Z", "")[:19] if stamp else ""


def _el(parent: ET.Element | None, tag: str, ns: str, **attrs: str | None) -> ET.Element:
    clean = {k: _clean(str(v)) for k, v in attrs.items() if v is not None and v != ""}
    if parent is None:
        return ET.Element(tag, {"xmlns": ns, **clean})  # the schema's namespace is the default one
    return ET.SubElement(parent, tag, clean)


def _doc(root: ET.Element) -> bytes:
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _url(lib: Library, path: str) -> str:
    return f"{lib.list_url}/{path}".rstrip("/")


def build(pkg: Package) -> dict[str, bytes]:
    """The manifest container's files, by name."""
    lib = pkg.library
    ns = NS["manifest"]
    objs = _el(None, "SPObjects", ns)
    common = {"ParentWebId": lib.web_id, "ParentWebUrl": lib.web_url}
    o = _el(
        objs,
        "SPObject",
        ns,
        ObjectType="SPDocumentLibrary",
        Id=lib.list_id,
        ParentId=lib.web_id,
        Url=lib.list_url,
        **common,
    )
    _el(
        o,
        "DocumentLibrary",
        ns,
        Id=lib.list_id,
        Title=lib.title,
        RootFolderId=lib.root_folder_id,
        RootFolderUrl=lib.list_url,
        BaseType="DocumentLibrary",
        BaseTemplate="101",
        **common,
    )
    for f in pkg.folders:
        name = f.path.rpartition("/")[2]
        o = _el(
            objs,
            "SPObject",
            ns,
            ObjectType="SPFolder",
            Id=f.id,
            ParentId=f.parent_id,
            Url=_url(lib, f.path),
            **common,
        )
        _el(
            o,
            "Folder",
            ns,
            Id=f.id,
            Name=name,
            Url=_url(lib, f.path),
            ParentFolderId=f.parent_id,
            ContainingDocumentLibrary=lib.list_id,
            **common,
        )
    for fi in pkg.files:
        name = fi.path.rpartition("/")[2]
        o = _el(
            objs,
            "SPObject",
            ns,
            ObjectType="SPFile",
            Id=fi.id,
            ParentId=fi.parent_id,
            Url=_url(lib, fi.path),
            **common,
        )
        _el(
            o,
            "File",
            ns,
            Url=_url(lib, fi.path),
            Id=fi.id,
            Name=name,
            ListId=lib.list_id,
            ParentId=fi.parent_id,
            FileValue=fi.blob,
            Version="1.0",
            FileSize=str(fi.size),
            TimeCreated=_time(fi.created),
            TimeLastModified=_time(fi.modified),
            Author=str(fi.author) if fi.author else None,
            ModifiedBy=str(fi.editor) if fi.editor else None,
            InDocumentLibrary="true",
            **common,
        )
        dir_name = _url(lib, fi.path.rpartition("/")[0])
        o = _el(
            objs,
            "SPObject",
            ns,
            ObjectType="SPListItem",
            Id=fi.item_id,
            ParentId=lib.list_id,
            Url=f"{dir_name}/{name}",
            **common,
        )
        _el(
            o,
            "ListItem",
            ns,
            Id=fi.item_id,
            FileUrl=_url(lib, fi.path),
            DocType="File",
            Name=name,
            DirName=dir_name,
            ParentWebId=lib.web_id,
            ParentListId=lib.list_id,
            ParentFolderId=fi.parent_id,
            ContentTypeId=DOCUMENT_CONTENT_TYPE,
            Version="1.0",
            TimeCreated=_time(fi.created),
            TimeLastModified=_time(fi.modified),
            Author=str(fi.author) if fi.author else None,
            ModifiedBy=str(fi.editor) if fi.editor else None,
        )

    export = _el(
        None,
        "ExportSettings",
        NS["export"],
        SiteUrl=lib.site_url,
        FileLocation="trustfold",
        IncludeSecurity="None",
        IncludeVersions="LastMajor",
        ExportMethod="ExportAll",
        SourceType=lib.source_type,
        IgnoreWebParts="true",
    )
    objects = _el(export, "ExportObjects", NS["export"])
    _el(objects, "DeploymentObject", NS["export"], Id=lib.list_id, Type="List", ParentId=lib.web_id)

    system = _el(None, "SystemData", NS["system"])
    _el(
        system,
        "SchemaVersion",
        NS["system"],
        Version="15.0.0.0",
        Build="16.0.3111.1200",
        DatabaseVersion="11552",
        SiteVersion="15",
    )
    mf = _el(system, "ManifestFiles", NS["system"])
    _el(mf, "ManifestFile", NS["system"], Name="Manifest.xml")
    so = _el(system, "SystemObjects", NS["system"])
    _el(so, "SystemObject", NS["system"], Id=lib.web_id, Type="Web", Url=lib.web_url)
    _el(so, "SystemObject", NS["system"], Id=lib.list_id, Type="List", Url=f"{lib.web_url}/{lib.list_url}")
    _el(system, "RootWebOnlyLists", NS["system"])

    users = _el(None, "UserGroupMap", NS["users"])
    ul = _el(users, "Users", NS["users"])
    for u in pkg.users:
        _el(
            ul,
            "User",
            NS["users"],
            Id=str(u.id),
            Name=u.name,
            Login=f"i:0#.f|membership|{u.login}",
            Email=u.login,
            IsDomainGroup="false",
            IsSiteAdmin="false",
            IsDeleted="false",
            Flags="0",
        )
    _el(users, "Groups", NS["users"])

    roots = _el(None, "RootObjects", NS["root"])
    _el(
        roots,
        "RootObject",
        NS["root"],
        Id=lib.list_id,
        Type="List",
        ParentId=lib.web_id,
        WebUrl=lib.web_url,
        Url=f"{lib.web_url}/{lib.list_url}",
        IsDependency="false",
    )

    return {
        "ExportSettings.xml": _doc(export),
        "SystemData.xml": _doc(system),
        "Manifest.xml": _doc(objs),
        "UserGroupMap.xml": _doc(users),
        "RootObjectMap.xml": _doc(roots),
        "Requirements.xml": _doc(_el(None, "Requirements", NS["requirements"])),
        "LookupListMap.xml": _doc(_el(None, "LookupLists", NS["lookup"])),
    }

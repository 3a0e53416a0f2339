"""Generated packages against the content package structure Microsoft documents, checked here from the
documentation (not from trustfold's or the sandbox's code); the sandbox must refuse what this check refuses.

Sources: SharePoint/sp-dev-docs docs/apis/migration-manifest.md (required/optional files, UserGroupMap Login
as UPN, one entry per user), migration-api-overview.md (constrained DeploymentManifest / ExportSettings /
RootObjectMap schemas: SPObject ObjectType enumeration, SPList required attributes, SourceType values).
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from migrations.files.bulk import crypto
from migrations.files.bulk import manifest as mf
from sandbox.migration_package import PackageRefused, parse

REQUIRED = {"ExportSettings.xml", "SystemData.xml", "Manifest.xml", "UserGroupMap.xml", "RootObjectMap.xml"}
ROOTS = {
    "ExportSettings.xml": "{urn:deployment-exportsettings-schema}ExportSettings",
    "SystemData.xml": "{urn:deployment-systemdata-schema}SystemData",
    "Manifest.xml": "{urn:deployment-manifest-schema}SPObjects",
    "UserGroupMap.xml": "{urn:deployment-usergroupmap-schema}UserGroupMap",
    "RootObjectMap.xml": "{urn:deployment-rootobjectmap-schema}RootObjects",
    "Requirements.xml": "{urn:deployment-requirements-schema}Requirements",
    "LookupListMap.xml": "{urn:deployment-lookuplistmap-schema}LookupLists",
}
M = "{urn:deployment-manifest-schema}"
TYPES = {
    "SPDocumentLibrary": "DocumentLibrary",
    "SPFolder": "Folder",
    "SPFile": "File",
    "SPListItem": "ListItem",
}
SOURCE_TYPES = {
    "AmazonS3",
    "AzureStorage",
    "Box",
    "Dropbox",
    "Egnyte",
    "FileShare",
    "GoogleCloudStorage",
    "GoogleDrive",
    "MicrosoftStream",
    "OneDrive",
    "SharePointOnline",
    "SharePointOnPremServer",
    "Other",
}


def g(n: int) -> str:
    return str(uuid.UUID(int=n + 1000))


def sample() -> tuple[dict[str, bytes], set[str]]:
    lib = mf.Library(
        "https://nllt.sharepoint.com/sites/hs", g(1), "/sites/hs", g(2), "Documents", "Shared Documents", g(3)
    )
    folders = [mf.Folder(g(10), "Admin", g(3)), mf.Folder(g(11), "Admin/Reports", g(10))]
    files = [
        mf.File(
            g(20),
            g(30),
            "Admin/a & b.docx",
            g(10),
            10,
            "00000001.dat",
            "2024-01-01T08:00:00Z",
            "2024-02-01T08:00:00Z",
            1,
            2,
        ),
        mf.File(
            g(21),
            g(31),
            "Admin/Reports/r.xlsx",
            g(11),
            0,
            "00000002.dat",
            "2024-01-01T08:00:00Z",
            "2024-02-01T08:00:00Z",
            2,
            2,
        ),
        mf.File(g(22), g(32), "top.txt", g(3), 5, "00000003.dat", "", "", None, None),
    ]
    users = [mf.User(1, "Jo Bloggs", "jo.bloggs@nllt.org.uk"), mf.User(2, "Al Smith", "al.smith@nllt.org.uk")]
    return mf.build(mf.Package(lib, folders, files, users)), {f.blob for f in files}


def documented_problems(files: dict[str, bytes], blobs: set[str]) -> list[str]:
    """What the documentation requires, checked from the XML alone."""
    out = [f"missing {n}" for n in sorted(REQUIRED - set(files))]
    roots: dict[str, ET.Element] = {}
    for name, data in files.items():
        try:
            roots[name] = ET.fromstring(data)
        except ET.ParseError:
            out.append(f"{name} malformed")
            continue
        if name in ROOTS and roots[name].tag != ROOTS[name]:
            out.append(f"{name} root {roots[name].tag}")
    if out:
        return out
    ex = roots["ExportSettings.xml"]
    if not ex.get("SiteUrl"):
        out.append("SiteUrl")
    if ex.get("SourceType") not in SOURCE_TYPES:
        out.append("SourceType")
    sd = "{urn:deployment-systemdata-schema}"
    named = [m.get("Name") for m in roots["SystemData.xml"].iter(f"{sd}ManifestFile")]
    if not named or any(n not in files for n in named):
        out.append("ManifestFile")
    ug = "{urn:deployment-usergroupmap-schema}"
    users = [u for u in roots["UserGroupMap.xml"].iter(f"{ug}User")]
    ids = {u.get("Id") for u in users}
    logins = [u.get("Login", "") for u in users]
    if len(set(logins)) != len(logins) or any("@" not in x.rpartition("|")[2] for x in logins):
        out.append("user logins")
    objs = list(roots["Manifest.xml"].iter(f"{M}SPObject"))
    seen: set[str] = set()
    by_type: dict[str, list[ET.Element]] = {}
    for o in objs:
        t, oid = o.get("ObjectType", ""), o.get("Id", "")
        try:
            uuid.UUID(oid)
        except ValueError:
            out.append(f"id {oid!r}")
        if oid in seen:
            out.append(f"duplicate {oid}")
        seen.add(oid)
        child = o.find(f"{M}{TYPES.get(t, '?')}")
        if child is None:
            out.append(f"{t} element")
            continue
        by_type.setdefault(t, []).append(child)
    libs = by_type.get("SPDocumentLibrary", [])
    if len(libs) != 1:
        return [*out, "one library"]
    lib = libs[0]
    out += [
        f"library {a}"
        for a in ("Id", "Title", "RootFolderUrl", "ParentWebId", "BaseTemplate")
        if not lib.get(a)
    ]
    folders = {f.get("Id") for f in by_type.get("SPFolder", [])} | {lib.get("RootFolderId")}
    for f in by_type.get("SPFolder", []):
        if f.get("ParentFolderId") not in folders:
            out.append("folder parent")
    file_urls = set()
    for f in by_type.get("SPFile", []):
        if f.get("ParentId") not in folders or f.get("ListId") != lib.get("Id"):
            out.append("file parent")
        if f.get("FileValue") not in blobs:
            out.append("file value")
        if f.get("ParentWebId") != lib.get("ParentWebId"):
            out.append("file web")
        out += [f"file {a}" for a in ("Author", "ModifiedBy") if f.get(a) and f.get(a) not in ids]
        file_urls.add(f.get("Url"))
    for li in by_type.get("SPListItem", []):
        if li.get("FileUrl") not in file_urls or li.get("ParentListId") != lib.get("Id"):
            out.append("list item")
    rom = "{urn:deployment-rootobjectmap-schema}"
    for r in roots["RootObjectMap.xml"].iter(f"{rom}RootObject"):
        if r.get("Type") == "List" and (
            r.get("Id") != lib.get("Id") or r.get("ParentId") != lib.get("ParentWebId")
        ):
            out.append("root object")
    return out


def test_generated_package_has_the_documented_structure() -> None:
    files, blobs = sample()
    assert set(files) == set(ROOTS)
    assert documented_problems(files, blobs) == []
    pkg = parse(files, blobs)  # the sandbox accepts it too
    assert len(pkg.files) == 3 and pkg.warnings == []
    assert {f.url for f in pkg.files} >= {"Shared Documents/Admin/a & b.docx", "Shared Documents/top.txt"}


def _edit(name: str, fn: Callable[[str], str]) -> Callable[[dict[str, bytes], set[str]], None]:
    def apply(files: dict[str, bytes], blobs: set[str]) -> None:
        files[name] = fn(files[name].decode()).encode()

    return apply


def _drop(name: str) -> Callable[[dict[str, bytes], set[str]], None]:
    return lambda files, blobs: files.pop(name) and None


MUTATIONS = {
    "no ExportSettings": _drop("ExportSettings.xml"),
    "no SystemData": _drop("SystemData.xml"),
    "no Manifest": _drop("Manifest.xml"),
    "no UserGroupMap": _drop("UserGroupMap.xml"),
    "no RootObjectMap": _drop("RootObjectMap.xml"),
    "malformed manifest": _edit("Manifest.xml", lambda s: s[: len(s) // 2]),
    "wrong namespace": _edit("Manifest.xml", lambda s: s.replace("urn:deployment-manifest-schema", "urn:x")),
    "no SiteUrl": _edit("ExportSettings.xml", lambda s: s.replace('SiteUrl="', 'Site="')),
    "bad SourceType": _edit("ExportSettings.xml", lambda s: s.replace("SharePointOnline", "Tape")),
    "folder parent unresolved": _edit(
        "Manifest.xml", lambda s: s.replace(f'ParentFolderId="{g(10)}"', f'ParentFolderId="{g(99)}"')
    ),
    "file parent unresolved": _edit(
        "Manifest.xml", lambda s: s.replace(f'ParentId="{g(11)}"', f'ParentId="{g(98)}"')
    ),
    "duplicate id": _edit("Manifest.xml", lambda s: s.replace(g(21), g(20))),
    "id not a guid": _edit("Manifest.xml", lambda s: s.replace(g(22), "file-3")),
    "unknown author": _edit("Manifest.xml", lambda s: s.replace('Author="1"', 'Author="7"')),
    "missing blob": lambda files, blobs: blobs.discard("00000002.dat"),
    "library lacks Title": _edit("Manifest.xml", lambda s: s.replace('Title="Documents"', "")),
    "manifest listed but absent": _edit(
        "SystemData.xml", lambda s: s.replace('Name="Manifest.xml"', 'Name="Manifest2.xml"')
    ),
    "user listed twice": _edit("UserGroupMap.xml", lambda s: s.replace("al.smith@", "jo.bloggs@")),
    "root object not the library": _edit(
        "RootObjectMap.xml", lambda s: s.replace(f'Id="{g(2)}"', f'Id="{g(97)}"')
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_the_sandbox_refuses_what_the_documentation_refuses(mutation: str) -> None:
    files, blobs = sample()
    MUTATIONS[mutation](files, blobs)
    assert documented_problems(files, blobs), mutation  # the documented structure is broken...
    with pytest.raises(PackageRefused):  # ...and the sandbox refuses it
        parse(files, blobs)


def test_optional_files_missing_only_warn() -> None:
    files, blobs = sample()
    del files["Requirements.xml"], files["LookupListMap.xml"]
    assert len(parse(files, blobs).warnings) == 2


def test_names_xml_cannot_carry_are_refused_before_packaging() -> None:
    lib = mf.Library("https://h/sites/x", g(1), "/sites/x", g(2), "D", "D", g(3))
    bad = mf.File(g(5), g(6), "a\x01b.txt", g(3), 1, "1.dat", "", "")
    with pytest.raises(mf.PackagingError):
        mf.build(mf.Package(lib, [], [bad], []))


def test_aes_cbc_streams_with_a_fresh_iv_per_file() -> None:
    key = crypto.new_key()
    data = bytes(range(256)) * 1000 + b"tail"
    iv1, iv2 = crypto.new_iv(), crypto.new_iv()
    assert iv1 != iv2
    chunks = [data[i : i + 4099] for i in range(0, len(data), 4099)]
    enc = b"".join(crypto.encrypt_chunks(chunks, key, iv1))
    assert len(enc) == crypto.encrypted_size(len(data)) and data[:64] not in enc
    assert b"".join(crypto.decrypt_chunks([enc[:100], enc[100:]], key, iv1)) == data
    assert crypto.encrypt_bytes(data, key, iv2) != enc
    fixed = crypto.encrypt_bytes(data, bytes(range(32)), bytes(16))  # fixed key and IV: a fixed outcome
    with pytest.raises(ValueError):
        crypto.decrypt_bytes(fixed, bytes(32), bytes(16))
    msg = crypto.encrypt_message({"Event": "JobEnd", "FilesCreated": "3"}, "job-1", key)
    assert "JobEnd" not in msg
    assert crypto.decrypt_message(msg, key)["FilesCreated"] == "3"

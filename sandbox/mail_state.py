"""Exchange Online mailboxes of one tenant, as Microsoft Graph's mailbox import and export APIs show them.

Pages (learn.microsoft.com/graph/...): api/resources/mailbox-import-export-api-overview,
api/usersettings-list-exchange, api/resources/mailboxfolder, api/resources/mailboxitem,
api/mailbox-list-folders, api/mailboxfolder-delta, api/mailboxitem-delta, api/mailbox-exportitems,
api/mailbox-createimportsession, import-exchange-mailbox-item.
No Starlette here: handlers live in sandbox/mail_api.py.

A mailbox is kept as plain JSON (saved with the tenant). Each folder and item carries `_seq`, the mailbox's
change sequence at its last change; deletions leave tombstones with their sequence, so folder and item delta
rounds are "everything whose sequence lies in (since, upto]", bounded in memory by the data.

The export stream is opaque to clients but checkable here: base64 of
`MAGIC + canonical JSON of the item + "\n" + attachment payload + "\n" + sha256 hex of all that precedes`.
Import verifies the hash, so a client that alters or truncates a stream is refused, as Exchange refuses a
damaged FastTransfer stream.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sandbox.errors import GraphError, now_iso

MAGIC = b"TFFTS/1\n"
# Outlook limits (learn.microsoft.com/graph/throttling-limits, "Outlook service limits") and Exchange Online
# limits (learn.microsoft.com/office365/servicedescriptions/exchange-online-service-description/
# exchange-online-limits): 150 MB message size, about a million items per folder.
MAX_MESSAGE_BYTES = 150 * 1024 * 1024
MAX_ITEMS_PER_FOLDER = 1_000_000
MAX_EXPORT_IDS = 20  # mailbox-exportitems: "You can export up to 20 items in a single export request."
BLOB_CHUNK = 1 << 20

# Folders Outlook creates in every mailbox: (wellKnownName, displayName, folder class). mailboxfolder:
# wellKnownName is "the locale-independent well-known name of the folder for folders created by Outlook".
WELL_KNOWN: tuple[tuple[str, str, str], ...] = (
    ("inbox", "Inbox", "IPF.Note"),
    ("sentitems", "Sent Items", "IPF.Note"),
    ("drafts", "Drafts", "IPF.Note"),
    ("deleteditems", "Deleted Items", "IPF.Note"),
    ("junkemail", "Junk Email", "IPF.Note"),
    ("outbox", "Outbox", "IPF.Note"),
    ("archive", "Archive", "IPF.Note"),
    ("calendar", "Calendar", "IPF.Appointment"),
    ("contacts", "Contacts", "IPF.Contact"),
    ("tasks", "Tasks", "IPF.Task"),
    ("notes", "Notes", "IPF.StickyNote"),
    ("journal", "Journal", "IPF.Journal"),
)
# The message class an item of each folder class carries (mailboxitem.type: "The message class ID").
ITEM_CLASS = {
    "IPF.Note": "IPM.Note",
    "IPF.Appointment": "IPM.Appointment",
    "IPF.Contact": "IPM.Contact",
    "IPF.Task": "IPM.Task",
    "IPF.StickyNote": "IPM.StickyNote",
    "IPF.Journal": "IPM.Activity",
}
FOLDER_CLASSES = tuple(ITEM_CLASS)
KINDS = ("primary", "shared", "archive")


# ---- errors, worded as Exchange words them through Graph ---------------------------------------------------
def mailbox_not_enabled() -> GraphError:
    """What Graph answers for a user without an Exchange Online mailbox (yet): 404 MailboxNotEnabledForRESTAPI
    (learn.microsoft.com/graph/api/resources/mail-api-overview, "the mailbox is inactive, soft-deleted or
    hosted on-premise")."""
    return GraphError(
        404,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
    )


def mailbox_not_found(mbx_id: str) -> GraphError:
    return GraphError(404, "ErrorMailboxNotFound", f"The mailbox '{mbx_id[:80]}' was not found.")


def item_not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def folder_not_found() -> GraphError:
    return GraphError(404, "ErrorFolderNotFound", "The specified folder could not be found in the store.")


def invalid_request(message: str) -> GraphError:
    return GraphError(400, "ErrorInvalidRequest", message)


# ---- ids ---------------------------------------------------------------------------------------------------
def _b64id(*parts: object, length: int = 24) -> str:
    """An Exchange-looking id: base64 with '+' and '=' (clients must encode them), never '/' (a path
    separator Starlette cannot route through)."""
    raw = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()[:length]
    return base64.b64encode(b"\x00\x00" + raw).decode().replace("/", "-")


def mailbox_id(tenant_id: str, owner: str, kind: str) -> str:
    """MBX:{8 hex}@{8 hex}, the shape of the pages' examples (MBX:e0643f21@a7809c93)."""
    h = hashlib.sha256(f"{tenant_id}:{owner}:{kind}".encode()).hexdigest()
    return f"MBX:{h[:8]}@{tenant_id.replace('-', '')[:8]}"


def change_key(item_id: str, seq: int) -> str:
    return (
        "CQAAABYAAAA" + base64.b64encode(hashlib.sha256(f"{item_id}:{seq}".encode()).digest()[:15]).decode()
    )


# ---- the opaque stream -------------------------------------------------------------------------------------
def _canonical(props: dict[str, Any]) -> bytes:
    return json.dumps(props, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def blob_chunks(blob: dict[str, Any]) -> Iterator[bytes]:
    """A large attachment's bytes, made from its seed a chunk at a time: never held whole."""
    size, seed = int(blob["size"]), str(blob["seed"])
    done, n = 0, 0
    while done < size:
        block = hashlib.sha256(f"{seed}:{n}".encode()).digest() * (BLOB_CHUNK // 32)
        part = block[: min(BLOB_CHUNK, size - done)]
        done += len(part)
        n += 1
        yield part


def stream_parts(props: dict[str, Any]) -> Iterator[bytes]:
    """The raw export stream of an item (before base64), in pieces; the last piece is the hash line."""
    digest = hashlib.sha256()
    head = MAGIC + _canonical(props) + b"\n"
    digest.update(head)
    yield head
    blob = props.get("blob")
    if blob:
        for part in blob_chunks(blob):
            digest.update(part)
            yield part
    digest.update(b"\n")
    yield b"\n"
    yield digest.hexdigest().encode()


def stream_size(props: dict[str, Any]) -> int:
    blob = props.get("blob")
    return len(MAGIC) + len(_canonical(props)) + 2 + 64 + (int(blob["size"]) if blob else 0)


def encode_stream(props: dict[str, Any]) -> str:
    """Base64 of the whole stream (small items; large ones are streamed by sandbox/mail_api.py)."""
    return base64.b64encode(b"".join(stream_parts(props))).decode()


def corrupt_data() -> GraphError:
    return GraphError(400, "ErrorCorruptData", "The data in the import stream is corrupt or truncated.")


class StreamReader:
    """Checks a stream fed in pieces of raw (decoded) bytes; keeps the head, hashes and counts the rest."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._buf = b""
        self._head: bytes | None = None
        self._tail = b""  # the last bytes seen, which hold "\n" + hash at the end
        self.payload = 0

    def feed(self, data: bytes) -> None:
        if self._head is None:
            self._buf += data
            if len(self._buf) > 16 * 1024 * 1024 and b"\n" not in self._buf[len(MAGIC) :]:
                raise corrupt_data()
            if not self._buf.startswith(MAGIC[: len(self._buf)]):
                raise corrupt_data()
            end = self._buf.find(b"\n", len(MAGIC))
            if end < 0:
                return
            self._head = self._buf[: end + 1]
            self._digest.update(self._head)
            data, self._buf = self._buf[end + 1 :], b""
        joined = self._tail + data
        # Hold back the last 65 bytes: they may be "\n" + the hash, which is not hashed.
        keep = joined[-65:]
        body = joined[: len(joined) - len(keep)]
        self._digest.update(body)
        self.payload += len(body)
        self._tail = keep

    def finish(self) -> dict[str, Any]:
        if self._head is None or len(self._tail) != 65 or not self._tail.startswith(b"\n"):
            raise corrupt_data()
        self._digest.update(b"\n")
        if self._digest.hexdigest().encode() != self._tail[1:]:
            raise corrupt_data()
        try:
            props = json.loads(self._head[len(MAGIC) :])
        except ValueError:
            raise corrupt_data() from None
        if not isinstance(props, dict) or props.get("class") not in ITEM_CLASS.values():
            raise corrupt_data()
        blob = props.get("blob")
        if (int(blob["size"]) if isinstance(blob, dict) else 0) != self.payload:
            raise corrupt_data()
        return props


def decode_stream(data: Any) -> dict[str, Any]:
    """The item a base64 `Data` string carries; ErrorCorruptData unless it is a whole, unaltered stream."""
    if not isinstance(data, str) or not data:
        raise invalid_request("The Data field is required and must be a base64 string.")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise corrupt_data() from None
    reader = StreamReader()
    reader.feed(raw)
    return reader.finish()


# ---- the store ---------------------------------------------------------------------------------------------
def _parse_time(text: Any) -> float:
    try:
        return datetime.strptime(str(text)[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return time.time()


class MailStore:
    """Every mailbox of one tenant, the users' links to them and the open import sessions."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.mailboxes: dict[str, dict[str, Any]] = {}
        self.by_user: dict[str, dict[str, str]] = {}  # user id -> kind -> mailbox id
        self.sessions: dict[str, dict[str, Any]] = {}  # import token -> {mailbox, expires}
        # From the settings (not saved): seconds between an Exchange licence and its mailbox existing.
        self.provision_delay_s = 0.0

    # persistence --------------------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"mailboxes": self.mailboxes, "by_user": self.by_user, "sessions": self.sessions}

    @classmethod
    def from_state(cls, tenant_id: str, state: dict[str, Any]) -> MailStore:
        store = cls(tenant_id)
        store.mailboxes = dict(state.get("mailboxes") or {})
        store.by_user = dict(state.get("by_user") or {})
        store.sessions = dict(state.get("sessions") or {})
        return store

    def snapshot(self) -> dict[str, Any]:
        """Stable JSON of every mailbox: folders by path and items by folder path, without volatile ids."""
        out: dict[str, Any] = {}
        for mbx in sorted(self.mailboxes.values(), key=lambda m: m["id"]):
            paths = {fid: folder_path(mbx, fid) for fid in mbx["folders"]}
            items: dict[str, list[dict[str, Any]]] = {}
            for item in mbx["items"].values():
                items.setdefault(paths[item["folderId"]], []).append(item["props"])
            out[mbx["id"]] = {
                "kind": mbx["kind"],
                "owner": mbx["owner"],
                "folders": sorted(p for fid, p in paths.items() if fid != mbx["rootId"]),
                "items": {p: sorted(v, key=_canonical) for p, v in sorted(items.items())},
            }
        return out

    # mailboxes ----------------------------------------------------------------------------------------------
    def create_mailbox(
        self,
        owner: str,
        kind: str,
        display_name: str,
        address: str,
        ready_at: float = 0.0,
        mbx_id: str | None = None,
    ) -> dict[str, Any]:
        """A mailbox with its root and well-known folders; `owner` is the user object it belongs to."""
        mid = mbx_id or mailbox_id(self.tenant_id, owner, kind)
        if mid in self.mailboxes:
            return self.mailboxes[mid]
        root = _b64id(mid, "root")
        mbx: dict[str, Any] = {
            "id": mid,
            "kind": kind,
            "owner": owner,
            "displayName": display_name,
            "address": address,
            "readyAt": ready_at,
            "seq": 0,
            "rootId": root,
            "folders": {},
            "items": {},
            "goneFolders": {},
            "goneItems": {},
        }
        mbx["folders"][root] = {
            "id": root,
            "displayName": "Top of Information Store",
            "parentFolderId": None,
            "type": "IPF.Note",
            "wellKnownName": "msgfolderroot",
            "_seq": 0,
        }
        for name, display, cls in WELL_KNOWN:
            fid = _b64id(mid, "wk", name)
            mbx["folders"][fid] = {
                "id": fid,
                "displayName": display,
                "parentFolderId": root,
                "type": cls,
                "wellKnownName": name,
                "_seq": 0,
            }
        self.mailboxes[mid] = mbx
        self.by_user.setdefault(owner, {})[kind] = mid
        return mbx

    def ensure_licensed(self, tenant: Any, user: dict[str, Any]) -> None:
        """Exchange creates a user's mailbox in the background once an Exchange Online plan is assigned
        (learn.microsoft.com/exchange/recipients-in-exchange-online/create-user-mailboxes): it exists
        `provision_delay_s` after the licence, counted from the licence's own time."""
        if user["id"] in self.by_user and "primary" in self.by_user[user["id"]]:
            return
        since = exchange_licensed_since(tenant, user)
        if since is None:
            return
        mbx = self.create_mailbox(
            user["id"],
            "primary",
            str(user.get("displayName") or ""),
            str(user.get("mail") or user.get("userPrincipalName") or ""),
        )
        # Ready `provision_delay_s` after the licence, whatever the delay is when asked (settable in tests).
        mbx["licensedAt"] = since

    def ready(self, mbx: dict[str, Any]) -> bool:
        if "licensedAt" in mbx:
            return float(mbx["licensedAt"]) + self.provision_delay_s <= time.time()
        return float(mbx["readyAt"]) <= time.time()

    def user_mailboxes(self, tenant: Any, user: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The user's ready mailboxes by kind; MailboxNotEnabledForRESTAPI if it has none yet."""
        self.ensure_licensed(tenant, user)
        out = {
            kind: self.mailboxes[mid]
            for kind, mid in self.by_user.get(user["id"], {}).items()
            if mid in self.mailboxes
            and self.ready(self.mailboxes[mid])
            and self.licensed(tenant, self.mailboxes[mid])
        }
        if "primary" not in out and "shared" not in out:
            raise mailbox_not_enabled()
        return out

    def licensed(self, tenant: Any, mbx: dict[str, Any]) -> bool:
        """A licence-made mailbox whose owner lost the Exchange plan is disabled (Exchange keeps it 30 days,
        unreachable: learn.microsoft.com/microsoft-365/admin/manage/remove-licenses-from-users)."""
        if "licensedAt" not in mbx or tenant is None:
            return True
        owner = tenant.users.get(mbx["owner"])
        return owner is not None and exchange_licensed_since(tenant, owner) is not None

    def mailbox(self, mbx_id: str, tenant: Any = None) -> dict[str, Any]:
        """A mailbox the import and export APIs serve: primary or shared. The v1.0 overview names only
        "users' primary mailboxes and shared mailboxes", so an in-place archive is refused (the stricter
        reading: the beta overview listed archives, v1.0 no longer does)."""
        mbx = self.mailboxes.get(mbx_id)
        if mbx is None or not self.ready(mbx):
            raise mailbox_not_found(mbx_id)
        if not self.licensed(tenant, mbx):
            raise mailbox_not_enabled()
        if mbx["kind"] == "archive":
            raise GraphError(
                400,
                "ErrorInvalidMailboxType",
                "The mailbox import and export APIs support primary and shared mailboxes only; "
                "in-place archive mailboxes are not supported.",
            )
        return mbx


def exchange_licensed_since(tenant: Any, user: dict[str, Any]) -> float | None:
    """When the user got an active licence with an Exchange Online plan enabled, or None."""
    skus = {s["skuId"]: s for s in tenant.skus}
    for lic in user.get("assignedLicenses") or ():
        sku = skus.get(lic.get("skuId"))
        if sku is None:
            continue
        disabled = set(lic.get("disabledPlans") or ())
        if any(
            p["servicePlanName"].startswith("EXCHANGE_S_") and p["servicePlanId"] not in disabled
            for p in sku["servicePlans"]
        ):
            stamp = next(
                (
                    s.get("lastUpdatedDateTime")
                    for s in user.get("licenseAssignmentStates") or ()
                    if s.get("skuId") == lic.get("skuId") and s.get("state") == "Active"
                ),
                None,
            )
            stamp = stamp or user.get("createdDateTime")
            return _parse_time(stamp) if stamp else time.time()
    return None


# ---- folders -----------------------------------------------------------------------------------------------
def bump(mbx: dict[str, Any]) -> int:
    mbx["seq"] += 1
    return int(mbx["seq"])


def folder(mbx: dict[str, Any], key: str, names: bool = True) -> dict[str, Any]:
    """A folder by id, or by well-known name where `names` (mailFolders documents well-known names; the
    mailboxFolder pages do not, so /admin/exchange paths take ids only: the stricter reading)."""
    f = mbx["folders"].get(key)
    if f is None and names:
        f = next((x for x in mbx["folders"].values() if x.get("wellKnownName") == key.lower()), None)
    if f is None:
        raise folder_not_found()
    return f


def folder_path(mbx: dict[str, Any], fid: str) -> str:
    parts: list[str] = []
    f = mbx["folders"].get(fid)
    while f is not None and f["id"] != mbx["rootId"]:
        parts.append(f["displayName"])
        f = mbx["folders"].get(f["parentFolderId"])
    return "/".join(reversed(parts))


def folder_counts(mbx: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    children: dict[str, int] = {}
    items: dict[str, int] = {}
    for f in mbx["folders"].values():
        if f["parentFolderId"]:
            children[f["parentFolderId"]] = children.get(f["parentFolderId"], 0) + 1
        items[f["id"]] = int(f.get("_n", 0))
    return children, items


def create_folder(mbx: dict[str, Any], parent_id: str, body: Any) -> dict[str, Any]:
    """POST .../folders or .../folders/{id}/childFolders (mailbox-post-folders): displayName required, type
    one of the folder classes (default IPF.Note); a sibling of the same name is a conflict."""
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    name = body.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise invalid_request("The displayName property is required.")
    if len(name) > 255:
        raise invalid_request("The displayName property must be at most 255 characters.")
    cls = body.get("type", "IPF.Note")
    if cls not in FOLDER_CLASSES:
        raise invalid_request(f"The folder class '{str(cls)[:40]}' is not supported.")
    parent = folder(mbx, parent_id)
    for f in mbx["folders"].values():
        if f["parentFolderId"] == parent["id"] and f["displayName"].lower() == name.lower():
            raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
    seq = bump(mbx)
    fid = _b64id(mbx["id"], "folder", seq)
    new = {
        "id": fid,
        "displayName": name,
        "parentFolderId": parent["id"],
        "type": cls,
        "wellKnownName": None,
        "_seq": seq,
    }
    mbx["folders"][fid] = new
    return new


def delete_folder(mbx: dict[str, Any], fid: str) -> None:
    """DELETE .../folders/{id}: a user folder and everything in it; distinguished folders cannot go."""
    f = folder(mbx, fid)
    if f.get("wellKnownName"):
        raise GraphError(400, "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted.")
    doomed = {f["id"]}
    grew = True
    while grew:
        more = {x["id"] for x in mbx["folders"].values() if x["parentFolderId"] in doomed} - doomed
        grew = bool(more)
        doomed |= more
    for iid in [i for i, it in mbx["items"].items() if it["folderId"] in doomed]:
        remove_item(mbx, iid)
    for x in doomed:
        del mbx["folders"][x]
        mbx["goneFolders"][x] = bump(mbx)


# ---- items -------------------------------------------------------------------------------------------------
def item_out(item: dict[str, Any]) -> dict[str, Any]:
    """A mailboxItem as Graph shows it (mailboxitem resource)."""
    return {
        "@odata.type": "#microsoft.graph.mailboxItem",
        "@odata.etag": f'W/"{item["changeKey"]}"',
        "id": item["id"],
        "createdDateTime": item["createdDateTime"],
        "lastModifiedDateTime": item["lastModifiedDateTime"],
        "changeKey": item["changeKey"],
        "categories": list(item["props"].get("categories") or []),
        "type": item["type"],
        "size": item["size"],
    }


def folder_out(mbx: dict[str, Any], f: dict[str, Any], counts: tuple[dict[str, int], dict[str, int]]) -> dict:
    return {
        "@odata.type": "#microsoft.graph.mailboxFolder",
        "id": f["id"],
        "displayName": f["displayName"],
        "parentFolderId": f["parentFolderId"],
        "parentMailboxUrl": f"https://graph.microsoft.com/v1.0/admin/exchange/mailboxes/{mbx['id']}",
        "childFolderCount": counts[0].get(f["id"], 0),
        "totalItemCount": counts[1].get(f["id"], 0),
        "wellKnownName": f.get("wellKnownName"),
        "type": f["type"],
    }


def add_item(mbx: dict[str, Any], fid: str, props: dict[str, Any], created: str | None = None) -> dict:
    """Put an item (its props carry "class") in a folder: new id, change key and sequence."""
    f = folder(mbx, fid)
    cls = props.get("class")
    if cls not in ITEM_CLASS.values():
        raise invalid_request("The item class is not supported.")
    if int(f.get("_n", 0)) >= MAX_ITEMS_PER_FOLDER:
        raise GraphError(
            507, "ErrorFolderFull", "The folder has reached its maximum number of items (about 1,000,000)."
        )
    size = stream_size(props)
    if size > MAX_MESSAGE_BYTES:
        raise GraphError(
            413, "ErrorMessageSizeExceeded", "The message exceeds the maximum supported size of 150 MB."
        )
    seq = bump(mbx)
    iid = _b64id(mbx["id"], "item", seq, length=33)
    stamp = now_iso()
    item = {
        "id": iid,
        "folderId": f["id"],
        "type": cls,
        "changeKey": change_key(iid, seq),
        "createdDateTime": created or stamp,
        "lastModifiedDateTime": stamp if created is None else created,
        "size": size,
        "_seq": seq,
        "props": props,
    }
    mbx["items"][iid] = item
    f["_n"] = int(f.get("_n", 0)) + 1  # kept, not counted: folders of a million items
    f["_seq"] = seq  # the folder's totalItemCount changed: folder delta reports it
    return item


def replace_item(mbx: dict[str, Any], item: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    if props.get("class") != item["type"]:
        raise invalid_request("An update cannot change the item's class.")
    size = stream_size(props)
    if size > MAX_MESSAGE_BYTES:
        raise GraphError(
            413, "ErrorMessageSizeExceeded", "The message exceeds the maximum supported size of 150 MB."
        )
    seq = bump(mbx)
    item.update(props=props, size=size, _seq=seq, changeKey=change_key(item["id"], seq))
    item["lastModifiedDateTime"] = now_iso()
    return item


def remove_item(mbx: dict[str, Any], iid: str) -> None:
    item = mbx["items"].pop(iid, None)
    if item is None:
        raise item_not_found()
    seq = bump(mbx)
    mbx["goneItems"][iid] = [item["folderId"], seq]
    f = mbx["folders"].get(item["folderId"])
    if f is not None:
        f["_n"] = max(0, int(f.get("_n", 0)) - 1)
        f["_seq"] = seq


def export_items(mbx: dict[str, Any], ids: Any) -> list[dict[str, Any]]:
    """mailbox-exportitems: 1..20 ids of this mailbox; each answer carries itemId, changeKey and data, or an
    error (exportItemResponse.error, a mailTipsError) for an id not in the mailbox."""
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise invalid_request("The itemIds parameter is required and must be a collection of strings.")
    if len(ids) > MAX_EXPORT_IDS:
        raise invalid_request(f"The itemIds collection can contain at most {MAX_EXPORT_IDS} identifiers.")
    out: list[dict[str, Any]] = []
    for iid in ids:
        item = mbx["items"].get(iid)
        if item is None:
            out.append(
                {
                    "itemId": iid,
                    "error": {
                        "code": "ErrorItemNotFound",
                        "message": "The specified object was not found in the store.",
                    },
                }
            )
        else:
            out.append({"itemId": iid, "changeKey": item["changeKey"], "item": item})
    return out


def import_item(mbx: dict[str, Any], body: Any, props: dict[str, Any]) -> dict[str, Any]:
    """POST to an importUrl (import-exchange-mailbox-item): FolderId, Mode create|update, Data; create refuses
    ItemId/ChangeKey; update needs both and they must match an item in that folder."""
    fid = body.get("FolderId")
    mode = body.get("Mode")
    if not isinstance(fid, str) or not fid:
        raise invalid_request("The FolderId field is required.")
    f = mbx["folders"].get(fid)
    if f is None:
        raise folder_not_found()
    if mode == "create":
        if "ItemId" in body or "ChangeKey" in body:
            raise invalid_request("ItemId and ChangeKey must not be specified in create mode.")
        if ITEM_CLASS.get(f["type"]) != props["class"] and f["id"] != mbx["rootId"]:
            # Exchange keeps folder classes apart: a contact cannot land in a mail folder.
            raise invalid_request(
                f"An item of class {props['class']} cannot be imported into a {f['type']} folder."
            )
        return add_item(mbx, f["id"], props)
    if mode == "update":
        iid, key = body.get("ItemId"), body.get("ChangeKey")
        if not isinstance(iid, str) or not isinstance(key, str) or not iid or not key:
            raise invalid_request("ItemId and ChangeKey are required in update mode.")
        item = mbx["items"].get(iid)
        if item is None or item["folderId"] != f["id"]:
            raise item_not_found()
        if item["changeKey"] != key:
            raise GraphError(
                409,
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the change key passed in the "
                "request does not match the current change key for the item.",
            )
        return replace_item(mbx, item, props)
    raise invalid_request("The Mode field is required and must be 'create' or 'update'.")


# ---- delta -------------------------------------------------------------------------------------------------
def changes_since(
    mbx: dict[str, Any], since: int, upto: int, folder_id: str | None
) -> list[tuple[int, str, dict[str, Any] | None]]:
    """(seq, id, object or None for removed) of folders (folder_id None) or of one folder's items, in
    sequence order, with since < seq <= upto."""
    out: list[tuple[int, str, dict[str, Any] | None]] = []
    if folder_id is None:
        for f in mbx["folders"].values():
            if since < f["_seq"] <= upto and f["id"] != mbx["rootId"]:
                out.append((f["_seq"], f["id"], f))
        for fid, seq in mbx["goneFolders"].items():
            if since < seq <= upto:
                out.append((seq, fid, None))
    else:
        for it in mbx["items"].values():
            if it["folderId"] == folder_id and since < it["_seq"] <= upto:
                out.append((it["_seq"], it["id"], it))
        for iid, (fid, seq) in mbx["goneItems"].items():
            if fid == folder_id and since < seq <= upto:
                out.append((seq, iid, None))
    out.sort(key=lambda x: (x[0], x[1]))  # ids break ties: generated objects share sequence 0
    return out

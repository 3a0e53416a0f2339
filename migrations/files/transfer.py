"""Streaming one file from a source drive into a target drive: bytes never cross the tenants' Graph APIs.

The source's pre-authenticated download URL is read with Range (resumed from the last byte on a dropped
connection) while the previous chunk is uploaded to the target's upload session, so memory holds at most three
chunks whatever the file size, and download and upload overlap. Chunks are 5 MiB (a multiple of 320 KiB, as
upload sessions require) and carry no Authorization header. quickXorHash is computed while streaming and the
target's hash and size are checked against the source's before a copy counts as done; a mismatched result is
deleted, never left looking complete. A killed run resumes the same upload session from nextExpectedRanges.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from quickxorhash import quickxorhash

from migrations.core import killpoints
from migrations.graph.client import GraphError, MaybeApplied, TenantConnection, Transient, parse_retry_after
from migrations.graph.sharepoint_window import SharePointBudget
from migrations.safety.private import tighten, write_private_text

CHUNK = 16 * 320 * 1024  # 5 MiB
PIECE = 256 * 1024
ATTEMPTS = 8
CONFLICT = "@microsoft.graph.conflictBehavior"


class CopyError(Exception):
    """This file could not be copied; the message says why (the step fails, the run goes on)."""


class CopyDiscarded(CopyError):
    """The copy arrived with other bytes than the source's and was deleted: nothing mismatched is kept."""


class SessionGone(Exception):
    """The upload session is unknown or expired: start a new one."""


@dataclass
class Counters:
    bytes_sent: int = 0  # upload bytes put on the wire, re-sends included
    bytes_done: int = 0  # bytes of files completed
    files_done: int = 0


class UploadSessions:
    """Open upload URLs by step key, so a killed run resumes them. Upload URLs are short-lived capabilities:
    they live in a 0600 file beside the state store (never in it; logs mask their tempauth) and leave it when
    done."""

    def __init__(self, path: Path):
        self.path = path
        self._data: dict[str, dict[str, Any]] = {}
        tighten(path)
        try:
            self._data = json.loads(path.read_text())
        except (OSError, ValueError):
            self._data = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self._data.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self._data[key] = entry
        self._save()

    def drop(self, key: str) -> None:
        if self._data.pop(key, None) is not None:
            self._save()

    def _save(self) -> None:
        # Upload-session URLs are bearer capabilities: replaced whole, 0600 in a 0700 folder every time.
        write_private_text(self.path, json.dumps(self._data))


def item_path(drive: str, parent_id: str, name: str, action: str) -> str:
    return f"/drives/{drive}/items/{parent_id}:/{quote(name, safe='')}:/{action}"


async def _once(data: bytes) -> AsyncIterator[bytes]:
    # A streamed body: httpx then keeps no reference to the chunk in the finished request, which would
    # otherwise hold 5 MiB per PUT until the cycle collector runs.
    yield data


class FileCopier:
    def __init__(
        self,
        source: TenantConnection,
        target: TenantConnection,
        budget: SharePointBudget,
        sessions: UploadSessions,
        counters: Counters,
    ):
        self.source, self.target, self.budget = source, target, budget
        self.sessions, self.counters = sessions, counters
        self.http: httpx.AsyncClient = target.http

    async def _call(self, conn: TenantConnection, ru: int, method: str, path: str, **kw: Any) -> Any:
        async with self.budget.spend(conn.tenant_id, ru):
            return await conn.request(method, path, counts_as_write=False, **kw)

    async def source_item(self, drive: str, item_id: str) -> dict[str, Any] | None:
        resp = await self._call(self.source, 1, "GET", f"/drives/{drive}/items/{item_id}")
        if resp.status == 404:
            return None
        if not resp.ok:
            raise GraphError("GET", f"/drives/{drive}/items/{item_id}", resp)
        # The body's download URL is pre-authenticated; safety.redaction masks its tempauth in any log.
        return dict(resp.body)

    # ---- download ----------------------------------------------------------------------------------------
    async def _download(
        self,
        args: dict[str, Any],
        item: dict[str, Any],
        start: int,
        sink: Callable[[bytes], Awaitable[None]],
    ) -> None:
        """Stream [start, size) into `sink`; a dropped or failed read resumes from the last byte received,
        through the source connection's retry policy (the one retry layer)."""
        size = int(item["size"])
        url: str | None = item.get("@microsoft.graph.downloadUrl")
        pos = start
        try:
            async for attempt in self.source.retrying(ATTEMPTS):
                with attempt:
                    if pos >= size:
                        break
                    if not url:
                        fresh = await self.source_item(args["source_drive"], args["source_id"])
                        if fresh is None or fresh.get("cTag") != item.get("cTag"):
                            raise CopyError(
                                "the source file changed or disappeared while it was being copied"
                            )
                        url = fresh.get("@microsoft.graph.downloadUrl")
                        if not url:
                            raise CopyError("the source gave no download URL for the file")
                    try:
                        async with self.http.stream(
                            "GET", str(url), headers={"Range": f"bytes={pos}-{size - 1}"}
                        ) as r:
                            if r.status_code in (401, 403, 404, 410):
                                url = None  # expired or superseded: ask for a new URL at once
                                raise Transient(f"download refused ({r.status_code})", 0.0)
                            if r.status_code >= 500 or r.status_code == 429:
                                raise Transient(
                                    f"download answered {r.status_code}",
                                    parse_retry_after(r.headers.get("retry-after")),
                                )
                            if r.status_code not in (200, 206):
                                raise CopyError(f"download answered {r.status_code}")
                            skip = pos if r.status_code == 200 else 0  # a server ignoring Range sends it all
                            async for piece in r.aiter_bytes(PIECE):
                                if skip:
                                    cut = min(skip, len(piece))
                                    piece, skip = piece[cut:], skip - cut
                                    if not piece:
                                        continue
                                pos += len(piece)
                                await sink(piece)
                    except (httpx.TransportError, httpx.StreamError) as exc:
                        raise Transient(f"download interrupted ({type(exc).__name__})") from exc
                    if pos < size:
                        raise Transient("download ended early")
        except Transient as exc:
            raise CopyError(f"download kept failing ({exc})") from exc

    async def _chunks(
        self, args: dict[str, Any], item: dict[str, Any], start: int, hasher: Any, queue: asyncio.Queue[Any]
    ) -> None:
        buf = bytearray()
        offset = start

        async def take(piece: bytes) -> None:
            nonlocal offset
            if hasher is not None:
                hasher.update(piece)
            buf.extend(piece)
            while len(buf) >= CHUNK:
                await queue.put((offset, bytes(buf[:CHUNK])))
                offset += CHUNK
                del buf[:CHUNK]

        try:
            await self._download(args, item, start, take)
            if buf:
                await queue.put((offset, bytes(buf)))
            await queue.put(None)
        except BaseException as exc:  # hand the failure to the uploader
            await queue.put(exc)
            raise

    # ---- upload -------------------------------------------------------------------------------------------
    async def _status(self, url: str) -> int:
        """The next byte the session expects; SessionGone if it is unknown, expired or already complete."""
        try:
            async for attempt in self.target.retrying(ATTEMPTS):
                with attempt:
                    try:
                        r = await self.http.get(url)
                    except httpx.TransportError as exc:
                        raise Transient(f"upload session status: {type(exc).__name__}") from exc
                    if r.status_code == 404:
                        raise SessionGone()
                    if r.status_code >= 500 or r.status_code == 429:
                        raise Transient(
                            f"upload session status answered {r.status_code}",
                            parse_retry_after(r.headers.get("retry-after")),
                        )
                    if r.status_code != 200:
                        raise CopyError(f"upload session status answered {r.status_code}")
                    ranges = r.json().get("nextExpectedRanges") or ["0-"]
                    return int(str(ranges[0]).split("-")[0])
        except Transient as exc:
            raise CopyError(f"upload session status kept failing ({exc})") from exc
        raise AssertionError("unreachable")

    async def _put(self, url: str, first: int, data: bytes, total: int) -> tuple[int, dict[str, Any] | None]:
        """PUT one fragment; (next expected byte, final item or None)."""
        last = first + len(data) - 1
        try:
            async for attempt in self.target.retrying(ATTEMPTS):
                with attempt:
                    try:
                        self.counters.bytes_sent += len(data)
                        # Upload URLs are pre-authenticated: no Authorization header (it can cause 401).
                        r = await self.http.put(
                            url,
                            content=_once(data),
                            headers={
                                "Content-Range": f"bytes {first}-{last}/{total}",
                                "Content-Length": str(len(data)),
                            },
                        )
                    except httpx.TransportError as exc:
                        # The fragment may have landed: ask the session before sending it again.
                        try:
                            nxt = await self._status(url)
                        except SessionGone:
                            return total, None  # the last fragment landed and completed the file
                        if nxt > first:
                            return nxt, None
                        raise Transient(f"upload fragment: {type(exc).__name__}") from exc
                    if r.status_code in (200, 201):
                        return total, r.json()
                    if r.status_code == 202:
                        ranges = r.json().get("nextExpectedRanges") or [f"{last + 1}-"]
                        return int(str(ranges[0]).split("-")[0]), None
                    if r.status_code == 416:
                        return await self._status(url), None
                    if r.status_code == 404:
                        raise SessionGone()
                    if r.status_code == 409:
                        raise CopyError("a file with this name appeared in the target while copying")
                    if r.status_code in (429, 500, 502, 503, 504):
                        raise Transient(
                            f"upload fragment answered {r.status_code}",
                            parse_retry_after(r.headers.get("retry-after")),
                        )
                    raise CopyError(f"upload fragment answered {r.status_code}: {r.text[:200]}")
        except Transient as exc:
            raise CopyError(f"upload fragment kept failing ({exc})") from exc
        raise AssertionError("unreachable")

    async def _new_session(
        self, key: str, args: dict[str, Any], parent_id: str, name: str, item: dict[str, Any]
    ) -> str:
        fs = {"createdDateTime": args.get("created"), "lastModifiedDateTime": args.get("modified")}
        props: dict[str, Any] = {"fileSystemInfo": {k: v for k, v in fs.items() if v}}
        if args.get("replace_id"):
            path = f"/drives/{args['target_drive']}/items/{args['replace_id']}/createUploadSession"
            props[CONFLICT] = "replace"
        else:
            path = item_path(args["target_drive"], parent_id, name, "createUploadSession")
            props[CONFLICT] = "fail"
        resp = await self._call(self.target, 2, "POST", path, json={"item": props}, idempotent=True)
        if resp.status == 409:
            raise CopyError(f"'{args['path']}' already exists in the target")
        if not resp.ok:
            raise GraphError("POST", path, resp)
        url = str(resp.body["uploadUrl"])
        self.sessions.put(key, {"url": url, "ctag": item.get("cTag"), "size": int(item["size"])})
        return url

    async def copy(
        self, key: str, args: dict[str, Any], parent_id: str, name: str, *, ours: bool = True
    ) -> dict[str, Any]:
        """Copy one file; returns the target item. Raises CopyError (or GraphError) when it cannot; a copy
        whose bytes do not match the source's is deleted (CopyDiscarded), a replacement too when the item
        is trustfold's (`ours`)."""
        item = await self.source_item(args["source_drive"], args["source_id"])
        if item is None:
            raise CopyError("the source file no longer exists (deleted since the plan)")
        size = int(item["size"])
        want = ((item.get("file") or {}).get("hashes") or {}).get("quickXorHash")
        if size == 0:
            result = await self._copy_empty(args, parent_id, name)
        else:
            result = await self._copy_stream(key, args, parent_id, name, item, want, ours)
        if int(result.get("size", -1)) != size or (
            want and ((result.get("file") or {}).get("hashes") or {}).get("quickXorHash") != want
        ):
            await self._discard(args, result["id"], ours)
            raise CopyDiscarded(
                "the copy's size or quickXorHash differs from the source's; the copy was removed"
            )
        self.counters.bytes_done += size
        self.counters.files_done += 1
        result["_source_ctag"] = item.get("cTag")
        result["_source_hash"] = want
        return result

    async def _copy_stream(
        self,
        key: str,
        args: dict[str, Any],
        parent_id: str,
        name: str,
        item: dict[str, Any],
        want: str | None,
        ours: bool,
    ) -> dict[str, Any]:
        size = int(item["size"])
        url, start = None, 0
        saved = self.sessions.get(key)
        if saved and saved.get("ctag") == item.get("cTag") and int(saved.get("size", -1)) == size:
            try:
                url, start = saved["url"], await self._status(saved["url"])
            except SessionGone:
                url, start = None, 0
        if url is None:
            self.sessions.drop(key)
            url = await self._new_session(key, args, parent_id, name, item)
        hasher = quickxorhash() if start == 0 else None
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=2)
        reader = asyncio.create_task(self._chunks(args, item, start, hasher, queue))
        final: dict[str, Any] | None = None
        try:
            while True:
                entry = await queue.get()
                if entry is None:
                    break
                if isinstance(entry, BaseException):
                    raise entry
                offset, data = entry
                _, final = await self._put(url, offset, data, size)
                killpoints.reached("upload-fragment")
        except SessionGone:
            raise CopyError("the upload session expired; the next run starts this file again") from None
        finally:
            if not reader.done():
                reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        self.sessions.drop(key)
        if hasher is not None and want and base64.b64encode(hasher.digest()).decode() != want:
            if final is not None:
                await self._discard(args, final["id"], ours)
            raise CopyDiscarded(
                "the bytes read differ from the source's quickXorHash (changed while copying?); the copy was "
                "removed"
            )
        if final is None:
            final = await self._find(args["target_drive"], parent_id, name, args.get("replace_id"))
        return final

    async def _find(self, drive: str, parent_id: str, name: str, replace_id: str | None) -> dict[str, Any]:
        path = (
            f"/drives/{drive}/items/{replace_id}"
            if replace_id
            else f"/drives/{drive}/items/{parent_id}:/{quote(name, safe='')}:"
        )
        resp = await self._call(self.target, 1, "GET", path)
        if not resp.ok:
            raise CopyError(f"the upload finished but the file cannot be read back ({resp.status})")
        return dict(resp.body)

    async def _copy_empty(self, args: dict[str, Any], parent_id: str, name: str) -> dict[str, Any]:
        drive = args["target_drive"]
        if args.get("replace_id"):
            path = f"/drives/{drive}/items/{args['replace_id']}/content"
            resp = await self._call(self.target, 2, "PUT", path, content=b"")
        else:
            # With conflictBehavior=fail the PUT is not safe to send again blind: when its answer is lost
            # (MaybeApplied) it may have made the file, and a second send would meet our own file as a 409.
            # The name was free when the plan was made, so an empty file found there now is this write's.
            path = item_path(drive, parent_id, name, "content") + f"?{CONFLICT}=fail"
            resp = await self._put_empty(args, drive, parent_id, name, path)
        if resp.status == 409:
            raise CopyError(f"'{args['path']}' already exists in the target")
        if not resp.ok:
            raise GraphError("PUT", path, resp)
        created = dict(resp.body)
        fs = {"createdDateTime": args.get("created"), "lastModifiedDateTime": args.get("modified")}
        fs = {k: v for k, v in fs.items() if v}
        if fs:
            patch = f"/drives/{drive}/items/{created['id']}"
            resp = await self._call(self.target, 2, "PATCH", patch, json={"fileSystemInfo": fs})
            if not resp.ok:
                raise GraphError("PATCH", patch, resp)
            created = dict(resp.body)
        return created

    async def _put_empty(self, args: dict[str, Any], drive: str, parent_id: str, name: str, path: str) -> Any:
        """PUT a new empty file; an answer lost on the way is settled by reading the name back."""
        where = f"/drives/{drive}/items/{parent_id}:/{quote(name, safe='')}:"
        for _ in range(ATTEMPTS):
            try:
                return await self._call(self.target, 2, "PUT", path, content=b"", idempotent=False)
            except MaybeApplied:
                landed = await self._call(self.target, 1, "GET", where)
                if landed.ok and self._our_empty_file(landed.body):
                    return landed
                if landed.status != 404:
                    raise CopyError(f"'{args['path']}' already exists in the target") from None
        raise CopyError(f"'{args['path']}': the empty file's creation kept losing its answer")

    def _our_empty_file(self, item: dict[str, Any]) -> bool:
        """An empty file that this app may have made: not a folder, no bytes, and not created by another app
        (createdBy names the calling application by id; an app id this copy cannot know passes)."""
        if item.get("folder") or int(item.get("size", -1)) != 0:
            return False
        maker = str(((item.get("createdBy") or {}).get("application") or {}).get("id") or "").lower()
        mine = str(getattr(self.target, "app_id", "") or "").lower()
        return not maker or ":" in mine or not mine or maker == mine

    async def _discard(self, args: dict[str, Any], item_id: str, ours: bool) -> None:
        """Delete a copy that arrived with other bytes than the source's. A replacement of a file trustfold
        created goes too (the run records the loss and copies it afresh next time); a file trustfold only
        adopted is not its to delete, so the failure names it instead."""
        if args.get("replace_id") and not ours:
            raise CopyError(
                f"'{args['path']}' (not created by trustfold) received content that does not match the "
                "source; it was left in place: check it in the trust tenant"
            )
        path = f"/drives/{args['target_drive']}/items/{item_id}"
        resp = await self._call(self.target, 2, "DELETE", path)
        if not (resp.ok or resp.status == 404):
            raise GraphError("DELETE", path, resp)

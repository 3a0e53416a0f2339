"""Staging one package's bytes: each source file downloaded (streamed), hashed on the way, AES-256-CBC
encrypted with its own IV and uploaded as block blobs to the package's content container; then its manifest
XML, each file encrypted with its own IV, to the manifest container."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from azure.core.exceptions import AzureError
from quickxorhash import quickxorhash

from migrations.core import killpoints
from migrations.core.steps import Step
from migrations.files.bulk import crypto
from migrations.files.bulk.blobs import BLOCK, hashing, once, upload
from migrations.files.bulk.context import BulkContext
from migrations.files.bulk.packages import Lib, manifests
from migrations.files.bulk.sharepoint_rest import MigrationApiError, url_arg
from migrations.files.bulk.staging import Containers
from migrations.graph.client import GraphError

FILES_AT_ONCE = 8


class SourceChanged(Exception):
    """The source file is not what was planned (or not readable as planned): the next run copies it anew."""


async def stage_files(
    ctx: BulkContext,
    steps: list[Step],
    files: dict[str, dict[str, Any]],
    containers: Containers,
    key: bytes,
    lib: Lib,
) -> tuple[dict[str, dict[str, str | None]], list[tuple[Step, str]]]:
    """(authors by staged step key, steps that could not be staged with the reason)."""
    client = ctx.staging.client(containers.source)
    staged: dict[str, dict[str, str | None]] = {}
    problems: list[tuple[Step, str]] = []
    sem = asyncio.Semaphore(FILES_AT_ONCE)
    first = True

    async def one(step: Step) -> None:
        nonlocal first
        async with sem:
            try:
                authors = await stage_one(ctx, step, files[step.key], client, key, lib)
            except (SourceChanged, GraphError, MigrationApiError, AzureError) as exc:
                problems.append((step, str(exc)))
                return
            staged[step.key] = authors
            if first:
                first = False
                killpoints.reached("bulk.packaging")

    await asyncio.gather(*(one(s) for s in steps))
    return staged, problems


async def stage_one(
    ctx: BulkContext, step: Step, entry: dict[str, Any], client: Any, key: bytes, lib: Lib
) -> dict[str, str | None]:
    a = step.args
    if a.get("replace_id"):
        # The Migration API overwrites by identity: the same GUID as the item already there.
        server = f"{lib.library.web_url}/{lib.library.list_url}/{a['path']}"
        got = await ctx.rest.call(
            "GET", lib.library.site_url, f"web/GetFileByServerRelativePath(decodedUrl={url_arg(server)})"
        )
        entry["id"] = got["UniqueId"]
    async with ctx.budget.spend(ctx.source.tenant_id, 1):
        item = await ctx.source.get(f"/drives/{a['source_drive']}/items/{a['source_id']}")
    if item.get("cTag") != a.get("ctag") or int(item.get("size") or 0) != int(a["size"]):
        raise SourceChanged("the source file changed after planning; the next run copies the new version")
    iv = crypto.new_iv()
    hasher = quickxorhash()
    async with ctx.budget.spend(ctx.source.tenant_id, 1):
        chunks = hashing(download(ctx, item), hasher)
        blob = client.get_blob_client(entry["blob"])
        sent = await upload(blob, crypto.aencrypt_chunks(chunks, key, iv), {"IV": crypto.b64(iv)})
    if crypto.b64(hasher.digest()) != a["hash"]:
        raise SourceChanged("the downloaded bytes do not match the source's quickXorHash")
    ctx.counters.bytes_sent += sent
    by = lambda k: ((item.get(k) or {}).get("user") or {}).get("id")  # noqa: E731
    return {"author": by("createdBy"), "editor": by("lastModifiedBy")}


async def download(ctx: BulkContext, item: dict[str, Any]) -> AsyncIterator[bytes]:
    url = item.get("@microsoft.graph.downloadUrl")
    if int(item.get("size") or 0) == 0:
        return
    if not url:
        raise SourceChanged("the source gave no download URL")
    async with ctx.source.http.stream("GET", url) as r:
        if r.status_code != 200:
            raise SourceChanged(f"download answered {r.status_code}")
        async for piece in r.aiter_bytes(BLOCK):
            yield piece


async def stage_manifests(
    ctx: BulkContext,
    steps: list[Step],
    files: dict[str, dict[str, Any]],
    staged: dict[str, dict[str, str | None]],
    containers: Containers,
    key: bytes,
    lib: Lib,
) -> None:
    client = ctx.staging.client(containers.manifest)
    for name, body in manifests(steps, files, staged, lib, ctx.users).items():
        iv = crypto.new_iv()
        await upload(
            client.get_blob_client(name), crypto.aencrypt_chunks(once(body), key, iv), {"IV": crypto.b64(iv)}
        )

"""Staged block blobs for Migration API packages: bytes arrive as an async stream (already encrypted), leave
as 4 MiB blocks, and are committed with their IV metadata and snapshotted. Memory: one block."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from migrations.files.bulk import crypto

BLOCK = 4 * 1024 * 1024  # staged block size (Azure allows up to 4000 MiB; 4 MiB keeps memory flat)


async def once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def hashing(chunks: AsyncIterator[bytes], hasher: Any) -> AsyncIterator[bytes]:
    async for c in chunks:
        hasher.update(c)
        yield c


async def upload(blob: Any, chunks: AsyncIterator[bytes], metadata: dict[str, str]) -> int:
    """Staged blocks of BLOCK bytes (each retried by the SDK on its own), committed with the IV metadata, then
    snapshotted (Migration API imports a blob's latest snapshot). Memory: one block."""
    buf, sent = bytearray(), 0
    ids: list[str] = []

    async def flush() -> None:
        nonlocal sent
        block_id = crypto.b64(f"{len(ids):08d}".encode())
        data = bytes(buf)
        await asyncio.to_thread(blob.stage_block, block_id, data)
        ids.append(block_id)
        sent += len(data)
        buf.clear()

    async for chunk in chunks:
        buf += chunk
        if len(buf) >= BLOCK:
            await flush()
    if buf or not ids:
        await flush()
    await asyncio.to_thread(blob.commit_block_list, ids, metadata=metadata)
    await asyncio.to_thread(blob.create_snapshot)
    return sent

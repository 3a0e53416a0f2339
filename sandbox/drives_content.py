"""File content for sandbox drive items: generated on the fly, held in memory, or spilled to disk.

Generated content never exists as a whole: bytes at any offset are computed from a seed, so a tenant can
hold a 300 GB file or a 2 GiB video at no memory cost, and a Range read starts anywhere. Uploaded content
larger than a few MiB goes to a blob folder (next to the --state file when there is one, else a temporary
folder removed at exit), so the sandbox's own memory stays flat while clients copy large files.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import math
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quickxorhash import quickxorhash

# A prime block length: repeated blocks never line up with 320 KiB chunk boundaries, so a client that resumes
# at the wrong offset sends different bytes and the hash check catches it.
GEN_BLOCK = 1_048_573
MEM_LIMIT = 4 * 1024 * 1024
PIECE = 256 * 1024

_blob_dir: Path | None = None
_blob_lock = threading.Lock()
_blocks: OrderedDict[str, bytes] = OrderedDict()
_blocks_lock = threading.Lock()


def set_blob_dir(path: Path | None) -> None:
    """Where uploaded content over MEM_LIMIT is kept (a persisted world keeps it beside its state file)."""
    global _blob_dir
    with _blob_lock:
        _blob_dir = path


def blob_dir() -> Path:
    global _blob_dir
    with _blob_lock:
        if _blob_dir is None:
            tmp = Path(tempfile.mkdtemp(prefix="trustfold-sandbox-blobs-"))
            atexit.register(shutil.rmtree, tmp, True)
            _blob_dir = tmp
        _blob_dir.mkdir(parents=True, exist_ok=True)
        return _blob_dir


def _block(seed: str, need: int = GEN_BLOCK) -> bytes:
    """The seed's block, or at least its first `need` bytes (SHAKE output is prefix-consistent, so small
    files cost only their own length)."""
    if need < GEN_BLOCK:
        return hashlib.shake_256(seed.encode()).digest(need)
    with _blocks_lock:
        block = _blocks.get(seed)
        if block is not None:
            _blocks.move_to_end(seed)
            return block
    # SHAKE gives a reproducible pseudo-random stream from the seed, fast enough for a block per file.
    block = hashlib.shake_256(seed.encode()).digest(GEN_BLOCK)
    with _blocks_lock:
        _blocks[seed] = block
        while len(_blocks) > 16:
            _blocks.popitem(last=False)
    return block


def gen_bytes(seed: str, offset: int, length: int) -> bytes:
    block = _block(seed, min(GEN_BLOCK, offset + length) if offset + length < GEN_BLOCK else GEN_BLOCK)
    out = bytearray()
    pos = offset % GEN_BLOCK
    while len(out) < length:
        take = min(GEN_BLOCK - pos, length - len(out))
        out += block[pos : pos + take]
        pos = 0
    return bytes(out)


def generated(seed: str, size: int) -> dict[str, Any]:
    return {"k": "gen", "seed": seed, "size": size}


def in_memory(data: bytes) -> dict[str, Any]:
    return {"k": "mem", "data": data, "size": len(data)}


def on_disk(name: str, size: int) -> dict[str, Any]:
    return {"k": "disk", "name": name, "size": size}


def read(content: dict[str, Any], start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Bytes [start, end) in pieces of at most PIECE."""
    size = int(content["size"])
    end = size if end is None else min(end, size)
    kind = content["k"]
    if kind == "disk":
        with (blob_dir() / content["name"]).open("rb") as f:
            f.seek(start)
            pos = start
            while pos < end:
                piece = f.read(min(PIECE, end - pos))
                if not piece:
                    return
                pos += len(piece)
                yield piece
        return
    pos = start
    while pos < end:
        n = min(PIECE, end - pos)
        yield content["data"][pos : pos + n] if kind == "mem" else gen_bytes(content["seed"], pos, n)
        pos += n


_MASK = (1 << 160) - 1


def _raw_state(data: bytes) -> int:
    """quickXorHash's 160-bit register before the length is folded into its last 8 bytes."""
    h = quickxorhash()
    h.update(data)
    return int.from_bytes(h.digest(), "little") ^ (len(data) << 96)


def _rotl(x: int, r: int) -> int:
    r %= 160
    return ((x << r) | (x >> (160 - r))) & _MASK if r else x


def generated_quick_xor(seed: str, size: int) -> str:
    """quickXorHash of generated content without reading it: byte i enters the register rotated by 11*i bits
    (mod 160), so a block repeated k times is the block's register XORed at k rotations, which cycle with a
    period of at most 160. A 300 GB generated file hashes in milliseconds."""
    if size < GEN_BLOCK:
        h = quickxorhash()
        h.update(_block(seed, size)[:size])
        return base64.b64encode(h.digest()).decode()
    block = _block(seed)
    k, rem = divmod(size, GEN_BLOCK)
    xb = _raw_state(block)
    step = (11 * GEN_BLOCK) % 160
    period = 160 // math.gcd(step, 160)
    cycle = 0
    for j in range(period):
        cycle ^= _rotl(xb, step * j)
    x = cycle if (k // period) % 2 else 0
    for j in range(k % period):
        x ^= _rotl(xb, step * ((k // period) * period + j))
    x ^= _rotl(_raw_state(block[:rem]), step * k)
    x ^= size << 96
    return base64.b64encode(x.to_bytes(20, "little")).decode()


def quick_xor(content: dict[str, Any]) -> str:
    if content["k"] == "gen":
        return generated_quick_xor(content["seed"], int(content["size"]))
    h = quickxorhash()
    for piece in read(content):
        h.update(piece)
    return base64.b64encode(h.digest()).decode()


def to_state(content: dict[str, Any]) -> dict[str, Any]:
    if content["k"] == "mem":
        return {"k": "mem", "b64": base64.b64encode(content["data"]).decode(), "size": content["size"]}
    return dict(content)


def from_state(d: dict[str, Any]) -> dict[str, Any]:
    if d["k"] == "mem":
        return in_memory(base64.b64decode(d["b64"]))
    return dict(d)


class Spool:
    """Receives an upload session's bytes in order: memory while small, a blob file once large."""

    def __init__(self, name: str, total: int):
        self.name = name
        self.total = total
        self.size = 0
        self.hash = quickxorhash()
        self._mem: bytearray | None = bytearray() if total <= MEM_LIMIT else None
        self._file = None if self._mem is not None else (blob_dir() / name).open("wb")

    def write(self, data: bytes) -> None:
        if self._mem is not None:
            self._mem += data
        else:
            assert self._file is not None
            self._file.write(data)
        self.hash.update(data)
        self.size += len(data)

    def finish(self) -> tuple[dict[str, Any], str]:
        digest = base64.b64encode(self.hash.digest()).decode()
        if self._mem is not None:
            return in_memory(bytes(self._mem)), digest
        assert self._file is not None
        self._file.close()
        return on_disk(self.name, self.size), digest

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            (blob_dir() / self.name).unlink(missing_ok=True)
        self._mem = None

"""Mail items carried without holding them: export batches sized by the items' sizes, the exportItems answer
read as it arrives with each item's data spooled on its own (in memory while small, else to a temporary
file), and the import POST's body streamed from that spool.

Why a spool and not a pipe from the export answer straight into the import POST: an import may be throttled
(or its URL renewed) and must then be sent again from the start, and an export answer left half read while
its items are imported one by one would hold the export's connection, and its concurrency slot, for as long as
the imports take. So a batch's answer is read whole, each item's base64 going to its own spool, and the
imports follow from the spools.

Memory: the bytes a batch holds (the answer's chunk being scanned, an element's small fields, the spools
kept in memory) are counted in a Held; spools move to disk as soon as the batch's in-memory bytes would pass
MEMORY_BYTES, so a batch never holds more than HELD_BOUND, whatever the sizes of its items. Export batches
hold at most EXPORT_BATCH items and BATCH_BYTES of them, and an item of LARGE_BYTES or more goes alone, so
one answer never brings more than one large item to disk either.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

EXPORT_BATCH = 20  # mailbox-exportitems: "You can export up to 20 items in a single export request."
CHUNK = 256 * 1024  # bytes of an answer or a body handled at a time
MEMORY_BYTES = 2 * 1024 * 1024  # a batch's spools stay in memory up to this, then go to disk
FIELDS_BYTES = 64 * 1024  # an answer element's fields besides its data (ids, change key, error)
HELD_BOUND = CHUNK + MEMORY_BYTES + FIELDS_BYTES
BATCH_BYTES = 8 * 1024 * 1024  # the items of one export request, by the sizes the item list gives
LARGE_BYTES = 4 * 1024 * 1024  # an item this size or larger is exported alone


def export_batches(items: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Items (each with the `size` the item list gives) in export batches: at most EXPORT_BATCH items and
    BATCH_BYTES together; an item of LARGE_BYTES or more (or of unknown size) alone."""
    batch: list[dict[str, Any]] = []
    total = 0
    for item in items:
        size = _size(item)
        alone = size is None or size >= LARGE_BYTES
        if batch and (alone or len(batch) >= EXPORT_BATCH or total + (size or 0) > BATCH_BYTES):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += size or 0
        if alone:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def _size(item: dict[str, Any]) -> int | None:
    size = item.get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


@dataclass
class Held:
    """Bytes held in memory by one batch, now and at most."""

    now: int = 0
    peak: int = 0

    def add(self, n: int) -> None:
        self.now += n
        self.peak = max(self.peak, self.now)

    def drop(self, n: int) -> None:
        self.now -= n


@dataclass
class Spool:
    """One item's base64 data: in memory while the batch can afford it, else in a temporary file."""

    held: Held
    length: int = 0
    _memory: io.BytesIO | None = field(default_factory=io.BytesIO)
    _file: IO[bytes] | None = None

    def write(self, piece: bytes) -> None:
        if not piece:
            return
        if self._memory is not None and self.held.now + len(piece) > MEMORY_BYTES:
            self._to_disk()
        if self._memory is not None:
            self._memory.write(piece)
            self.held.add(len(piece))
        else:
            assert self._file is not None
            self._file.write(piece)
        self.length += len(piece)

    def _to_disk(self) -> None:
        assert self._memory is not None
        self._file = tempfile.TemporaryFile(prefix="trustfold-mail-")  # noqa: SIM115 - closed by close()
        self._file.write(self._memory.getbuffer())
        self.held.drop(self._memory.tell())
        self._memory = None

    def on_disk(self) -> bool:
        return self._file is not None

    def pieces(self) -> Iterator[bytes]:
        """The data from its start, CHUNK at a time (each read again for a resend)."""
        for block in self._blocks():
            self.held.add(len(block))  # the piece being sent is held too
            try:
                yield block
            finally:
                self.held.drop(len(block))

    def _blocks(self) -> Iterator[bytes]:
        if self._memory is not None:
            data = self._memory.getvalue()  # kept already (and counted): a view, not another copy
            view = memoryview(data)
            for start in range(0, self.length, CHUNK):
                yield bytes(view[start : start + CHUNK])
            return
        assert self._file is not None
        self._file.seek(0)
        while block := self._file.read(CHUNK):
            yield block

    def close(self) -> None:
        if self._memory is not None:
            self.held.drop(self._memory.tell())
            self._memory = None
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class Exported:
    """One element of an exportItems answer: its fields (itemId, changeKey or error) and its data's spool."""

    fields: dict[str, Any]
    data: Spool | None

    @property
    def item_id(self) -> str:
        return str(self.fields.get("itemId"))

    def close(self) -> None:
        if self.data is not None:
            self.data.close()
            self.data = None


class MalformedExport(ValueError):
    """The exportItems answer is not the collection the page describes."""


class ExportScanner:
    """An exportItems answer (`{"@odata.context": …, "value": [{"itemId", "changeKey", "data"}, …]}`) fed
    chunk by chunk; each element comes out whole once its closing brace is read, its data in a Spool. Only the
    data string is long, and it is base64 (no escapes but an optional `\\/`), so it is copied a run at a time;
    everything else is walked byte by byte and is small."""

    def __init__(self, held: Held) -> None:
        self.held = held
        self.depth = 0
        self.in_string = False
        self.escape = False
        self.fields = bytearray()  # the current element's bytes, its data left out
        self.element = False
        self.in_data = False
        self.await_data = False  # after `"data":`, until its opening quote (which may be in the next chunk)
        self.carry = b""  # a backslash that ended a chunk inside the data
        self.spool: Spool | None = None
        self.done: list[Exported] = []

    def feed(self, chunk: bytes) -> list[Exported]:
        self.held.add(len(chunk))
        try:
            self._scan(chunk)
        finally:
            self.held.drop(len(chunk))
        out, self.done = self.done, []
        return out

    def _scan(self, chunk: bytes) -> None:
        i, n = 0, len(chunk)
        while i < n:
            if self.in_data:
                end = chunk.find(b'"', i)
                piece = self.carry + (chunk[i:] if end < 0 else chunk[i:end])
                self.carry = b""
                if end < 0 and piece.endswith(b"\\"):
                    piece, self.carry = piece[:-1], b"\\"
                assert self.spool is not None
                self.spool.write(piece.replace(b"\\/", b"/") if b"\\" in piece else piece)
                if end < 0:
                    return
                self.in_data = False
                self._keep(b'""')
                i = end + 1
                continue
            c = chunk[i]
            if self.await_data:
                if c in b" \t\r\n":
                    i += 1
                    continue
                self.await_data = False
                if c == 0x22:
                    if self.spool is not None:
                        raise MalformedExport("an exported item carries its data twice")
                    self.spool = Spool(self.held)
                    self.in_data = True
                    i += 1
                    continue
            if self.in_string:
                if self.escape:
                    self.escape = False
                elif c == 0x5C:
                    self.escape = True
                elif c == 0x22:
                    self.in_string = False
                if self.element:
                    self._keep(chunk[i : i + 1])
                i += 1
                continue
            if c == 0x22:
                self.in_string = True
            elif c in b"{[":
                self.depth += 1
                if self.depth == 3 and c == 0x7B:
                    self.element = True
                    self.fields.clear()
            elif c in b"}]":
                self.depth -= 1
                if self.depth < 0:
                    raise MalformedExport("the export answer closes more than it opens")
            if self.element:
                self._keep(chunk[i : i + 1])
                if c == 0x3A and self.depth == 3 and self.fields.rstrip(b": \t\r\n").endswith(b'"data"'):
                    # The data's string starts at the next quote: it goes to a spool, not to the fields.
                    self.await_data = True
                if self.depth == 2 and c == 0x7D:
                    self._finish()
            i += 1

    def _keep(self, b: bytes) -> None:
        if len(self.fields) + len(b) > FIELDS_BYTES:
            raise MalformedExport("an exported item's fields are too long")
        self.fields += b
        self.held.add(len(b))

    def _finish(self) -> None:
        self.element = False
        try:
            fields = json.loads(bytes(self.fields))
        except ValueError:
            raise MalformedExport("an exported item is not a JSON object") from None
        finally:
            self.held.drop(len(self.fields))
            self.fields.clear()
        if not isinstance(fields, dict):
            raise MalformedExport("an exported item is not a JSON object")
        fields.pop("data", None)
        self.done.append(Exported(fields, self.spool))
        self.spool = None

    def finish(self) -> None:
        if self.depth != 0 or self.in_data or self.element or self.await_data:
            if self.spool is not None:
                self.spool.close()
            raise MalformedExport("the export answer ended early")


def import_body(fields: dict[str, Any], data: Spool) -> tuple[int, AsyncIterator[bytes]]:
    """The import POST's length and body: `fields` (FolderId, Mode, ItemId, ChangeKey) and then Data, the
    spooled base64 streamed after them."""
    head = json.dumps(fields)[:-1].encode() + (b',"Data":"' if fields else b'"Data":"')
    tail = b'"}'

    async def body() -> AsyncIterator[bytes]:
        yield head
        for piece in data.pieces():
            yield piece
        yield tail

    return len(head) + data.length + len(tail), body()

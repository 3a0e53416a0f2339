"""Mail items are carried without being held (mail/streaming.py): export batches are sized by the items'
sizes, an exportItems answer is read into per-item spools counted byte by byte, and no batch ever holds more
than HELD_BOUND in memory, whatever its items weigh; the data comes out exactly as it went in.

Bytes held are counted (streaming.Held), never timed; the random answer splits use a fixed seed."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from typing import Any

import pytest

from migrations.mail import streaming
from migrations.mail.streaming import (
    BATCH_BYTES,
    CHUNK,
    EXPORT_BATCH,
    HELD_BOUND,
    LARGE_BYTES,
    Exported,
    ExportScanner,
    Held,
    MalformedExport,
    export_batches,
    import_body,
)
from tests.identity.conftest import TARGET
from tests.mail.conftest import ACADEMY, MailWorld, content


def _answer(datas: list[bytes | None], escape_slashes: bool = False) -> bytes:
    """An exportItems answer as mailbox-exportitems shows it; None: an item refused with an error."""
    parts = []
    for n, d in enumerate(datas):
        if d is None:
            parts.append(
                json.dumps({"itemId": f"i{n}", "error": {"code": "ErrorItemNotFound", "message": "x"}})
            )
            continue
        text = base64.b64encode(d).decode()
        if escape_slashes:
            text = text.replace("/", "\\/")  # a JSON writer may escape the solidus
        parts.append(f'{{"itemId": "i{n}", "changeKey": "ck{n}", "data": "{text}"}}')
    head = '{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(x)", "value": ['
    return (head + ", ".join(parts) + "]}").encode()


def _feed(answer: bytes, seed: int) -> tuple[list[tuple[dict[str, Any], bytes | None, bool]], Held]:
    """Feed the answer in random pieces (at most CHUNK, as the client reads them); read each item's data back
    and close it before the next, as the copier does."""
    held = Held()
    scanner = ExportScanner(held)
    rnd = random.Random(seed)
    out: list[tuple[dict[str, Any], bytes | None, bool]] = []

    def take(done: list[Exported]) -> None:
        for e in done:
            data = b"".join(e.data.pieces()) if e.data is not None else None
            out.append((e.fields, data, e.data is not None and e.data.on_disk()))
            e.close()

    pos = 0
    while pos < len(answer):
        step = rnd.randint(1, CHUNK)
        take(scanner.feed(answer[pos : pos + step]))
        pos += step
    scanner.finish()
    assert held.now == 0  # every byte counted in was counted out
    return out, held


def test_an_answer_with_a_large_item_never_holds_more_than_the_bound() -> None:
    rnd = random.Random(7)
    datas: list[bytes | None] = [rnd.randbytes(rnd.randint(0, 40_000)) for _ in range(15)]
    datas[4] = rnd.randbytes(12 * 1024 * 1024)  # 16 MB of base64: far more than the bound
    datas[9] = None
    answer = _answer(datas)
    got, held = _feed(answer, seed=1)
    assert [f["itemId"] for f, _, _ in got] == [f"i{n}" for n in range(15)]
    for (fields, data, _), want in zip(got, datas, strict=True):
        if want is None:
            assert data is None and fields["error"]["code"] == "ErrorItemNotFound"
        else:
            assert data is not None and base64.b64decode(data) == want
            assert fields["changeKey"].startswith("ck") and "data" not in fields
    assert got[4][2] is True  # the large item went to disk
    assert held.peak <= HELD_BOUND
    assert held.peak < len(answer) // 4


def test_escaped_solidus_and_one_byte_pieces_read_the_same() -> None:
    rnd = random.Random(3)
    datas: list[bytes | None] = [rnd.randbytes(3000) for _ in range(3)]
    answer = _answer(datas, escape_slashes=True)
    assert b"\\/" in answer
    held = Held()
    scanner = ExportScanner(held)
    done: list[Exported] = []
    for i in range(len(answer)):  # every byte its own piece: escapes and keys split everywhere
        done += scanner.feed(answer[i : i + 1])
    scanner.finish()
    assert [base64.b64decode(b"".join(e.data.pieces())) for e in done if e.data] == datas


def test_an_answer_cut_short_is_refused() -> None:
    answer = _answer([b"abc" * 1000])
    scanner = ExportScanner(Held())
    scanner.feed(answer[: len(answer) // 2])
    with pytest.raises(MalformedExport):
        scanner.finish()


def test_the_import_body_streams_the_spool_with_its_exact_length() -> None:
    rnd = random.Random(5)
    data = rnd.randbytes(5 * 1024 * 1024)
    got, _ = _feed(_answer([data]), seed=2)
    held = Held()
    scanner = ExportScanner(held)
    answer = _answer([data])
    found: list[Exported] = []
    for start in range(0, len(answer), CHUNK):
        found += scanner.feed(answer[start : start + CHUNK])
    [exported] = found
    assert exported.data is not None and exported.data.on_disk()
    length, body = import_body({"FolderId": "f1", "Mode": "create"}, exported.data)

    async def read() -> bytes:
        return b"".join([piece async for piece in body])

    sent = asyncio.run(read())
    exported.close()
    assert len(sent) == length
    parsed = json.loads(sent)
    assert parsed["FolderId"] == "f1" and base64.b64decode(parsed["Data"]) == data == base64.b64decode(
        got[0][1] or b""
    )
    assert held.peak <= HELD_BOUND


def test_export_batches_follow_the_sizes_the_item_list_gives() -> None:
    small: list[dict[str, Any]] = [{"id": f"s{n}", "size": 30_000} for n in range(45)]
    assert [len(b) for b in export_batches(small)] == [EXPORT_BATCH, EXPORT_BATCH, 5]
    mixed: list[dict[str, Any]] = [
        {"id": "a", "size": 3_000_000},
        {"id": "b", "size": 3_000_000},
        {"id": "c", "size": 3_000_000},  # 9 MB with a and b: over BATCH_BYTES, starts the next batch
        {"id": "big", "size": 150_000_000},
        {"id": "d", "size": 10},
        {"id": "unknown"},
    ]
    batches = [[i["id"] for i in b] for b in export_batches(mixed)]
    assert batches == [["a", "b"], ["c"], ["big"], ["d"], ["unknown"]]
    for b in export_batches(small + mixed):
        sizes = [int(i.get("size", LARGE_BYTES)) for i in b]
        assert len(b) <= EXPORT_BATCH
        assert sum(sizes) <= BATCH_BYTES or len(b) == 1


def test_a_large_item_crosses_through_the_cli_within_the_bound(
    users_done: MailWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 40 MB message (attachment included) goes through a real incremental pass; every batch's peak is
    recorded and none passes HELD_BOUND. The item arrives whole in the trust mailbox."""
    w = users_done
    peaks: list[int] = []

    class Counted(Held):
        def add(self, n: int) -> None:
            super().add(n)
            peaks.append(self.peak)

    w.cli.json("run", ACADEMY, "--phase", "mail", "--replan")  # the first pass; the large item comes next
    monkeypatch.setattr(streaming, "Held", Counted)
    monkeypatch.setattr("migrations.mail.transfer.Held", Counted)
    pair = sorted(w.pairs())[0]
    blob = {"name": "minutes.pdf", "contentType": "application/pdf", "seed": "memory", "size": 40_000_000}
    made = w.admin(
        w.source,
        f"/mailboxes/{pair[0]}/items",
        "POST",
        json={"folder": "inbox", "props": {"class": "IPM.Note", "subject": "large", "blob": blob}},
    )
    result = w.cli.json("run", ACADEMY, "--phase", "mail", "--replan")
    assert isinstance(result, dict)
    assert peaks and max(peaks) <= HELD_BOUND
    source = next(i for i in w.items(w.source, pair[0]) if i["id"] == made["id"])
    assert source["size"] >= 40_000_000
    arrived = [i for i in w.items(TARGET, pair[1]) if content(i) == content(source)]
    assert len(arrived) == 1

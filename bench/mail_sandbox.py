"""The sandbox's side of a 150 MB mail item (one run): export it through exportItems and import it through an
import URL, both streamed, and print the process's peak memory growth as a share of the item's size (goal
well under 1: the sandbox never holds the item, its base64 or the JSON around it whole), and the time of each
leg as MB per second. The client here streams to and from a temporary file, as the mail phase must.

    .venv/bin/python bench/mail_sandbox.py
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox.generator_mail import LARGE_ATTACHMENT  # noqa: E402
from sandbox.testing import graph_client, running_sandbox  # noqa: E402

CHUNK = 1 << 20


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data_span(path: Path) -> tuple[int, int]:
    """Offsets of the first "data" string's content in an exportItems answer saved at `path`."""
    marker = b'"data":"'
    with path.open("rb") as f:
        head = f.read(4096)
        start = head.index(marker) + len(marker)
        f.seek(start)
        pos = start
        while True:
            block = f.read(CHUNK)
            if not block:
                raise ValueError("no end of data")
            end = block.find(b'"')
            if end >= 0:
                return start, pos + end
            pos += len(block)


def _body(prefix: bytes, path: Path, span: tuple[int, int]) -> Iterator[bytes]:
    yield prefix
    with path.open("rb") as f:
        f.seek(span[0])
        left = span[1] - span[0]
        while left:
            block = f.read(min(CHUNK, left))
            left -= len(block)
            yield block
    yield b'"}'


def main() -> None:
    config = ROOT / "config"
    with running_sandbox(config, size=60, seed=3, throttling=False, mail_provision_delay_s=0) as url:
        tenants = httpx.get(f"{url}/sandbox/tenants").json()
        source = next(t["id"] for t in tenants if t["role"] == "source")
        boxes = httpx.get(f"{url}/sandbox/tenants/{source}/mail/mailboxes").json()["mailboxes"]
        src = next(m for m in boxes if m["kind"] == "primary")
        dst = next(m for m in boxes if m["kind"] == "shared")
        blob = {
            "name": "pack.pdf",
            "contentType": "application/pdf",
            "seed": "bench",
            "size": LARGE_ATTACHMENT,
        }
        made = httpx.post(
            f"{url}/sandbox/tenants/{source}/mail/mailboxes/{src['id']}/items",
            json={"folder": "inbox", "props": {"class": "IPM.Note", "subject": "large", "blob": blob}},
        ).json()
        base = _rss_mb()
        with tempfile.TemporaryDirectory() as tmp, graph_client(url, source, timeout=600) as c:
            saved = Path(tmp) / "export.json"
            started = time.perf_counter()
            with c.stream(
                "POST", f"/admin/exchange/mailboxes/{src['id']}/exportItems", json={"itemIds": [made["id"]]}
            ) as r:
                r.raise_for_status()
                with saved.open("wb") as f:
                    for part in r.iter_bytes(CHUNK):
                        f.write(part)
            export_s = time.perf_counter() - started
            span = _data_span(saved)
            folders = c.get(f"/admin/exchange/mailboxes/{dst['id']}/folders").json()["value"]
            inbox = next(f["id"] for f in folders if f["wellKnownName"] == "inbox")
            session = c.post(f"/admin/exchange/mailboxes/{dst['id']}/createImportSession").json()
            prefix = f'{{"FolderId":"{inbox}","Mode":"create","Data":"'.encode()
            length = len(prefix) + span[1] - span[0] + 2
            started = time.perf_counter()
            r = httpx.post(
                session["importUrl"],
                content=_body(prefix, saved, span),
                headers={"Content-Type": "application/json", "Content-Length": str(length)},
                timeout=600,
            )
            import_s = time.perf_counter() - started
            r.raise_for_status()
        grown = _rss_mb() - base
        mb = LARGE_ATTACHMENT / 1e6
        print(f"item: {mb:.0f} MB ({(span[1] - span[0]) / 1e6:.0f} MB of base64)")
        print(f"export: {mb / export_s:.0f} MB/s; import: {mb / import_s:.0f} MB/s")
        share = grown / mb
        print(
            f"peak memory growth (sandbox and client, one process): {grown:.0f} MB = {share:.2f} of the item"
        )


if __name__ == "__main__":
    main()

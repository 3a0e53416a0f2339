"""Azurite (Microsoft's Azure Storage emulator, from the npm registry) on loopback, for rehearsals of the
bulk file engine: the blob service stands in for the staging account and SharePoint's provided containers,
the queue service for the migration report queue.

Found in the project's `.tools/node_modules/.bin` (where `make test` installs it) or on PATH. Each run gets
free ports, a data directory of its own and a freshly generated account key (never Azurite's published
development key), handed to the client through the environment only.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "trustfold"


@dataclass(frozen=True)
class Azurite:
    blob_url: str  # http://127.0.0.1:PORT/trustfold (https://... with OAuth)
    queue_url: str
    account: str
    key: str  # base64 account key: the sandbox's SharePoint side, and the key-signed rehearsal only
    ca_file: str | None = None  # set when served over HTTPS (OAuth): the CA clients verify against

    def env(self) -> dict[str, str]:
        """What the trustfold CLI reads to stage into this Azurite (see files/bulk/staging.py): over
        HTTPS with OAuth, the storage URL and the CA only (the operator's token gets a user delegation key);
        over plain HTTP, the rehearsal-only account key as well."""
        if self.ca_file:
            return {"TRUSTFOLD_STAGING_URL": self.blob_url, "TRUSTFOLD_STAGING_CA": self.ca_file}
        return {
            "TRUSTFOLD_STAGING_URL": self.blob_url,
            "TRUSTFOLD_STAGING_REHEARSAL_KEY": self.key,
        }


def executable() -> str | None:
    local = ROOT / ".tools" / "node_modules" / ".bin" / "azurite"
    if local.exists() and shutil.which("node"):
        return str(local)
    return shutil.which("azurite")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, proc: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"azurite exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("azurite did not start within 30 s")


@contextlib.contextmanager
def running_azurite(
    location: Path | None = None, *, tls: tuple[Path, Path, Path] | None = None
) -> Iterator[Azurite]:
    """Azurite on loopback. With `tls` (CA file, certificate, key) it serves HTTPS and accepts OAuth bearer
    tokens (`--oauth basic`: audience, issuer and lifetime checked, not the signature), which is what Get
    User Delegation Key needs."""
    exe = executable()
    if exe is None:
        raise FileNotFoundError("azurite not found (make test installs it into .tools/ when npm exists)")
    key = base64.b64encode(os.urandom(64)).decode()
    blob, queue, table = _free_port(), _free_port(), _free_port()
    with contextlib.ExitStack() as stack:
        where = location or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="azurite-")))
        cmd = [
            exe,
            "--silent",
            "--location", str(where),
            "--blobHost", "127.0.0.1", "--blobPort", str(blob),
            "--queueHost", "127.0.0.1", "--queuePort", str(queue),
            "--tableHost", "127.0.0.1", "--tablePort", str(table),
            # azure-storage-blob 12.31 sends an x-ms-version newer than Azurite 3.37 knows; the features
            # used (block blobs, snapshots, metadata, SAS, queues) are all older than both.
            "--skipApiVersionCheck",
        ]  # fmt: skip
        if tls is not None:
            cmd += ["--oauth", "basic", "--cert", str(tls[1]), "--key", str(tls[2])]
        scheme = "https" if tls is not None else "http"
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, "AZURITE_ACCOUNTS": f"{ACCOUNT}:{key}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait(blob, proc)
            _wait(queue, proc)
            yield Azurite(
                f"{scheme}://127.0.0.1:{blob}/{ACCOUNT}",
                f"{scheme}://127.0.0.1:{queue}/{ACCOUNT}",
                ACCOUNT,
                key,
                str(tls[0]) if tls is not None else None,
            )
        finally:
            proc.terminate()
            try:
                proc.wait(3)  # its data is throwaway: no need to wait for idle keep-alive connections
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def rehearsal_storage(sandbox_url: str) -> Iterator[Azurite | None]:
    """For `trustfold demo`: when Azurite is installed, start it, hand it to the sandbox's SharePoint and to
    the migration commands (environment), so academies whose files engine is `auto` or `migration-api` use
    the Migration API; without Node/Azurite, yield None and the demo stays on the Graph engine."""
    if executable() is None:
        yield None
        return
    import httpx

    with running_azurite() as az:
        body = {"blob_url": az.blob_url, "queue_url": az.queue_url, "account": az.account, "key": az.key,
                "ca_file": az.ca_file}  # fmt: skip
        httpx.post(
            f"{sandbox_url}/sandbox/migration", json={**body, "rate": 2000}, timeout=30
        ).raise_for_status()
        saved = {k: os.environ.get(k) for k in az.env()}
        os.environ.update(az.env())
        try:
            yield az
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

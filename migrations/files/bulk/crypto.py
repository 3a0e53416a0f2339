"""AES-256-CBC for Migration API packages, streamed.

Microsoft's rule (migration-azure.md, migration-api-encryption.md): with CreateMigrationJobEncrypted every
file of the package, manifests included, is encrypted with AES-256-CBC under the job's key, each with its own
cryptographically random IV stored on the blob as the metadata property `IV` (base64). The queue messages
SharePoint writes back are encrypted with the same key; each carries its own IV.

Padding is PKCS7 (what .NET's AesCryptoServiceProvider, the API's reference client, uses by default).
Everything here works on chunks, so memory stays flat whatever the file size.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_BYTES = 32
IV_BYTES = 16


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def new_iv() -> bytes:
    return os.urandom(IV_BYTES)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


class Encryptor:
    """Feed plaintext chunks, get ciphertext chunks; `finish()` pads and closes."""

    def __init__(self, key: bytes, iv: bytes) -> None:
        if len(key) != KEY_BYTES or len(iv) != IV_BYTES:
            raise ValueError("AES-256-CBC needs a 32-byte key and a 16-byte IV")
        self._enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        self._pad = padding.PKCS7(128).padder()

    def update(self, chunk: bytes) -> bytes:
        return self._enc.update(self._pad.update(chunk))

    def finish(self) -> bytes:
        return self._enc.update(self._pad.finalize()) + self._enc.finalize()


class Decryptor:
    def __init__(self, key: bytes, iv: bytes) -> None:
        self._dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        self._unpad = padding.PKCS7(128).unpadder()

    def update(self, chunk: bytes) -> bytes:
        return self._unpad.update(self._dec.update(chunk))

    def finish(self) -> bytes:
        """Raises ValueError when the padding is wrong (wrong key, IV or a damaged blob)."""
        return self._unpad.update(self._dec.finalize()) + self._unpad.finalize()


def encrypted_size(plain: int) -> int:
    """PKCS7 always adds 1..16 bytes."""
    return (plain // IV_BYTES + 1) * IV_BYTES


def encrypt_chunks(chunks: Iterable[bytes], key: bytes, iv: bytes) -> Iterator[bytes]:
    enc = Encryptor(key, iv)
    for chunk in chunks:
        out = enc.update(chunk)
        if out:
            yield out
    yield enc.finish()


async def aencrypt_chunks(chunks: AsyncIterator[bytes], key: bytes, iv: bytes) -> AsyncIterator[bytes]:
    enc = Encryptor(key, iv)
    async for chunk in chunks:
        out = enc.update(chunk)
        if out:
            yield out
    yield enc.finish()


def decrypt_chunks(chunks: Iterable[bytes], key: bytes, iv: bytes) -> Iterator[bytes]:
    dec = Decryptor(key, iv)
    for chunk in chunks:
        out = dec.update(chunk)
        if out:
            yield out
    yield dec.finish()


def encrypt_bytes(data: bytes, key: bytes, iv: bytes) -> bytes:
    return b"".join(encrypt_chunks([data], key, iv))


def decrypt_bytes(data: bytes, key: bytes, iv: bytes) -> bytes:
    return b"".join(decrypt_chunks([data], key, iv))


def encrypt_message(event: dict[str, Any], job_id: str, key: bytes) -> str:
    """A queue message as SharePoint writes it for an encrypted job: Label, JobId, IV, Content (base64)."""
    iv = new_iv()
    content = encrypt_bytes(json.dumps(event).encode("utf-8"), key, iv)
    return json.dumps({"Label": "Encrypted", "JobId": job_id, "IV": b64(iv), "Content": b64(content)})


def decrypt_message(text: str, key: bytes) -> dict[str, Any]:
    """The event inside an encrypted queue message; a plain (unencrypted) event is returned as it is."""
    body = json.loads(text)
    if body.get("Label") != "Encrypted":
        return dict(body)
    plain = decrypt_bytes(unb64(body["Content"]), key, unb64(body["IV"]))
    event = json.loads(plain.decode("utf-8"))
    event.setdefault("JobId", body.get("JobId"))
    return dict(event)

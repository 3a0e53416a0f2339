"""The file transfer's retries and content checks, against scripted answers (no sandbox, no sleeps beyond
Retry-After: 0): one retry layer (the connection's tenacity policy) for pre-authenticated URLs, and a
replacement whose content does not match the source's is not kept."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from migrations.files.transfer import CopyDiscarded, CopyError, Counters, FileCopier, UploadSessions
from migrations.graph.client import GraphResponse, TenantConnection

Handler = Callable[[str, str, Any], GraphResponse]


class ScriptedConnection(TenantConnection):
    """A TenantConnection whose Graph answers come from `handler` (the retry layer above it is real)."""

    def __init__(self, handler: Handler, raw: httpx.AsyncClient):
        super().__init__("tenant", "target", "http://127.0.0.1/v1.0", None, None, raw, (1000, 1.0), 30.0)  # type: ignore[arg-type]
        self.handler = handler
        self.calls: list[tuple[str, str]] = []

    async def _send_once(
        self,
        method: str,
        url: str,
        body: Any,
        headers: Any,
        content: Any = None,
        cost: int | None = None,
        pause: bool = True,
        gate: Any = None,
    ) -> GraphResponse:
        self.calls.append((method, self.relative(url)))
        return self.handler(method, self.relative(url), body)


class NoBudget:
    """The SharePoint budget's spending interface with no limit (these tests script every answer)."""

    @contextlib.asynccontextmanager
    async def spend(self, tenant_id: str, ru: int) -> AsyncIterator[float]:
        yield 0.0


def _copier(
    tmp_path: Any, source: Handler, target: Handler, upload: Callable[[httpx.Request], httpx.Response]
) -> FileCopier:
    raw = httpx.AsyncClient(transport=httpx.MockTransport(upload))
    return FileCopier(
        ScriptedConnection(source, raw),
        ScriptedConnection(target, raw),
        NoBudget(),  # type: ignore[arg-type]
        UploadSessions(tmp_path / "sessions.json"),
        Counters(),
    )


ARGS = {
    "source_drive": "s",
    "source_id": "f1",
    "target_drive": "d",
    "path": "Policies/Empty.txt",
    "replace_id": "r1",
}


def _source(method: str, path: str, body: Any) -> GraphResponse:
    return GraphResponse(
        200, {}, {"id": "f1", "size": 0, "cTag": "c1", "file": {"hashes": {"quickXorHash": "AAAA"}}}
    )


def _target_with(hash_: str, seen: list[str]) -> Handler:
    def answer(method: str, path: str, body: Any) -> GraphResponse:
        seen.append(f"{method} {path}")
        if method == "DELETE":
            return GraphResponse(204, {}, None)
        return GraphResponse(200, {}, {"id": "r1", "size": 0, "file": {"hashes": {"quickXorHash": hash_}}})

    return answer


def test_a_replacement_whose_hash_differs_is_deleted_when_ours(tmp_path: Any) -> None:
    seen: list[str] = []
    copier = _copier(tmp_path, _source, _target_with("BBBB", seen), lambda r: httpx.Response(500))
    with pytest.raises(CopyDiscarded, match="differs from the source"):
        asyncio.run(copier.copy("copy:k", ARGS, "p", "Empty.txt", ours=True))
    assert "DELETE /drives/d/items/r1" in seen


def test_a_mismatched_replacement_of_a_file_not_ours_is_named_not_deleted(tmp_path: Any) -> None:
    seen: list[str] = []
    copier = _copier(tmp_path, _source, _target_with("BBBB", seen), lambda r: httpx.Response(500))
    with pytest.raises(CopyError, match="not created by trustfold"):
        asyncio.run(copier.copy("copy:k", ARGS, "p", "Empty.txt", ours=False))
    assert not any(s.startswith("DELETE") for s in seen)


def test_a_matching_replacement_is_kept(tmp_path: Any) -> None:
    seen: list[str] = []
    copier = _copier(tmp_path, _source, _target_with("AAAA", seen), lambda r: httpx.Response(500))
    item = asyncio.run(copier.copy("copy:k", ARGS, "p", "Empty.txt", ours=True))
    assert item["id"] == "r1" and not any(s.startswith("DELETE") for s in seen)


def test_upload_fragments_retry_through_the_connection_policy(tmp_path: Any) -> None:
    """503 and 429 from an upload URL are retried (Retry-After honoured and counted), then the fragment
    lands; a fragment refused for good fails the copy with its status."""
    answers = [
        httpx.Response(503, headers={"Retry-After": "0"}),
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(202, json={"nextExpectedRanges": ["10-"]}),
    ]
    copier = _copier(tmp_path, _source, _source, lambda r: answers.pop(0))
    nxt, final = asyncio.run(copier._put("http://127.0.0.1/_upload/x", 0, b"0123456789", 20))
    assert (nxt, final) == (10, None) and answers == []
    assert copier.counters.bytes_sent == 30  # three attempts on the wire

    refused = _copier(tmp_path, _source, _source, lambda r: httpx.Response(400, text="bad range"))
    with pytest.raises(CopyError, match="answered 400"):
        asyncio.run(refused._put("http://127.0.0.1/_upload/x", 0, b"0123456789", 20))


def test_upload_status_gives_up_after_the_policy_s_attempts(tmp_path: Any) -> None:
    calls = []

    def always_503(r: httpx.Request) -> httpx.Response:
        calls.append(r)
        return httpx.Response(503, headers={"Retry-After": "0"})

    copier = _copier(tmp_path, _source, _source, always_503)
    with pytest.raises(CopyError, match="kept failing"):
        asyncio.run(copier._status("http://127.0.0.1/_upload/x"))
    assert len(calls) == 8


NEW = {"source_drive": "s", "source_id": "f1", "target_drive": "d", "path": "Policies/Empty.txt"}


def _lost_put_then(found: GraphResponse, seen: list[str]) -> Handler:
    """A target whose first PUT of the new empty file is applied but answered 504 (its answer lost);
    reading the name back answers `found`; a PUT after that is answered 201."""

    def answer(method: str, path: str, body: Any) -> GraphResponse:
        seen.append(method)
        if method == "PUT":
            if seen.count("PUT") == 1:
                return GraphResponse(504, {}, {"error": {"code": "GatewayTimeout", "message": ""}})
            made = {"id": "n2", "size": 0, "file": {"hashes": {"quickXorHash": "AAAA"}}}
            return GraphResponse(201, {}, made)
        return found

    return answer


def test_a_new_empty_file_whose_answer_was_lost_is_read_back_not_sent_into_a_409(tmp_path: Any) -> None:
    """The PUT (conflictBehavior=fail) may have made the file: the name is read back and the empty file
    there is the copy; it is not sent again (which would answer 409 and fail the step)."""
    seen: list[str] = []
    landed = GraphResponse(200, {}, {"id": "n1", "size": 0, "file": {"hashes": {"quickXorHash": "AAAA"}}})
    copier = _copier(tmp_path, _source, _lost_put_then(landed, seen), lambda r: httpx.Response(500))
    item = asyncio.run(copier.copy("copy:k", NEW, "p", "Empty.txt"))
    assert item["id"] == "n1" and seen.count("PUT") == 1


def test_a_lost_empty_file_that_did_not_land_is_sent_again(tmp_path: Any) -> None:
    seen: list[str] = []
    absent = GraphResponse(404, {}, {"error": {"code": "itemNotFound", "message": ""}})
    copier = _copier(tmp_path, _source, _lost_put_then(absent, seen), lambda r: httpx.Response(500))
    item = asyncio.run(copier.copy("copy:k", NEW, "p", "Empty.txt"))
    assert item["id"] == "n2" and seen.count("PUT") == 2


def test_a_lost_empty_file_whose_name_holds_another_file_fails_the_copy(tmp_path: Any) -> None:
    seen: list[str] = []
    other = GraphResponse(200, {}, {"id": "x", "size": 12, "file": {}})
    copier = _copier(tmp_path, _source, _lost_put_then(other, seen), lambda r: httpx.Response(500))
    with pytest.raises(CopyError, match="already exists in the target"):
        asyncio.run(copier.copy("copy:k", NEW, "p", "Empty.txt"))
    assert seen.count("PUT") == 1


def test_a_lost_empty_file_made_by_another_app_is_not_taken_for_ours(tmp_path: Any) -> None:
    """The empty file under the name names another application as its creator (createdBy): it is not this
    copy's, so the step fails rather than adopt (and later roll back) someone else's file."""
    seen: list[str] = []
    theirs = GraphResponse(
        200,
        {},
        {"id": "x", "size": 0, "file": {}, "createdBy": {"application": {"id": "someone-else"}}},
    )
    target = _lost_put_then(theirs, seen)
    copier = _copier(tmp_path, _source, target, lambda r: httpx.Response(500))
    copier.target.app_id = "5a4d0b0e-0000-4000-8000-000000000001"
    with pytest.raises(CopyError, match="already exists in the target"):
        asyncio.run(copier.copy("copy:k", NEW, "p", "Empty.txt"))
    mine = GraphResponse(
        200,
        {},
        {
            "id": "n1",
            "size": 0,
            "file": {"hashes": {"quickXorHash": "AAAA"}},
            "createdBy": {"application": {"id": copier.target.app_id}},
        },
    )
    seen.clear()
    (tmp_path / "again").mkdir()
    again = _copier(tmp_path / "again", _source, _lost_put_then(mine, seen), lambda r: httpx.Response(500))
    again.target.app_id = copier.target.app_id
    assert asyncio.run(again.copy("copy:k", NEW, "p", "Empty.txt"))["id"] == "n1"

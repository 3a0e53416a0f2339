"""The import check, the Graph engine's own: every item a job imported is read back through Graph (one
children listing per folder) and matched by size and quickXorHash before its done outcome, which carries its
file_copies row; anything else fails with SharePoint's reason and a finding per item."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from migrations.core.steps import Outcome, Step
from migrations.files.bulk import ledger
from migrations.files.bulk.context import BulkContext
from migrations.graph.client import GraphError


async def verify(
    ctx: BulkContext, pid: str, drive: str, data: dict[str, Any], progress: Callable[[], None]
) -> None:
    by_guid = {v["id"]: k for k, v in data["files"].items()}
    errors = {by_guid.get(k, k): v for k, v in data.get("errors", {}).items()}
    warnings = {by_guid.get(k, k): v for k, v in data.get("warnings", {}).items()}
    findings = []
    listings: dict[str, dict[str, dict[str, Any]]] = {}
    for raw in data["steps"]:
        step = Step(raw["key"], raw["op"], raw["args"])
        a = step.args
        folder, _, name = a["path"].rpartition("/")
        if folder not in listings:
            # One listing per folder (2 RU a page) instead of one GET per file: the check costs little.
            listings[folder] = await children(ctx, a["target_drive"], folder)
        item = listings[folder].get(name.lower(), {})
        found = bool(item)
        got = ((item.get("file") or {}).get("hashes") or {}).get("quickXorHash")
        if warnings.get(step.key):
            findings.append(("import-warning", a, warnings[step.key], "imported; SharePoint warned"))
        if found and int(item.get("size") or 0) == int(a["size"]) and got == a["hash"]:
            created = not a.get("replace_id") or was_created(ctx, a)
            # The done outcome carries its file_copies row: journal and record commit together.
            out = ctx.record(step, item, created, False)
            out.data["bytes"] = int(item.get("size") or 0)
            ctx.counters.files_done += 1
            ctx.counters.bytes_done += int(a["size"])
            ledger.finish(ctx, step, out, progress)
        else:
            why = (
                errors.get(step.key)
                or errors.get("job")
                or (
                    "imported content differs from the source (size/quickXorHash)"
                    if found
                    else "not imported"
                )
            )
            findings.append(("import-error", a, why, "not copied; the next run tries again"))
            ledger.finish(ctx, step, Outcome("failed", None, {}, f"Migration API: {why}"), progress)
    if findings:
        with ctx.store.tx() as tx:
            tx.executemany(
                "INSERT OR REPLACE INTO file_findings "
                "(academy, kind, object_id, display, message, handling) VALUES (?, ?, ?, ?, ?, ?)",
                [(ctx.code, k, a["source_id"], a["path"], m, h) for k, a, m, h in findings],
            )
    ledger.save(ctx, pid, drive, "done", data)
    await ledger.cleanup(ctx, pid, data)


async def children(ctx: BulkContext, drive: str, folder: str) -> dict[str, dict[str, Any]]:
    """A folder's children in the trust tenant by lower-cased name (every page)."""
    target, budget = ctx.target, ctx.budget
    path = f"/drives/{drive}/root:/{quote(folder)}:/children" if folder else f"/drives/{drive}/root/children"
    out: dict[str, dict[str, Any]] = {}
    url: str | None = path
    while url:
        async with budget.spend(target.tenant_id, 2):
            resp = await target.request("GET", url, counts_as_write=False)
        if resp.status == 404:
            return out
        if not resp.ok:
            raise GraphError("GET", url, resp)
        for it in resp.body.get("value", []):
            out[str(it["name"]).lower()] = dict(it)
        url = resp.body.get("@odata.nextLink")
    return out


def was_created(ctx: BulkContext, a: dict[str, Any]) -> bool:
    rec = ctx.store.rows(
        "SELECT created FROM file_copies WHERE academy = ? AND drive_key = ? AND source_id = ?",
        (ctx.code, a["drive_key"], a["source_id"]),
    )
    return bool(rec and rec[0]["created"])

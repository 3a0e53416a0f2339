"""The mail phase (after users): discover, plan, run (journaled item by item, resumable), verify, rollback.

Each planned step is one mailbox; the run copies every planned mailbox side by side (each within its own
Outlook window, graph/mailbox_window.py), folder by folder and item by item (mail/transfer.py). A second run
is an incremental pass: each folder's item delta from its stored link brings new items (created), changed
ones (updated in place) and deletions (reported; propagated with --propagate-deletes).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from migrations.core.basis import with_basis
from migrations.core.journal import Journal
from migrations.core.plan import Plan
from migrations.core.registry import PhaseEnv, PhaseRun, register_phase
from migrations.core.runs import Metrics, phase_run
from migrations.core.steps import Step, UndoStep
from migrations.core.undo import UndoRules, carry_out, undo_steps
from migrations.graph.client import GraphError
from migrations.graph.mailbox_window import MailboxWindows
from migrations.mail import ops, records, shared
from migrations.mail.discovery import DISCOVERY_FINDINGS, Discovered, class_counts, discover_mail
from migrations.mail.records import PHASE
from migrations.mail.transfer import Copier, MailCounts
from migrations.mail.verify import verify_mail

assert ops  # registers the phase's operations


class MailPhase:
    name = PHASE

    def _windows(self, env: PhaseEnv) -> MailboxWindows:
        windows = env.options.get("_mail_windows")
        if not isinstance(windows, MailboxWindows):
            windows = MailboxWindows()
            env.options["_mail_windows"] = windows
        return windows

    async def _discover(self, env: PhaseEnv, save: bool) -> Discovered:
        code = env.academy.code
        found = await discover_mail(
            env.store,
            code,
            env.conns.source(code),
            env.conns.target,
            self._windows(env),
            env.academy,
            env.options.pop("_mail_target_settings", None),
        )
        # Each source folder's count as just read: the run straight after (same command) decides from these
        # which never-read folders hold something, instead of listing every mailbox's folders again. Mail
        # landing in an empty folder in the seconds between is carried by the next pass (verify names it),
        # as mail landing after the run's own read always was.
        env.options["_mail_folder_counts"] = {
            m.source_mailbox: {f.source_folder: f.items for f in rows} for m, rows in found.mailboxes
        }
        if save:
            for m, rows in found.mailboxes:
                records.save_mailbox(env.store, code, m, {"classes": class_counts(rows)})
                records.save_folders(env.store, code, m.source_mailbox, rows)
            # Discovery's findings describe the tenants as they are now (a mailbox since provisioned).
            records.clear_findings(env.store, code, DISCOVERY_FINDINGS)
            for kind, oid, display, message, handling in found.findings:
                records.add_finding(env.store, code, kind, oid, display, message, handling)
        return found

    async def discover(self, env: PhaseEnv) -> dict[str, int]:
        found = (await self._discover(env, save=True)).mailboxes
        return {
            "mailboxes": len(found),
            "mail_items": sum(m.items for m, _ in found),
            "mail_folders": sum(len(rows) for _, rows in found),
        }

    async def plan(self, env: PhaseEnv) -> Plan:
        code = env.academy.code
        discovered = await self._discover(env, save=not env.options.get("review"))
        found = discovered.mailboxes
        steps: list[Step] = []
        notes: list[str] = []
        for m, rows in found:
            if not m.target_mailbox:
                if m.kind != "shared":  # a shared mailbox's own finding says why it waits
                    notes.append(
                        f"{m.display}: the trust user has no mailbox yet; its mail waits for the next pass"
                    )
                continue
            steps.append(
                Step(
                    f"mailbox:{m.source_mailbox}",
                    "mail-mailbox",
                    {
                        "source_mailbox": m.source_mailbox,
                        "target_mailbox": m.target_mailbox,
                        "display": m.display,
                        "folders": len(rows),
                        "items": m.items,
                    },
                )
            )
        if not found:
            notes.append(f"no mailboxes found for {code}'s mapped people")
        # What is not carried, and shared mailboxes waiting for the trust's, stand in the plan the operator
        # approves, each with its rule (names pass through safety before any terminal shows them).
        named = {n.source for n in shared.named(env.academy)}
        for kind, oid, display, message, handling in discovered.findings:
            if handling == "not carried" or oid in named:
                notes.append(f"{kind} ({handling}): {display}: {message}")
        return with_basis(Plan(code, PHASE, steps, notes), env)

    async def run(self, env: PhaseEnv, plan: Plan, *, concurrency: int) -> PhaseRun:
        code = env.academy.code
        source, target = env.conns.source(code), env.conns.target
        windows = self._windows(env)
        async with phase_run(
            env.store, code, PHASE, "run", env.operator, plan_id=plan.id, planned=len(plan.steps)
        ) as run:
            journal = Journal(env.store, run.run_id, code, PHASE, plan.id)
            state = Journal.state(env.store, code, PHASE)
            metrics = Metrics(env.store, run.run_id)
            started = time.monotonic()
            copier = Copier(
                env.store,
                code,
                journal,
                source,
                target,
                windows,
                run.tally,
                bool(env.options.get("propagate_deletes")),
                in_doubt={k for k, v in state.items() if v["event"] == "intent"},
                counts_now=env.options.pop("_mail_folder_counts", None),
            )
            counts = copier.counts

            def progress() -> None:
                metrics.sample({"items_done": counts.items + counts.updated, "mail_bytes": counts.bytes})

            copier.progress = progress

            def measure() -> dict[str, Any]:
                return {
                    "planned": len(plan.steps),
                    **run.tally.counts(),
                    **_counts(counts),
                    "seconds": round(time.monotonic() - started, 3),
                }

            run.measure = measure
            by_box = {m.source_mailbox: m for m in records.mailboxes(env.store, code)}
            gate = asyncio.Semaphore(max(1, concurrency))

            async def one(step: Step) -> None:
                m = by_box.get(step.args["source_mailbox"])
                if m is None or not m.target_mailbox:
                    return
                async with gate:
                    try:
                        await copier.copy_mailbox(m, records.folders(env.store, code, m.source_mailbox))
                    except GraphError as exc:
                        # One mailbox's failure never stops the others.
                        run.tally.fail(step.describe(), str(exc))

            async with asyncio.TaskGroup() as group:
                for step in plan.steps:
                    group.create_task(one(step))
        return run.outcome(run.tally.failures, list(plan.notes))

    async def verify(self, env: PhaseEnv) -> dict[str, Any]:
        code = env.academy.code
        if not env.store.rows(
            "SELECT 1 FROM runs WHERE academy = ? AND phase = ? AND kind = 'run'", (code, PHASE)
        ):
            return {"checked": 0, "differences": [], "note": "the mail phase has not run for this academy"}
        return await verify_mail(
            env.store, code, env.conns.source(code), env.conns.target, self._windows(env)
        )

    async def rollback_steps(self, env: PhaseEnv) -> list[Any]:
        return undo_steps(env.store, env.academy.code, PHASE)

    async def rollback(self, env: PhaseEnv, steps: list[Any], *, purge: bool) -> PhaseRun:
        code = env.academy.code
        ctx = ops.UndoContext(code, env.conns.target, self._windows(env), env.store)
        async with phase_run(env.store, code, PHASE, "rollback", env.operator, planned=len(steps)) as run:
            await carry_out(
                env.store, code, run.run_id, steps, ctx, _Rules(), concurrency=4, result=run.tally
            )
        return run.outcome(run.tally.failures, run.tally.kept_notes())


class _Rules(UndoRules):
    errors = (GraphError,)

    def stages(self, steps: list[UndoStep]) -> list[list[UndoStep]]:
        # Items first, then folders deepest first: a folder goes only once what trustfold put in it has.
        items = [s for s in steps if s.op != "mail-folder"]
        folders = [s for s in steps if s.op == "mail-folder"]
        depths = sorted({s.args.get("path", "").count("/") for s in folders}, reverse=True)
        return [items] + [[s for s in folders if s.args.get("path", "").count("/") == d] for d in depths]

    def failed(self, step: UndoStep, message: str) -> dict[str, str]:
        return {"step": step.describe(), "message": message}

    def kept(self, step: UndoStep, outcome: Any) -> dict[str, str] | None:
        return {
            "step": step.key,
            "object": f"{step.args.get('mailbox', '')}: {step.args.get('path', '')}",
            "message": outcome.message,
        }


def _counts(c: MailCounts) -> dict[str, Any]:
    return {
        "mail_items": c.items,
        "mail_updated": c.updated,
        "mail_bytes": c.bytes,
        "mail_reconciled": c.reconciled,
        "mail_not_carried": c.skipped,
        "mail_deletions_seen": c.deletions_seen,
        "mail_deleted": c.deleted,
        "requests": c.requests,
        "export_requests": c.export_requests,
    }


register_phase(MailPhase())

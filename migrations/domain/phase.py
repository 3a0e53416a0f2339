"""The domain phase: discover -> plan -> run (checkpointed at DNS) -> verify -> rollback (checkpointed too).

Run order: legacy default domain moved to onmicrosoft.com; legacy users renamed onto it (batched, within the
write budget); the domain removed from the legacy tenant (waited for); added to the trust tenant, whose TXT
record is printed and written to a DNS change file; the run stops with status waiting-for-dns (exit 0). The
next run verifies it (polling with backoff within --dns-wait) and switches trust users' sign-in names when
the academy keeps its domain.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from migrations.core.basis import with_basis
from migrations.core.errors import PlanningError
from migrations.core.journal import Journal
from migrations.core.plan import Plan
from migrations.core.registry import PhaseEnv, PhaseRun, register_phase
from migrations.core.runs import RunRecord, phase_run
from migrations.core.steps import Step, UndoStep
from migrations.core.undo import undo_steps
from migrations.domain import runbook
from migrations.domain.executor import Executor
from migrations.domain.plan import PHASE, plan_domain
from migrations.domain.steps import (
    OPS,
    DomainError,
    RemovalPending,
    Tenants,
    _add,
    _domain,
    verify_with_backoff,
    wait_removed,
)
from migrations.domain.verify import verify_domain

log = logging.getLogger("trustfold.domain")
FORWARD_ORDER = ("set-default", "rename-user", "remove-domain", "add-domain", "verify-domain", "switch-upn")


class DomainPhase:
    name = PHASE

    def _tenants(self, env: PhaseEnv) -> Tenants:
        say = env.options.get("say") or (lambda m: log.info("%s", m))
        return Tenants(env.conns.source(env.academy.code), env.conns.target, say)

    def _opts(self, env: PhaseEnv) -> dict[str, Any]:
        return {
            "dns_wait": float(env.options.get("dns_wait") or 60),
            # Within one run; Microsoft's removal can take up to 24 hours, so the phase then checkpoints.
            "removal_wait": float(env.options.get("removal_wait") or 60),
            "removal_requested": runbook.removals_pending(env.store, env.academy.code),
            "txt": {},
        }

    def _removal_checkpoint(
        self, env: PhaseEnv, journal: Journal, step: Step, kind: str, run: RunRecord, exc: RemovalPending
    ) -> str:
        """The legacy tenant is still removing the domain: journal it (the next run does not ask again,
        rollback knows to wait for it), record waiting-for-removal with since-when, and say what to do."""
        journal.intents([step], event="accepted")
        since = runbook.removals_pending(env.store, env.academy.code).get(exc.name, "")
        again = (
            f"trustfold run {env.academy.code} --phase domain"
            if kind == "run"
            else f"trustfold rollback {env.academy.code} --phase domain --yes"
        )
        runbook.record(
            env.store,
            env.academy.code,
            "waiting-for-removal",
            f"{'rollback: ' if kind == 'rollback' else ''}{exc.name} is being removed from the legacy tenant "
            f"(requested {since})",
            waiting_since=since,
            removal={"domain": exc.name, "since": since},
            last_run=run.run_id,
        )
        run.status = "waiting-for-removal"
        return (
            f"{exc.name}: the legacy tenant accepted its removal at {since} and is still carrying it out "
            "(Microsoft: up to 24 hours); legacy users sign in with their onmicrosoft.com names meanwhile; "
            f"run `{again}` again later"
        )

    async def plan(self, env: PhaseEnv) -> Plan:
        t = self._tenants(env)
        plan, facts = await plan_domain(env.trust, env.academy, env.store, t.legacy, t.trust)
        plan.context = facts
        return with_basis(plan, env)

    # ---- run ----------------------------------------------------------------------------------------------
    async def run(self, env: PhaseEnv, plan: Plan, *, concurrency: int) -> PhaseRun:
        code = env.academy.code
        # Stopped at the DNS checkpoint last time (from the runs table: `plan` rewrites the phase status).
        before = "waiting-for-dns" if runbook.announced(env.store, code, "run") else ""
        # The phase keeps its own statuses: waiting-for-dns, and the runbook in their detail.
        async with phase_run(
            env.store,
            code,
            PHASE,
            "run",
            env.operator,
            plan_id=plan.id,
            planned=len(plan.steps),
            own_status=True,
        ) as run:
            return await self._run(env, plan, run, before)

    async def _run(self, env: PhaseEnv, plan: Plan, run: RunRecord, before: str) -> PhaseRun:
        code, run_id = env.academy.code, run.run_id
        if before != "waiting-for-dns":
            runbook.record(env.store, code, "running", None, last_run=run_id, plan=plan.id)
        journal = Journal(env.store, run_id, code, PHASE, plan.id)
        t = self._tenants(env)
        opts = self._opts(env)
        total = len(plan.steps)
        ex = Executor(
            env.store,
            journal,
            t,
            opts,
            lambda n: env.progress and env.progress(ex.result.done + ex.result.already, total),
        )
        run.measure = lambda: self._counts(plan, ex)
        notes = list(plan.notes)
        try:
            await ex.settle(plan.steps, Journal.state(env.store, code, PHASE), forward=True)
            history = Journal.state(env.store, code, PHASE)

            def todo(op: str) -> list[Step]:
                return [s for s in plan.steps if s.op == op and history.get(s.key, {}).get("event") != "done"]

            blocked = [f for f in (plan.context or []) if f.exchange_owned and f.in_legacy]
            if blocked:
                f = blocked[0]
                raise DomainError(
                    f"{f.domain}: {len(f.exchange_owned)} mail-enabled group(s) Exchange owns still use it "
                    f"({', '.join(f.exchange_owned[:3])}{' ...' if len(f.exchange_owned) > 3 else ''}); "
                    "change their primary SMTP address in Exchange (Set-UnifiedGroup / Set-DistributionGroup "
                    "-PrimarySmtpAddress), then run again; nothing was changed"
                )
            for step in todo("set-default"):
                await ex.single(step, True)
            renames = todo("rename-user")
            if renames:
                await ex.renames(renames, True)
                if ex.result.failed:
                    raise DomainError(
                        f"{ex.result.failed} legacy rename(s) failed ({ex.result.failures[0]['message']}); "
                        "fix the cause and run again (done renames are not repeated)"
                    )
                runbook.record(
                    env.store, code, "running", f"renamed {len(renames)} legacy user(s) to onmicrosoft.com"
                )
            for step in todo("remove-domain"):
                try:
                    await ex.single(step, True)
                except RemovalPending as exc:
                    notes.append(self._removal_checkpoint(env, journal, step, "run", run, exc))
                    return PhaseRun(
                        run_id, "waiting-for-removal", self._counts(plan, ex), ex.result.failures, notes
                    )
                runbook.record(
                    env.store, code, "running", f"{step.args['domain']} removed from the legacy tenant"
                )
            for step in todo("add-domain"):
                await ex.single(step, True)
            history = Journal.state(env.store, code, PHASE)
            domains = [s.args["domain"] for s in plan.steps if s.op == "add-domain"]
            for name in domains:
                opts["txt"][name] = history.get(f"add:{name}", {}).get("data", {}).get("txt") or await _add(
                    t.trust, name, "trust"
                )
            pending = todo("verify-domain")
            zone = env.academy.domains.dns_zone
            unattended = zone is not None and zone.verification_txt is not None
            if pending and before != "waiting-for-dns" and not unattended:
                records = [(s.args["domain"], opts["txt"][s.args["domain"]]) for s in pending]
                path = runbook.dns_change_file(
                    env.run_dir, code, records, [], f"trustfold run {code} --phase domain"
                )
                for name, text in records:
                    notes.append(f"publish TXT at {name}: {text} (TTL 3600); DNS change file: {path}")
                notes.append(f"then run `trustfold run {code} --phase domain` again to verify and continue")
                runbook.record(
                    env.store,
                    code,
                    "waiting-for-dns",
                    f"{', '.join(n for n, _ in records)} added to the trust tenant; waiting for DNS "
                    f"({', '.join(t for _, t in records)})",
                    waiting_since=time.time(),
                    dns=[{"name": n, "text": x, "action": "publish"} for n, x in records],
                    dns_file=str(path),
                    last_run=run_id,
                )
                run.status = "waiting-for-dns"
                return PhaseRun(
                    run_id, run.status, self._counts(plan, ex, records), ex.result.failures, notes
                )
            for step in pending:
                await ex.single(step, True)
                waited = runbook.dns_wait_seconds(env.store, code)
                notes.append(
                    f"{step.args['domain']} verified in the trust tenant"
                    + (
                        f", {waited / 60:.1f} min after its TXT record was issued"
                        if waited is not None
                        else ""
                    )
                )
                runbook.record(env.store, code, "running", None, dns_wait_seconds=waited)
            switches = todo("switch-upn")
            if switches:
                await ex.renames(switches, True)
                if ex.result.failed:
                    raise DomainError(
                        f"{ex.result.failed} trust sign-in name switch(es) failed "
                        f"({ex.result.failures[0]['message']}); run again"
                    )
                runbook.record(
                    env.store,
                    code,
                    "running",
                    f"{len(switches)} trust user(s) now sign in on the academy domain",
                )
            run.status = "succeeded"
        except DomainError as exc:
            # DNS not published in time leaves the phase where it was: waiting-for-dns.
            runbook.record(
                env.store,
                code,
                "waiting-for-dns" if before == "waiting-for-dns" else "failed",
                f"stopped: {exc}",
                last_run=run_id,
            )
            raise PlanningError(str(exc)) from None
        for k in ex.result.kept:
            notes.append(f"kept {k['object']}: {k['message']}")
        mail_file, mail, mail_steps, refused = await runbook.mail_change_file(
            env.run_dir, code, t.trust, [s.args["domain"] for s in plan.steps if s.op == "add-domain"]
        )
        notes += [f"mail record: {r['kind']} {r['name']} -> {r['value']}" for r in mail] + refused
        notes += [f"mail step: {x}" for x in mail_steps] + [f"DNS change file (mail records): {mail_file}"]
        runbook.record(
            env.store,
            code,
            "done",
            "domain cut-over complete",
            last_run=run_id,
            plan=plan.id,
            waiting_since=None,
            dns=[],
            mail_dns=mail,
            mail_steps=mail_steps,
            dns_file=str(mail_file),
            **self._counts(plan, ex),
        )
        return PhaseRun(run_id, run.status, self._counts(plan, ex), ex.result.failures, notes)

    @staticmethod
    def _counts(plan: Plan, ex: Executor, records: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        c: dict[str, Any] = {
            "planned": len(plan.steps),
            "done": ex.result.done,
            "already_present": ex.result.already,
            "failed": ex.result.failed,
            "renamed": sum(1 for s in plan.steps if s.op == "rename-user"),
            "switched": sum(1 for s in plan.steps if s.op == "switch-upn"),
        }
        if records:
            c["dns_records"] = [{"name": n, "type": "TXT", "text": x, "ttl": 3600} for n, x in records]
        return c

    # ---- rollback -----------------------------------------------------------------------------------------
    def _undo_steps(self, env: PhaseEnv) -> list[UndoStep]:
        """Each step's undo (domain/steps.py), the forward order reversed."""
        order = {op: i for i, op in enumerate(FORWARD_ORDER)}
        steps = undo_steps(env.store, env.academy.code, PHASE)
        return sorted(steps, key=lambda s: (-order.get(s.op, 0), s.key))

    def _undoable(self, env: PhaseEnv) -> list[Step]:
        # Carried out by the domain executor (the rollback stops for DNS half-way), as forward steps are.
        return [Step(s.key, s.op, s.args) for s in self._undo_steps(env)]

    async def rollback_steps(self, env: PhaseEnv) -> list[Any]:
        return self._undo_steps(env)

    async def rollback(self, env: PhaseEnv, steps: list[Any], *, purge: bool) -> PhaseRun:
        code = env.academy.code
        before = "waiting-for-dns" if runbook.announced(env.store, code, "rollback") else ""
        async with phase_run(env.store, code, PHASE, "rollback", env.operator, own_status=True) as run:
            return await self._rollback(env, run, before)

    async def _rollback(self, env: PhaseEnv, run: RunRecord, before: str) -> PhaseRun:
        code, run_id = env.academy.code, run.run_id
        journal = Journal(env.store, run_id, code, PHASE, None)
        t = self._tenants(env)
        opts = self._opts(env)
        ex = Executor(env.store, journal, t, opts)
        ex.undoing = True
        todo = self._undoable(env)
        run.measure = lambda: {"planned": len(todo), "done": ex.result.done}
        notes: list[str] = []
        try:
            await ex.settle(todo, Journal.state(env.store, code, PHASE), forward=False)
            todo = self._undoable(env)
            by_op: dict[str, list[Step]] = {}
            for s in todo:
                by_op.setdefault(s.op, []).append(s)
            if by_op.get("switch-upn"):
                await ex.renames(by_op["switch-upn"], False)
            for s in by_op.get("verify-domain", []):
                await ex.single(s, False)
            for s in by_op.get("add-domain", []):
                await ex.single(s, False)
                runbook.record(
                    env.store, code, "running", f"{s.args['domain']} removed from the trust tenant"
                )
            for s in by_op.get("remove-domain", []):
                name = s.args["domain"]
                current = await _domain(t.legacy, name) if name in opts["removal_requested"] else None
                if current is not None and current.get("isVerified"):
                    # Still being removed (a domain re-added by this rollback is unverified until DNS): there
                    # is no way to cancel a removal, so wait for it before adding the domain back; renaming
                    # users back onto a domain about to vanish would strand them.
                    try:
                        await wait_removed(t.legacy, name, opts["removal_wait"], t)
                    except RemovalPending as exc:
                        notes.append(self._removal_checkpoint(env, journal, s, "rollback", run, exc))
                        run.counts = {"planned": len(todo), "done": ex.result.done}
                        return PhaseRun(run_id, "waiting-for-removal", dict(run.counts), [], notes)
                text = await _add(t.legacy, name, "legacy")
                trust_txt = runbook.trust_txt(env.store, code, name)
                if before != "waiting-for-dns":
                    withdraw = [(name, trust_txt)] if trust_txt else []
                    path = runbook.dns_change_file(
                        env.run_dir,
                        code,
                        [(name, text)],
                        withdraw,
                        f"trustfold rollback {code} --phase domain --yes",
                    )
                    for n, o in withdraw:
                        notes.append(f"withdraw TXT at {n}: {o} (the trust tenant's record)")
                    notes.append(
                        f"publish TXT at {name}: {text} (the legacy tenant's record); DNS change file: {path}"
                    )
                    notes.append(f"then run `trustfold rollback {code} --phase domain --yes` again")
                    runbook.record(
                        env.store,
                        code,
                        "waiting-for-dns",
                        f"rollback: {name} added back to the legacy tenant; waiting for DNS ({text})",
                        waiting_since=time.time(),
                        dns=[{"name": name, "text": text, "action": "publish"}]
                        + [{"name": n, "text": o, "action": "withdraw"} for n, o in withdraw],
                    )
                    run.status = "waiting-for-dns"
                    run.counts = {"planned": len(todo), "done": ex.result.done}
                    return PhaseRun(
                        run_id,
                        run.status,
                        {
                            "planned": len(todo),
                            "done": ex.result.done,
                            "dns_records": [{"name": name, "type": "TXT", "text": text}],
                        },
                        [],
                        notes,
                    )
                await verify_with_backoff(t.legacy, name, text, opts["dns_wait"], t)
                ex._intents([s])
                ex._outcomes([(s, _done(name))])
            for s in by_op.get("set-default", []):
                await ex.single(s, False)
            if by_op.get("rename-user"):
                await ex.renames(by_op["rename-user"], False)
            status = "succeeded" if not ex.result.failed else "failed"
        except DomainError as exc:
            run.status, run.counts = "failed", {"planned": len(todo), "done": ex.result.done}
            runbook.record(
                env.store,
                code,
                "waiting-for-dns" if before == "waiting-for-dns" else "failed",
                f"rollback stopped: {exc}",
            )
            raise PlanningError(str(exc)) from None
        counts = {
            "planned": len(todo),
            "done": ex.result.done + ex.result.already,
            "kept": len(ex.result.kept),
            "failed": ex.result.failed,
        }
        run.status, run.counts = status, counts
        back = [s.args["domain"] for s in by_op.get("remove-domain", [])]
        mail_extra: dict[str, Any] = {}
        if back:
            # The domain is the legacy tenant's again: its mail records (DKIM back at its initial domain).
            path, mail, mail_steps, refused = await runbook.mail_change_file(
                env.run_dir, code, t.legacy, back, "legacy"
            )
            notes += [f"mail record: {r['kind']} {r['name']} -> {r['value']}" for r in mail] + refused
            notes += [f"mail step: {x}" for x in mail_steps] + [f"DNS change file (mail records): {path}"]
            mail_extra = {"mail_dns": mail, "mail_steps": mail_steps, "dns_file": str(path)}
        runbook.record(
            env.store,
            code,
            "rolled-back" if status == "succeeded" else "failed",
            "domain cut-over rolled back",
            kept=ex.result.kept,
            waiting_since=None,
            dns=[],
            **mail_extra,
        )
        notes += [f"kept {k['object']}: {k['message']}" for k in ex.result.kept]
        return PhaseRun(run_id, status, counts, ex.result.failures, notes)

    async def discover(self, env: PhaseEnv) -> None:
        """Nothing to read at discover time: this phase reads what it needs when it plans."""
        return None

    async def verify(self, env: PhaseEnv) -> dict[str, Any]:
        return await verify_domain(env, self._tenants(env))


def _done(name: str) -> Any:
    from migrations.core.steps import Outcome

    return Outcome("done", name, {"verified": True})


register_phase(DomainPhase())
assert set(OPS) <= set(FORWARD_ORDER)

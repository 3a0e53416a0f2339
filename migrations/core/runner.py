"""The runner: applies a plan's steps as one dependency graph under structured concurrency.

The rules (also in docs/runner.md):
- A step starts as soon as every step it depends on is done, in this run or journaled done before; ready
  batchable steps share a `$batch` of up to 20, so the write budget is never idle while work is ready.
- A step that fails never starts its dependants: each is recorded skipped, naming the step it waited on.
  Independent steps carry on: a failed step is data (a refused name, a missing licence) and the operator gets
  every such failure from one run.
- An exception escaping a batch (authentication refused, the state store failing, Ctrl-C) is not a step
  outcome: the TaskGroup cancels every batch in flight and the run ends. Steps sent but unanswered stay at
  `intent` and are reconciled by the next run.
- No step is dropped silently: one whose dependency is neither in the plan nor journaled done, or that sits on
  a dependency cycle, is journaled failed with the reason.
- A step in doubt (an intent without outcome, or an unclear answer) is looked up by its provenance before it
  is sent again. A look-up can miss an object created moments ago (directory replication lag covers `$filter`
  and lists too), so "not found" is asked again with backoff, bounded by `lag_tolerance` seconds.
- A write answered 404 (what it names is too new to be seen) is sent again, at most MAX_SENDS times, after
  waiting outside its concurrency slot (other steps go meanwhile): a quarter of `lag_tolerance` first, the
  wait doubling up to `lag_tolerance`, so an object that is seen a second later is not waited for four.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from tenacity import AsyncRetrying, retry_if_result, stop_after_delay, wait_exponential

from migrations.core.journal import Journal
from migrations.core.plan import Plan
from migrations.core.runs import Metrics, Tally
from migrations.core.steps import Outcome, Step, operation
from migrations.graph.client import GraphError, GraphResponse, MaybeApplied

log = logging.getLogger("trustfold.runner")
BATCH_LIMIT = 20  # Graph's $batch holds at most 20 requests
MAX_SENDS = 6  # with the waits growing 1/4, 1/2, 1, 1, 1 x lag_tolerance: about four lag_tolerances in all


def absent_wait(lag_tolerance: float, sends: int) -> float:
    """Seconds to wait before sending again a write answered 404 after `sends` earlier sends."""
    return lag_tolerance * min(1.0, 2.0 ** (sends - 2))


class StepJournal(Protocol):
    """What the runner needs of a journal: one phase's `engine.Journal`, or several routed by step."""

    def history(self) -> dict[str, dict[str, Any]]: ...

    def intents(self, steps: list[Step]) -> None: ...

    def outcomes(self, results: list[tuple[Step, Outcome]]) -> None: ...


class RunContext(Protocol):
    target: Any

    def remember(self, key: str, target_id: str | None, data: dict[str, Any]) -> None: ...


class Pace(Protocol):
    """A phase's service limits as the runner sees them (the teams phase's per-channel window): a step with
    a lane waits in its lane's queue until `room` says one more of its requests fits, and only then takes a
    slot, so a slot is never spent asleep on one lane's limit while another lane's steps could go. Steps of
    one lane go in the order they became ready."""

    def lane(self, step: Step) -> str | None: ...

    def room(self, step: Step) -> float: ...

    def claim(self, step: Step) -> Any: ...

    def release(self, claim: Any) -> None: ...

    async def pause(self, seconds: float) -> None: ...


class RoutedJournal:
    """Several phases' journals behind one: each step is journaled under the phase that owns its operation,
    so a plan spanning phases (the identity graph) resumes, verifies and rolls back like the phases run
    one by one."""

    def __init__(self, journals: dict[str, Journal], phase_of: Callable[[Step], str]):
        self.journals, self.phase_of = journals, phase_of

    def _by_phase(self, items: list[Any], step_of: Callable[[Any], Step]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for item in items:
            out.setdefault(self.phase_of(step_of(item)), []).append(item)
        return out

    def history(self) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for journal in self.journals.values():
            merged.update(journal.history())
        return merged

    def intents(self, steps: list[Step]) -> None:
        for phase, group in self._by_phase(steps, lambda s: s).items():
            self.journals[phase].intents(group)

    def outcomes(self, results: list[tuple[Step, Outcome]]) -> None:
        for phase, group in self._by_phase(results, lambda r: r[0]).items():
            self.journals[phase].outcomes(group)


def unrunnable(pending: dict[str, Step], satisfied: set[str]) -> dict[str, str]:
    """Steps that can never become ready, with why: a dependency missing from plan and journal, or a cycle
    (a step waiting, directly or not, on itself); dependants of those inherit the reason."""
    reasons: dict[str, str] = {}
    for key, step in pending.items():
        missing = [d for d in step.after if d not in pending and d not in satisfied]
        if missing:
            reasons[key] = f"depends on {missing[0]}, which is neither in the plan nor done"
    # Kahn's algorithm over what remains: whatever is never freed is on (or behind) a cycle.
    waiting = {k: {d for d in s.after if d in pending} for k, s in pending.items() if k not in reasons}
    freed = deque(k for k, deps in waiting.items() if not deps)
    dependants: dict[str, list[str]] = {}
    for k, deps in waiting.items():
        for d in deps:
            dependants.setdefault(d, []).append(k)
    seen = set()
    while freed:
        k = freed.popleft()
        seen.add(k)
        for child in dependants.get(k, []):
            waiting[child].discard(k)
            if not waiting[child]:
                freed.append(child)
    unmet = set(reasons)
    for k, deps in waiting.items():
        if k in seen:
            continue
        behind = sorted(d for d in deps if d in unmet)
        if behind:
            reasons[k] = f"depends on {behind[0]}, which cannot run"
        else:
            reasons[k] = f"dependency cycle through {sorted(deps)[0]}"
    return reasons


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The first real error of a TaskGroup's group, so callers see the exception types they expect."""
    first = group.exceptions[0]
    return first_error(first) if isinstance(first, BaseExceptionGroup) else first


class Runner:
    """Applies a plan: a dependency graph, `$batch` of up to 20 ready writes, bounded concurrency."""

    def __init__(
        self,
        plan: Plan,
        ctx: Any,
        journal: StepJournal,
        *,
        concurrency: int = 4,
        on_progress: Callable[[int, int], None] | None = None,
        metrics: Metrics | None = None,
        lag_tolerance: float = 4.0,
        tally: Tally | None = None,
        pace: Pace | None = None,
    ):
        self.plan, self.ctx, self.journal = plan, ctx, journal
        self.pace = pace
        # Ready steps that have a lane, per lane in the order they became ready (only with a pace).
        self._lanes: dict[str, deque[Step]] = {}
        self.concurrency = max(1, concurrency)
        self.on_progress = on_progress
        self.metrics = metrics
        self.lag_tolerance = max(0.0, lag_tolerance)
        self.result = tally or Tally()
        self.total = len(plan.steps)
        self._done: set[str] = set()
        self._waiting: dict[str, set[str]] = {}
        self._dependants: dict[str, list[str]] = {}
        self._ready: deque[Step] = deque()
        self._steps: dict[str, Step] = {}
        self._changed = asyncio.Event()

    # ---- progress -------------------------------------------------------------------------------------
    def _sample(self, force: bool = False) -> None:
        if self.metrics:
            self.metrics.sample(
                {
                    "items_done": self.result.done + self.result.already,
                    "throttled": self.ctx.target.stats.throttled,
                },
                force=force,
            )

    def _progress(self) -> None:
        r = self.result
        if self.on_progress:
            self.on_progress(r.done + r.already + r.failed + r.skipped, self.total)
        self._sample()

    # ---- the graph ------------------------------------------------------------------------------------
    async def run(self) -> Tally:
        history = self.journal.history()
        satisfied = {k for k, h in history.items() if h["event"] == "done"}
        in_doubt: list[Step] = []
        pending: dict[str, Step] = {}
        for step in self.plan.steps:
            h = history.get(step.key)
            if h and h["event"] == "done":
                self._done.add(step.key)
                self.ctx.remember(step.key, h["target_id"], h["data"])
                self.result.already += 1
                self.result.outcome_of[step.key] = "already"
                continue
            if h and h["event"] == "intent":
                in_doubt.append(step)
            pending[step.key] = step
        if in_doubt:
            log.info("reconciling %d step(s) left in doubt by an interrupted run", len(in_doubt))
            await self._reconcile_left(in_doubt, pending)
        self._progress()
        impossible = unrunnable(pending, satisfied | self._done)
        if impossible:
            results = [
                (pending.pop(k), Outcome("failed", message=why)) for k, why in sorted(impossible.items())
            ]
            self.journal.outcomes(results)
            for step, out in results:
                self._record_failure(step.key, out.message)
        self._steps = pending
        for key, step in pending.items():
            deps = {d for d in step.after if d in pending}
            self._waiting[key] = deps
            for d in deps:
                self._dependants.setdefault(d, []).append(key)
        for s in pending.values():
            if not self._waiting[s.key]:
                self._enqueue(s)
        await self._dispatch()
        self._sample(force=True)
        return self.result

    async def _dispatch(self) -> None:
        """Keep up to `concurrency` batches in flight, refilling from the ready queue as batches finish.

        A slot is held for one exchange, not for a step's whole life: a batch left unclear (a write answered
        404 because what it names is too new, such as a group that is not yet ready to be a team) gives its
        slot back, waits outside it, and queues to be sent again ahead of fresh work. Other steps' requests go
        meanwhile, so a bounded wait for one object never stalls the run."""
        in_flight = 0
        waiting = 0
        again: deque[tuple[list[Step], int]] = deque()

        async def one(batch: list[Step], sends: int, claim: Any = None) -> None:
            nonlocal in_flight, waiting
            try:
                unclear, absent = await self._send_once(batch)
            finally:
                in_flight -= 1
                if self.pace is not None and claim is not None:
                    self.pace.release(claim)
                self._changed.set()
            if not unclear:
                return
            if sends + 1 >= MAX_SENDS:
                for step in unclear:
                    self._failed(step.key, f"outcome unknown after {MAX_SENDS} attempts")
                self._progress()
                return
            waiting += 1
            try:
                if absent:
                    # Not found yet: the look-up was not patient, so the wait for replication is here.
                    await asyncio.sleep(absent_wait(self.lag_tolerance, sends))
                again.append((unclear, sends + 1))
            finally:
                waiting -= 1
                self._changed.set()

        try:
            async with asyncio.TaskGroup() as tg:
                while True:
                    soonest: float | None = None
                    while in_flight < self.concurrency:
                        if again or self._ready:
                            batch, sends = again.popleft() if again else (self._next_batch(), 0)
                            in_flight += 1
                            tg.create_task(one(batch, sends))
                            continue
                        picked = self._paced() if self._lanes else None
                        if not isinstance(picked, tuple):
                            soonest = picked
                            break
                        in_flight += 1
                        tg.create_task(one([picked[0]], 0, picked[1]))
                    if in_flight == 0 and waiting == 0 and not again and not self._lanes:
                        break
                    self._changed.clear()
                    await self._until_changed(soonest)
        except BaseExceptionGroup as group:
            # Siblings were cancelled; their steps stay at intent for the next run to reconcile.
            raise first_error(group) from None

    async def _until_changed(self, soonest: float | None) -> None:
        """Until a batch finishes or a waiting step is queued again, or, when every lane's window is full
        and a slot is free, until the soonest of them has room."""
        if soonest is None or self.pace is None:
            await self._changed.wait()
            return
        changed = asyncio.ensure_future(self._changed.wait())
        timer = asyncio.ensure_future(self.pace.pause(soonest))
        try:
            await asyncio.wait((changed, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (changed, timer):
                task.cancel()

    def _next_batch(self) -> list[Step]:
        first = self._ready.popleft()
        if not operation(first.op).batchable:
            return [first]
        batch = [first]
        rest: list[Step] = []
        while self._ready and len(batch) < BATCH_LIMIT:
            s = self._ready.popleft()
            (batch if operation(s.op).batchable else rest).append(s)
        self._ready.extendleft(reversed(rest))
        return batch

    def _finished(self, key: str) -> None:
        self._done.add(key)
        for child in self._dependants.get(key, []):
            deps = self._waiting[child]
            deps.discard(key)
            if not deps:
                self._enqueue(self._steps[child])

    def _enqueue(self, step: Step) -> None:
        lane = self.pace.lane(step) if self.pace is not None else None
        if lane is None:
            self._ready.append(step)
        else:
            self._lanes.setdefault(lane, deque()).append(step)

    def _paced(self) -> tuple[Step, Any] | float | None:
        """The first lane's head step that has room now, claimed; else the seconds until one may (None:
        no lane holds a step)."""
        assert self.pace is not None
        soonest: float | None = None
        for lane, queue in list(self._lanes.items()):
            step = queue[0]
            wait = self.pace.room(step)
            if wait <= 0:
                queue.popleft()
                if not queue:
                    del self._lanes[lane]
                return step, self.pace.claim(step)
            soonest = wait if soonest is None else min(soonest, wait)
        return soonest

    def _record_failure(self, key: str, message: str) -> None:
        self.result.outcome_of[key] = "failed"
        self.result.failed += 1
        self.result.failures.append({"step": key, "message": message})

    def _failed(self, key: str, message: str) -> None:
        self._record_failure(key, message)
        # Dependants never start; each says which step it waited on.
        stack = [(child, key) for child in self._dependants.get(key, [])]
        skipped: set[str] = set()
        while stack:
            child, cause = stack.pop()
            if child in skipped:
                continue
            skipped.add(child)
            self.result.outcome_of[child] = "skipped"
            self.result.skipped += 1
            self.result.failures.append(
                {"step": child, "message": f"skipped: depends on {cause}, which failed"}
            )
            stack.extend((grandchild, cause) for grandchild in self._dependants.get(child, []))

    # ---- reconciliation -------------------------------------------------------------------------------
    async def _look_up(self, steps: list[Step], *, patient: bool = True) -> dict[str, Outcome]:
        """Outcomes of the steps the target shows applied (by provenance). Steps not found are asked again,
        together, with exponential backoff until `lag_tolerance` has passed: a look-up can miss an object
        created moments ago, and re-sending it would make a second one."""
        found: dict[str, Outcome] = {}
        limit = asyncio.Semaphore(self.concurrency)

        async def check(step: Step) -> None:
            async with limit:
                try:
                    out = await operation(step.op).reconcile(step, self.ctx)
                except GraphError as exc:
                    if exc.response.status != 404:  # a fresh object can answer Not Found by id, too
                        raise
                    out = None
            if out is not None:
                found[step.key] = out

        async def one_round() -> list[Step]:
            async with asyncio.TaskGroup() as tg:
                for step in steps:
                    if step.key not in found:
                        tg.create_task(check(step))
            return [s for s in steps if s.key not in found]

        if not steps:
            return found
        try:
            if self.lag_tolerance <= 0 or not patient:
                await one_round()
            else:
                await AsyncRetrying(
                    retry=retry_if_result(bool),
                    wait=wait_exponential(multiplier=0.25, max=self.lag_tolerance),
                    stop=stop_after_delay(self.lag_tolerance),
                    retry_error_callback=lambda state: None,
                )(one_round)
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        return found

    async def _reconcile_left(self, steps: list[Step], pending: dict[str, Step]) -> None:
        found = await self._look_up(steps)
        results = [(s, found[s.key]) for s in steps if s.key in found]
        for step, out in results:
            pending.pop(step.key, None)
            self._done.add(step.key)
            self.ctx.remember(step.key, out.target_id, out.data)
            self.result.reconciled += 1
            self.result.already += 1
            self.result.outcome_of[step.key] = "already"
        if results:
            self.journal.outcomes(results)

    # ---- sending --------------------------------------------------------------------------------------
    async def _send_once(self, batch: list[Step]) -> tuple[list[Step], bool]:
        """Send once; record what is known; return the steps still unclear (to send again) and whether any
        was answered 404 (what it names not there yet: the caller waits before sending again)."""
        self.journal.intents(batch)
        for s in batch:
            # An operation may read what its request carries just before sending it (a message's inline
            # images from the legacy tenant), so the plan need not hold it.
            prepare = getattr(operation(s.op), "prepare", None)
            if prepare is not None:
                await prepare(s, self.ctx)
        requests = [operation(s.op).request(s, self.ctx) for s in batch]
        answers: list[GraphResponse | MaybeApplied]
        if len(batch) == 1 and not operation(batch[0].op).batchable:
            r = requests[0]
            # An operation whose write is not one JSON request (an upload of bytes) sends it itself.
            send = getattr(operation(batch[0].op), "send", None)
            try:
                answers = [
                    await send(batch[0], self.ctx)
                    if send is not None
                    else await self.ctx.target.request(
                        r.method, r.url, json=r.body, headers=r.headers or None, idempotent=False
                    )
                ]
            except MaybeApplied as exc:
                answers = [exc]
        else:
            answers = await self.ctx.target.batch(requests)
        results: list[tuple[Step, Outcome]] = []
        unclear: list[Step] = []
        read: dict[str, Outcome | None] = {}
        for step, answer in zip(batch, answers, strict=True):
            if isinstance(answer, GraphResponse):
                read[step.key] = operation(step.op).outcome(step, answer, self.ctx)
        # A 404 answer means the write did not apply: one look-up (for an answer lost before it) is enough,
        # and the wait for the named object is the caller's, outside its slot. Other unclear answers may
        # hide an applied write, so their look-up is patient through replication lag.
        missing = {
            s.key
            for s, a in zip(batch, answers, strict=True)
            if read.get(s.key) is None and isinstance(a, GraphResponse) and a.status == 404
        }
        found = await self._look_up([s for s in batch if read.get(s.key) is None and s.key not in missing])
        found.update(await self._look_up([s for s in batch if s.key in missing], patient=False))
        for step, answer in zip(batch, answers, strict=True):
            out = read.get(step.key)
            if out is None:
                if step.key in found:
                    out = found[step.key]
                    self.result.reconciled += 1
                elif (
                    isinstance(answer, GraphResponse)
                    and not answer.ok
                    and answer.status < 500
                    # 404 on a write naming an object created moments ago is replication lag: send again.
                    and answer.status != 404
                ):
                    out = Outcome(
                        "failed", message=f"{answer.status} {answer.error_code}: {answer.error_message}"
                    )
                else:
                    unclear.append(step)
                    continue
            results.append((step, out))
        if results:
            self.journal.outcomes(results)
        for step, out in results:
            if out.status == "failed":
                self._failed(step.key, out.message)
            else:
                self.ctx.remember(step.key, out.target_id, out.data)
                if out.status == "already":
                    self.result.already += 1
                else:
                    self.result.done += 1
                self.result.outcome_of[step.key] = "already" if out.status == "already" else "done"
                self._finished(step.key)
        self._progress()
        return unclear, any(s.key in missing for s in unclear)

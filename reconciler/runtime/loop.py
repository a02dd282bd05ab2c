"""The reconcile loop: from "something may have changed" to "the target matches the commit".

Triggers (a push to the webhook, a poll tick, a file save, a drift-check tick, a control
request) only *ask*: they add a reason to a set and wake the loop, so a burst of pushes
becomes one reconcile of the newest commit. One pass:

1. read the control record — act on ``rollback``/``suspend``/``resume`` not yet seen;
2. unless suspended: fetch the tracked ref; if it names a revision not yet applied —
   verify its signature (optional), check it out, run the program in the sandbox, keep
   its output, mark it *in progress*, deploy it, record the result;
3. on a drift tick (and at start) re-deploy the applied output: objects someone changed
   are written back (self-heal) or only reported (``self_heal=False``, or suspended).

With a :class:`~reconciler.runtime.rollouts.RolloutDriver` (progressive delivery), what is
deployed is never the program's raw output but its *rollout view*: the revision's program
with every canary rollout's current traffic laid over it (``live_output``). A new revision
is deployed with the driver's preview (a changed canary target starts at 100% stable) and
handed to the driver once the target took it; drift checks and rollbacks deploy the view
too, so they never fight a rollout. Between passes the loop ticks the driver when an
analysis is due and at least every ``rollout_period``: analyses run, steps advance, and a
changed view is deployed through the same deployer — only for the applied revision, only
on the leader, never while suspended.

A program that fails to load, raises, loops or has validation errors deploys nothing: the
status records the error with the user's file:line and the previous revision stays live.
Such a revision is not run again — a new commit is needed. An unreachable target or remote
is *transient*: the pass is retried with exponential backoff (tenacity) until it works;
a new trigger cuts the wait short.

One pass at a time per target (a lock keyed by the deployer's identity), and with leader
election only on the replica holding the Lease.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterable
from dataclasses import replace

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

from reconciler.ports import Revision, SourceError
from reconciler.runtime.decide import Decision, Step, Timers, Trigger, decide, due, trigger_name
from reconciler.runtime.loop_base import (
    Leadership,
    ProgramRunner,
    Settings,
    TransientError,
    _always,
    _Failed,
    target_lock,
)
from reconciler.runtime.loop_delivery import DeliveryLoop
from reconciler.runtime.records import ProgramError
from reconciler.runtime.sandbox import Compiled
from reconciler.runtime.status import (
    Attempt,
    Control,
    DriftReport,
    Failure,
    FailureKind,
    Result,
    Status,
    outputs_to_keep,
)
from reconciler.runtime.telemetry import event
from reconciler.sources.git import VerificationError
from reconciler.sources.webhook import PushEvent

__all__ = ["Leadership", "ProgramRunner", "Reconciler", "Settings", "TransientError",
           "target_lock"]


class Reconciler(DeliveryLoop):
    """Wires a :class:`~reconciler.ports.Source`, the :class:`.Sandbox`, a
    :class:`~reconciler.ports.Deployer` and a :class:`~reconciler.ports.StateStore`."""

    # -- triggers (any thread) ----------------------------------------------------------------

    def trigger(self, reason: str) -> None:
        with self._guard:
            self._pending.add(reason)
        self._wake.set()

    def on_push(self, push: PushEvent) -> tuple[bool, str]:
        """The webhook's callback: queue a reconcile if the push touches the tracked ref."""
        ref = self.source.ref
        if push.ref and ref and push.ref != ref:
            self.telemetry.webhooks.labels(self.settings.name, "ignored").inc()
            return False, f"ignored: this reconciler tracks {ref}, the push was to {push.ref}"
        self.telemetry.webhooks.labels(self.settings.name, "accepted").inc()
        self.trigger("webhook")
        return True, "reconcile queued"

    def on_leadership(self, leading: bool) -> None:
        self.telemetry.leader.labels(self.settings.name).set(1 if leading else 0)
        event("leadership", name=self.settings.name, leader=leading)
        if leading:
            self._loaded = False      # another replica may have written the status
            self.trigger("leader")

    def _drain(self) -> set[str]:
        with self._guard:
            reasons, self._pending = self._pending, set()
        return reasons

    # -- health -----------------------------------------------------------------------------

    def healthy(self) -> tuple[bool, str]:
        """Is the loop running at all? (The process watches this to stop.)"""
        if self._crashed:
            return False, f"reconcile loop crashed: {self._crashed}"
        if self._thread is not None and not self._thread.is_alive():
            return False, "reconcile loop stopped"
        return True, "ok"

    def live(self) -> tuple[bool, str]:
        """Liveness (``/healthz``): running, and not failing internally pass after pass
        (``internal_limit`` in a row) — a restart is the likeliest cure."""
        ok, why = self.healthy()
        internal = self._internal
        if ok and internal is not None and internal[0] >= self.settings.internal_limit:
            return False, f"{internal[0]} internal failures in a row: {internal[1]}"
        return ok, why

    def ready(self) -> tuple[bool, str]:
        """Readiness (``/readyz``): live, the leader, and the last pass did not fail
        internally."""
        ok, why = self.healthy()
        if ok and self._internal is not None:
            return False, f"internal failure: {self._internal[1]}"
        if ok and self.leader is not None and not self.leader.is_leader:
            return False, "standby: another replica holds the lease"
        return ok, why

    # -- running ----------------------------------------------------------------------------

    def start(self) -> Reconciler:
        self._thread = threading.Thread(target=self.run, name="meshdsl-reconcile", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run(self) -> None:
        """The loop; returns when :meth:`stop` is called."""
        s, clock = self.settings, self.clock
        timers = Timers.start(clock.monotonic(), poll=s.poll_interval, drift=s.drift_interval)
        next_rollout = (clock.monotonic() + s.rollout_period if self.rollouts is not None
                        else math.inf)
        self.trigger(Trigger.START)
        try:
            while not self._stop.is_set():
                timers, fired = due(timers, clock.monotonic(), poll=s.poll_interval,
                                    drift=s.drift_interval, control=s.control_interval)
                with self._guard:
                    self._pending |= fired
                self._wake.clear()
                reasons = self._drain()
                if reasons:
                    try:
                        self.reconcile(reasons)
                        self._internal = None
                    except Exception as exc:  # a bug or exhaustion: report, keep running
                        self._failed_internally(exc, reasons)
                if clock.monotonic() >= next_rollout:
                    self.tick_rollouts()
                    next_rollout = clock.monotonic() + self._rollout_wait(s.rollout_period)
                wait = min(timers.poll, timers.drift, timers.control, next_rollout) - (
                    clock.monotonic())
                self._wake.wait(max(0.0, wait))
        except BaseException as exc:  # never silently: /healthz reports it
            self._crashed = f"{type(exc).__name__}: {exc}"
            event("crashed", name=s.name, error=self._crashed, level=50)
            raise

    def _failed_internally(self, exc: Exception, reasons: set[str]) -> None:
        """A pass raised what no port promises (a bug, ``Too many open files``…): record
        it in the status and history, turn readiness (and, if it persists, liveness) red,
        keep the reasons for the next try, and wait before it."""
        message = f"{type(exc).__name__}: {exc}"
        count = (self._internal[0] if self._internal else 0) + 1
        self._internal = (count, message)
        event("internal-error", name=self.settings.name, level=40, error=message,
              in_a_row=count)
        failure = Failure(FailureKind.INTERNAL, f"the reconciler failed internally: {message}",
                          transient=True)
        with contextlib.suppress(Exception):   # the status store may be what is failing
            self._finish(Attempt(revision=self.status.in_progress or "",
                                 trigger=trigger_name(reasons), started_at=self.clock.now_iso(),
                                 duration=0.0, result=Result.FAILED, failure=failure,
                                 summary="internal error"))
        with self._guard:
            self._pending |= reasons | {"retry"}
        self._stop.wait(min(self.settings.backoff_max,
                            self.settings.backoff_initial * 2 ** min(count, 10)))

    def reconcile(self, reasons: Iterable[str] = ("manual",), *,
                  max_attempts: int | None = None) -> Status:
        """One pass, retried with backoff while it fails transiently (at most
        ``max_attempts`` times when given). Safe to call from tests and ``--once``;
        returns the status afterwards."""
        pending = set(reasons)

        def attempt() -> None:
            pending.update(self._drain())
            if self._stop.is_set():
                return
            self._pass(pending)
            pending.clear()

        def sleep(seconds: float) -> None:
            self._wake.wait(seconds)
            self._wake.clear()

        def before_sleep(state: RetryCallState) -> None:
            wait = state.next_action.sleep if state.next_action else 0.0
            outcome = state.outcome.exception() if state.outcome else None
            event("retrying", name=self.settings.name, attempt=state.attempt_number,
                  wait_s=round(wait, 2), error=str(outcome))
            pending.add("retry")

        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            wait=wait_exponential(multiplier=self.settings.backoff_initial,
                                  max=self.settings.backoff_max),
            stop=lambda state: self._stop.is_set() or (
                max_attempts is not None and state.attempt_number >= max_attempts),
            sleep=sleep, before_sleep=before_sleep, reraise=True)
        with contextlib.suppress(TransientError):   # when stopping, or out of attempts
            retrying(attempt)
        return self.status

    # -- one pass ---------------------------------------------------------------------------

    def _decide(self, control: Control | None, revision: str | None,
                reasons: set[str]) -> Decision:
        return decide(self.status, control, revision, reasons,
                      leading=self.leader is None or self.leader.is_leader,
                      self_heal=self.settings.self_heal)

    def _pass(self, reasons: set[str]) -> None:
        """Perform what :func:`.decide.decide` decides, step by step."""
        if self._decide(None, None, reasons).step is Step.STAND_BY:
            return
        with target_lock(self.deployer.identity):
            self._fence = self.leader.fence() if self.leader is not None else _always
            self.passes += 1
            self._phases = {}
            self._load()
            with self._phase("control"):
                control = self._read(self.store.load_control, "reading the control record")
            if control.problem:
                self._unusable_record(control.problem)
            decision = self._decide(control, None, reasons)
            if decision.step is Step.OBEY:
                reasons |= self._obey(control, rollback=decision.rollback)
                decision = self._decide(control, None, reasons)
            if decision.step is Step.CHECK_ONLY:
                self._recheck(heal=False, trigger=Trigger.DRIFT)
            elif decision.step is Step.FETCH:
                self._sync(control, reasons)

    # -- control requests ---------------------------------------------------------------------

    def _obey(self, control: Control, *, rollback: bool) -> set[str]:
        """Act on a control generation not seen yet; returns extra reasons for this pass."""
        extra: set[str] = set()
        was_suspended = self.status.suspended
        if rollback and control.rollback:
            self._rollback(control.rollback, control)
        self.status = replace(self.status, suspended=control.suspended,
                              suspend_reason=control.reason if control.suspended else None,
                              observed_control=control.generation)
        self.telemetry.suspended.labels(self.settings.name).set(int(control.suspended))
        event("control", name=self.settings.name, generation=control.generation,
              suspended=control.suspended, rollback=control.rollback,
              requested_by=control.requested_by)
        self._save()
        if was_suspended and not control.suspended:
            extra.add("resume")
        return extra

    def _rollback(self, revision: str, control: Control) -> None:
        started, t0 = self.clock.now_iso(), self.clock.monotonic()
        base = Attempt(revision=revision, trigger="rollback", started_at=started, duration=0.0,
                       result=Result.ROLLED_BACK)
        try:
            output = self._output(revision)
            if output is None:
                output = self._compile(self._describe(revision)).output()
            mesh = str(output.get("mesh", ""))
            live, handed_over = self._live(revision, output)
            deployed = self._deploy(live, mesh=mesh, heal=True, revision=revision)
            handed_over()
        except _Failed as failed:
            self._failed(replace(base, duration=self.clock.monotonic() - t0), failed)
            return
        self._remember(revision, output)
        self._finish(replace(base, mesh=mesh, changes=deployed.changes,
                             summary=f"rollback requested by {control.requested_by or '?'}",
                             duration=self.clock.monotonic() - t0))
        self.telemetry.applied(revision, mesh)

    def _describe(self, revision: str) -> Revision:
        try:
            described = self.source.ensure(revision)
        except SourceError as exc:
            raise _Failed(Failure(FailureKind.SOURCE, str(exc), transient=True)) from exc
        return described

    # -- sync -------------------------------------------------------------------------------

    def _sync(self, control: Control, reasons: set[str]) -> None:
        trigger = trigger_name(reasons)
        t0 = self.clock.monotonic()
        try:
            with self._phase("fetch"):
                revision = self.source.latest()
        except SourceError as exc:
            failure = Failure(FailureKind.SOURCE, str(exc), transient=True)
            self._finish(Attempt(revision="", trigger=trigger, started_at=self.clock.now_iso(),
                                 duration=self.clock.monotonic() - t0, result=Result.FAILED,
                                 failure=failure, summary=self.source.describe()))
            raise TransientError(failure) from exc
        decision = self._decide(control, revision.id, reasons)
        if decision.step is Step.RECHECK:
            self._recheck(heal=decision.heal, trigger=trigger)
        elif decision.step is Step.APPLY:
            self._apply_revision(revision, trigger, t0=t0)
        else:   # UNCHANGED, or WAIT: failed for good, a new commit is needed
            self._observe_unchanged(t0)
        if decision.settle:
            self._resolve_transient()

    def _resolve_transient(self) -> None:
        """The last attempt failed transiently but the applied revision is current and
        reachable again: the failure is over, so ``last`` points at the applied state."""
        last, applied = self.status.last, self.status.applied
        if (applied is not None and last is not None and last is not applied
                and last.failure is not None and last.failure.transient):
            self.status = replace(self.status, last=applied)
            self._save()

    def _apply_revision(self, revision: Revision, trigger: str, *, t0: float) -> None:
        """Verify, run, keep and deploy one new revision; ``t0``: when the pass began (the
        attempt's duration includes the fetch)."""
        started = self.clock.now_iso()
        base = Attempt(revision=revision.id, trigger=trigger, started_at=started,
                       duration=0.0, result=Result.APPLIED, summary=revision.summary)
        resumed = self.status.in_progress == revision.id
        if not resumed:
            self._record_skipped(revision, trigger)
        try:
            output = self._read(lambda: self.store.load_output(revision.id),
                                "reading a stored output") if resumed else None
            if output is None:
                with self._phase("verify"):
                    self._verify(revision)
                output = self._compile(revision).output()
                with self._phase("save-output"):
                    self._read(lambda: self.store.save_output(revision.id, output),
                               "saving the output")
            mesh = str(output.get("mesh", ""))
            self.status = replace(self.status, in_progress=revision.id)
            with self._phase("mark-in-progress"):
                self._save()
            with self._phase("rollouts"):
                live, handed_over = self._live(revision.id, output)
            with self._phase("deploy"):
                deployed = self._deploy(live, mesh=mesh, heal=True, revision=revision.id)
            with self._phase("rollouts-start"):
                handed_over()
        except _Failed as failed:
            self._failed(replace(base, duration=self.clock.monotonic() - t0), failed)
            return
        self._remember(revision.id, output)
        self.status = replace(self.status, drift=DriftReport(
            checked_at=self.clock.now_iso(), objects=deployed.drift, healed=deployed.healed))
        self._finish(replace(base, mesh=mesh, changes=deployed.changes,
                             duration=self.clock.monotonic() - t0))
        self.telemetry.applied(revision.id, mesh)
        self._read(lambda: self.store.prune_outputs(outputs_to_keep(self.status)),
                   "pruning old outputs")

    def _record_skipped(self, revision: Revision, trigger: str) -> None:
        """Record the commits a burst passed over (pushed after the last one tried, before
        ``revision``): each gets a *skipped* history entry, so a broken commit that was
        never run still shows in ``meshctl history``. Counted from the newest commit the
        branch was at (a rollback re-applies an older one), never re-recording a known
        one."""
        history = self.status.history
        since = next((a.revision for a in history if a.revision and a.trigger != "rollback"
                      and a.result is not Result.ROLLED_BACK), self.status.applied_revision)
        if not since or since == revision.id:
            return
        try:
            passed = self.source.between(since, revision.id,
                                         limit=self.settings.skipped_kept)
        except SourceError as exc:  # only bookkeeping: never blocks the apply
            event("skipped-unknown", name=self.settings.name, level=30, error=str(exc))
            return
        known = {a.revision for a in history}
        for skipped in reversed(passed):   # oldest first, so history stays newest first
            if skipped.id in known:
                continue
            self.status = self.status.record(Attempt(
                revision=skipped.id, trigger=trigger, started_at=self.clock.now_iso(),
                duration=0.0, result=Result.SKIPPED, summary=skipped.summary))
            event("skipped", name=self.settings.name, revision=skipped.short,
                  newer=revision.short)

    def _verify(self, revision: Revision) -> None:
        signers = self.settings.allowed_signers
        if signers is None:
            return
        try:
            self.source.verify(revision.id, allowed_signers=signers)
        except VerificationError as exc:
            raise _Failed(Failure(FailureKind.VERIFICATION, str(exc))) from exc
        except SourceError as exc:
            raise _Failed(Failure(FailureKind.SOURCE, str(exc), transient=True)) from exc

    def _compile(self, revision: Revision) -> Compiled:
        try:
            with self._phase("checkout"):
                checkout = self.source.checkout(revision.id)
        except SourceError as exc:
            raise _Failed(Failure(FailureKind.SOURCE, str(exc), transient=True)) from exc
        try:
            with self._phase("program"):
                return self.sandbox.run(checkout, self.settings.program, spec=self._needs_spec)
        except ProgramError as exc:
            raise _Failed(exc.failure) from exc


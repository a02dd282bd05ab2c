"""The reconcile loop's state and bookkeeping, shared by its parts.

:class:`LoopBase` holds what one reconciler knows (settings, ports, status, the outputs it
keeps) and the steps every part uses: timing a phase, reading a store (a failure there is
transient), deploying (sorting the deployer's error), recording an attempt. The parts:
:mod:`.loop_delivery` (rollout views, drift checks) and :mod:`.loop` (triggers, passes,
new revisions), which assembles them into :class:`~reconciler.runtime.loop.Reconciler`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from meshdsl.compile import Weights
from meshdsl.model.spec import MeshSpec
from reconciler.errors import ReconcilerError
from reconciler.ports import (
    Clock,
    Deployed,
    Deployer,
    DeployError,
    Source,
    SourceError,
    StateStore,
    TargetError,
)
from reconciler.runtime.clock import SystemClock
from reconciler.runtime.rollouts import RolloutDriver
from reconciler.runtime.sandbox import Compiled
from reconciler.runtime.status import (
    Attempt,
    CorruptRecordError,
    Failure,
    FailureKind,
    Result,
    Status,
    StoreError,
)
from reconciler.runtime.telemetry import Telemetry, event

__all__ = ["Leadership", "LoopBase", "ProgramRunner", "Settings", "TransientError",
           "target_lock"]

T = TypeVar("T")
_TARGET_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def target_lock(identity: str) -> threading.Lock:
    """The one lock of a target in this process."""
    with _LOCKS_GUARD:
        return _TARGET_LOCKS.setdefault(identity, threading.Lock())


class Leadership(Protocol):
    @property
    def is_leader(self) -> bool: ...

    def fence(self) -> Callable[[], bool]:
        """A check for work starting now: true while this term of leadership lasts."""
        ...


def _always() -> bool:
    return True


class ProgramRunner(Protocol):
    """What the loop needs of :class:`.Sandbox` (tests substitute a table)."""

    def run(self, checkout: Path, program: str, *, spec: bool = False) -> Compiled: ...


class TransientError(ReconcilerError):
    """A pass failed for a reason that goes away by itself; retried with backoff."""

    transient = True

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass(frozen=True)
class Settings:
    name: str = "default"
    program: str = "mesh.py"                # path inside the repository (``:attr`` allowed)
    poll_interval: float | None = 60.0      # None: no polling (webhook/watch only)
    drift_interval: float | None = 60.0     # None: no periodic drift check
    self_heal: bool = True
    control_interval: float = 2.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    allowed_signers: Path | None = None     # verify commit signatures when set
    rollout_period: float = 1.0             # tick the rollout driver this often
    internal_limit: int = 3                 # internal failures in a row: /healthz red too
    skipped_kept: int = 10                  # passed-over commits recorded per pass


class LoopBase:
    """State and shared steps of a :class:`~reconciler.runtime.loop.Reconciler`."""

    def __init__(self, settings: Settings, *, source: Source, deployer: Deployer,
                 store: StateStore, sandbox: ProgramRunner, leader: Leadership | None = None,
                 telemetry: Telemetry | None = None,
                 rollouts: RolloutDriver | None = None, clock: Clock | None = None) -> None:
        if settings.allowed_signers is not None and not source.signed:
            raise ValueError("commit verification needs a Git source")
        self.settings, self.source, self.deployer = settings, source, deployer
        self.store, self.sandbox, self.leader = store, sandbox, leader
        self.clock: Clock = clock or SystemClock()
        self.telemetry = telemetry or Telemetry(settings.name)
        self.status = Status(name=settings.name)
        self._loaded = False
        self._outputs: dict[str, dict[str, Any]] = {}
        self._pending: set[str] = set()
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._crashed: str | None = None
        self._reported = ""     # the unusable-record problem last reported
        self._fence: Callable[[], bool] = _always   # may this pass still write?
        self._internal: tuple[int, str] | None = None   # failures in a row, the last one
        self._phases: dict[str, float] = {}
        self.passes = 0
        self.rollouts = rollouts
        # the local target runs the program's spec; kube applies the compiled manifests
        self._serves_spec = deployer.needs_spec
        if rollouts is not None:
            rollouts.bind(self._push_view)

    def _push_view(self, spec: MeshSpec, weights: Weights) -> None:
        """The rollout driver's route writer (:mod:`.loop_delivery`)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        """Time one step of a pass; the reconcile log line carries them (``phases_ms``)."""
        started = self.clock.monotonic()
        try:
            yield
        finally:
            self._phases[name] = round((self.clock.monotonic() - started) * 1000, 1)

    def _read(self, fn: Callable[[], T], what: str) -> T:
        try:
            return fn()
        except CorruptRecordError:
            raise
        except (StoreError, TargetError, DeployError, SourceError, OSError) as exc:
            failure = Failure(FailureKind.STATE, f"{what} failed: {exc}", transient=True)
            self._finish(Attempt(revision=self.status.in_progress or "", trigger="retry",
                                 started_at=self.clock.now_iso(), duration=0.0, result=Result.FAILED,
                                 failure=failure, summary=self.store.describe()))
            raise TransientError(failure) from exc

    def _unusable_record(self, problem: str) -> None:
        """A stored record cannot be used (corrupt, or not ours): say so once in the
        status and history, and go on without it — it must not block the next commit."""
        if self._reported == problem:
            return
        self._reported = problem
        event("unusable-record", name=self.settings.name, level=40, problem=problem)
        self._finish(Attempt(revision="", trigger="control", started_at=self.clock.now_iso(),
                             duration=0.0, result=Result.FAILED,
                             failure=Failure(FailureKind.STATE, problem), summary="stored record"))

    def _load(self) -> None:
        if self._loaded:
            return
        problem = ""
        try:
            stored = self._read(self.store.load_status, "reading the status")
        except CorruptRecordError as exc:   # start afresh; the next save replaces it
            stored = None
            problem = (f"the stored status could not be used ({exc}); a new one replaces "
                       "it (earlier history is lost)")
        base = stored if stored is not None else Status(name=self.settings.name)
        self.status = replace(base, name=self.settings.name, source=self.source.describe(),
                              target=self.deployer.identity)
        self._loaded = True
        if problem:
            self._unusable_record(problem)
        if self.status.applied is not None:
            self.telemetry.applied(self.status.applied.revision, self.status.applied.mesh)
        self.telemetry.suspended.labels(self.settings.name).set(int(self.status.suspended))

    def _save(self) -> None:
        self._read(lambda: self.store.save_status(self.status), "saving the status")

    def _observe_unchanged(self, t0: float) -> None:
        self.telemetry.reconciled("unchanged", self.clock.monotonic() - t0)

    def _deploy(self, output: dict[str, Any], *, mesh: str, heal: bool, revision: str,
                dry_run: bool = False) -> Deployed:
        try:
            return self.deployer.deploy(output, mesh=mesh, heal=heal, dry_run=dry_run,
                                        fence=self._fence)
        except DeployError as exc:
            raise _Failed(Failure(exc.kind, str(exc), transient=exc.transient)) from exc

    def _output(self, revision: str) -> dict[str, Any] | None:
        cached = self._outputs.get(revision)
        if cached is not None:
            return cached
        stored: dict[str, Any] | None = self._read(lambda: self.store.load_output(revision),
                                                   "reading a stored output")
        if stored is not None:
            self._remember(revision, stored)
        return stored

    def _remember(self, revision: str, output: dict[str, Any]) -> None:
        self._outputs[revision] = output
        while len(self._outputs) > 3:
            self._outputs.pop(next(iter(self._outputs)))

    # -- bookkeeping ------------------------------------------------------------------------

    def _failed(self, attempt: Attempt, failed: _Failed) -> None:
        """Record ``attempt`` as failed; a transient failure is raised again as a
        :class:`TransientError`, so the pass is retried with backoff."""
        self._finish(replace(attempt, result=Result.FAILED, failure=failed.failure))
        if failed.failure.transient:
            raise TransientError(failed.failure) from failed

    def _finish(self, attempt: Attempt) -> None:
        status = self.status.record(attempt)
        if attempt.failure is not None and attempt.failure.transient and attempt.trigger != (
                "rollback") and self.status.in_progress == attempt.revision:
            status = replace(status, in_progress=attempt.revision)
        self.status = status
        result = attempt.result.value
        self.telemetry.reconciled(result, attempt.duration)
        fields: dict[str, Any] = {
            "name": self.settings.name, "revision": attempt.revision,
            "trigger": attempt.trigger, "result": result,
            "duration_s": round(attempt.duration, 3), "mesh": attempt.mesh,
            "changes": attempt.changes}
        if attempt.failure is not None:
            self.telemetry.failed(attempt.failure.kind)
            fields.update(error_kind=attempt.failure.kind, error=attempt.failure.message,
                          location=attempt.failure.location,
                          transient=attempt.failure.transient)
        if not self._fence():   # leadership lost mid-pass: the new leader owns the status
            event("status-not-saved", name=self.settings.name, level=30,
                  error="no longer the leader")
        elif self._loaded:   # never overwrite a stored status this process has not read
            try:
                with self._phase("save-status"):
                    self.store.save_status(self.status)
            except Exception as exc:  # the target may be what is down; keep it in memory
                event("status-not-saved", name=self.settings.name, error=str(exc), level=30)
        fields["phases_ms"] = dict(self._phases)
        event("reconcile", level=40 if attempt.failure else 20, **fields)


class _Failed(ReconcilerError):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure

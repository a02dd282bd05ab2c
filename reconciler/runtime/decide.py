"""The reconcile loop's decisions, as pure functions (no I/O, no clock of their own).

:mod:`.loop` is the shell: it reads the control record, fetches, runs the program and
deploys; *what* to do next is decided here, from the status, the control record, the
revision fetched (``None`` before the fetch) and the triggers that woke it — like
:func:`reconciler.delivery.machine.step`. One pass asks :func:`decide` up to three times::

    decide(status, control, None, triggers)      -> OBEY       (a new control generation)
                                                    STAND_BY / IDLE / CHECK_ONLY / FETCH
    (after obeying, ask again with the new status)
    decide(status, control, revision, triggers)  -> UNCHANGED / RECHECK / WAIT / APPLY

Transition table (first match wins):

=============================================  ============================================
situation                                       decision
=============================================  ============================================
not the leader                                  STAND_BY — do nothing
control generation not observed yet             OBEY (``rollback``: also roll back)
suspended, drift/start/leader tick, applied     CHECK_ONLY — report drift, write nothing
suspended                                       IDLE
no trigger asks for a sync (only ``control``)   IDLE
revision not fetched yet                        FETCH
revision applied, nothing in progress           RECHECK (heal) on start/drift/leader/resume
                                                or after a transient failure, else UNCHANGED
revision failed for good (not transiently; a    WAIT — a new commit is needed
drift tick retries a rejected/apply failure)
otherwise                                       APPLY
=============================================  ============================================

:func:`due` is the loop's timer arithmetic: which periodic triggers fire at ``now`` and
when to wake next.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from reconciler.runtime.records import Control, FailureKind, Status

__all__ = ["Decision", "Step", "Timers", "Trigger", "decide", "due", "trigger_name"]


class Trigger(StrEnum):
    """Why the loop woke up (a string enum: ``"webhook"`` works where a Trigger does)."""

    START = "start"
    POLL = "poll"
    WEBHOOK = "webhook"
    WATCH = "watch"
    MANUAL = "manual"
    RESUME = "resume"
    RETRY = "retry"
    DRIFT = "drift"
    LEADER = "leader"
    ROLLBACK = "rollback"
    CONTROL = "control"


SYNC = frozenset({Trigger.START, Trigger.POLL, Trigger.WEBHOOK, Trigger.WATCH, Trigger.MANUAL,
                  Trigger.RESUME, Trigger.RETRY, Trigger.DRIFT, Trigger.LEADER})
RECHECK = frozenset({Trigger.START, Trigger.DRIFT, Trigger.LEADER, Trigger.RESUME})
CHECK_WHEN_SUSPENDED = frozenset({Trigger.DRIFT, Trigger.START, Trigger.LEADER})
PRIORITY = (Trigger.ROLLBACK, Trigger.WEBHOOK, Trigger.WATCH, Trigger.MANUAL, Trigger.RESUME,
            Trigger.LEADER, Trigger.POLL, Trigger.START, Trigger.RETRY, Trigger.DRIFT)
_RETRIED_ON_DRIFT = frozenset({FailureKind.REJECTED, FailureKind.APPLY})


def trigger_name(reasons: Iterable[str]) -> str:
    """The one trigger a pass is recorded under: the most specific of ``reasons``."""
    given = set(reasons)
    return next((r.value for r in PRIORITY if r in given), "+".join(sorted(given)) or "none")


class Step(StrEnum):
    STAND_BY = "stand-by"
    OBEY = "obey"
    CHECK_ONLY = "check-only"
    IDLE = "idle"
    FETCH = "fetch"
    UNCHANGED = "unchanged"
    RECHECK = "recheck"
    WAIT = "wait"
    APPLY = "apply"


@dataclass(frozen=True)
class Decision:
    step: Step
    heal: bool = False          # RECHECK: write drift back (else only report it)
    rollback: bool = False      # OBEY: re-apply ``control.rollback`` first
    settle: bool = False        # RECHECK/UNCHANGED: a transient failure is over


def _failed_transiently(status: Status, revision: str) -> bool:
    last = status.last
    return bool(last and last.revision in (revision, "") and last.failure
                and last.failure.transient)


def decide(status: Status, control: Control | None, revision: str | None,
           triggers: Iterable[str], *, leading: bool = True,
           self_heal: bool = True) -> Decision:
    """What the pass does next (see the module's table). ``control`` with a ``problem``
    (corrupt, not ours) counts as no request."""
    reasons = set(triggers)
    if not leading:
        return Decision(Step.STAND_BY)
    if (control is not None and not control.problem
            and control.generation > status.observed_control):
        return Decision(Step.OBEY, rollback=control.wants_rollback(status.observed_control))
    if status.suspended:
        if reasons & CHECK_WHEN_SUSPENDED and status.applied is not None:
            return Decision(Step.CHECK_ONLY)
        return Decision(Step.IDLE)
    if not reasons & SYNC:
        return Decision(Step.IDLE)
    if revision is None:
        return Decision(Step.FETCH)
    if revision == status.applied_revision and status.in_progress is None:
        if reasons & RECHECK or _failed_transiently(status, revision):
            return Decision(Step.RECHECK, heal=self_heal, settle=True)
        return Decision(Step.UNCHANGED, settle=True)
    last = status.last
    if (last is not None and last.revision == revision and last.failure is not None
            and status.in_progress is None
            and not (last.failure.transient or (
                Trigger.DRIFT in reasons and last.failure.kind in _RETRIED_ON_DRIFT))):
        return Decision(Step.WAIT)
    return Decision(Step.APPLY)


@dataclass(frozen=True)
class Timers:
    """When each periodic trigger fires next (the loop's monotonic clock)."""

    poll: float
    drift: float
    control: float

    @classmethod
    def start(cls, now: float, *, poll: float | None, drift: float | None) -> Timers:
        return cls(poll=now + poll if poll else math.inf,
                   drift=now + drift if drift else math.inf, control=now)


def due(timers: Timers, now: float, *, poll: float | None, drift: float | None,
        control: float) -> tuple[Timers, frozenset[Trigger]]:
    """The triggers due at ``now`` and the timers after firing them."""
    fired: set[Trigger] = set()
    next_poll, next_drift, next_control = timers.poll, timers.drift, timers.control
    if now >= timers.poll:
        fired.add(Trigger.POLL)
        next_poll = now + (poll or 0)
    if now >= timers.drift:
        fired.add(Trigger.DRIFT)
        next_drift = now + (drift or 0)
    if now >= timers.control:
        fired.add(Trigger.CONTROL)
        next_control = now + control
    return Timers(next_poll, next_drift, next_control), frozenset(fired)

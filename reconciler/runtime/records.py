"""What a reconciler did and what it was asked to do: the status/history records (pure).

Two records, each with one writer, so they never overwrite each other's changes:

- :class:`Status` — written only by the running reconciler: the applied revision, the last
  attempt (with the user's file:line when the program failed), whether an apply is in
  progress, drift, and a bounded history;
- :class:`Control` — written only by the CLI (``suspend``, ``resume``, ``rollback``): a
  generation counter and the request. The reconciler acts on a generation it has not
  seen yet and records it in ``Status.observed_control``.

An attempt's :class:`Failure` has a :class:`FailureKind`; a program that gives no mesh
raises :class:`ProgramError` (the loader and the sandbox alike), which says it in one line
(what and where) and reports it to a user with its details.

The stores that keep them (disk, ConfigMaps) are in :mod:`reconciler.runtime.status`; this
module does no I/O, so the ports and the pure reconcile decisions can name the records
without importing a store.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from reconciler.errors import ReconcilerError

__all__ = [
    "HISTORY_LIMIT",
    "OUTPUTS_KEPT",
    "Attempt",
    "Control",
    "DriftReport",
    "Failure",
    "FailureKind",
    "ProgramError",
    "Result",
    "Status",
    "clean",
    "now_iso",
    "outputs_to_keep",
]

HISTORY_LIMIT = 50
OUTPUTS_KEPT = 10
_MESSAGE_LIMIT = 2000
_DETAILS_LIMIT = 30
_DETAILED = 5          # history entries that keep their failure's detail lines


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


class FailureKind(StrEnum):
    """Why an attempt failed (a string enum: stored and compared as its value)."""

    SYNTAX = "syntax"              # the program, as the sandbox reports it …
    EXCEPTION = "exception"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    VALIDATION = "validation"
    COMPILE = "compile"
    INVALID = "invalid"
    CRASH = "crash"
    SANDBOX = "sandbox"            # no sandbox where one is required
    SOURCE = "source"              # fetching or checking out the revision
    VERIFICATION = "verification"  # its signature
    REJECTED = "rejected"          # the target: refused by the dry run …
    APPLY = "apply"
    UNREACHABLE = "unreachable"
    FORBIDDEN = "forbidden"
    FENCED = "fenced"              # leadership lost mid-apply
    ROLLOUTS = "rollouts"          # the rollout store or plan
    STATE = "state"                # the status/control records
    INTERNAL = "internal"          # the reconciler itself (a bug, exhaustion)


class Result(StrEnum):
    APPLIED = "applied"        # a new revision is live
    FAILED = "failed"          # nothing applied; the previous state stays
    HEALED = "healed"          # drift written back (same revision)
    ROLLED_BACK = "rolled-back"
    SKIPPED = "skipped"        # a commit passed over in a burst (a newer one was applied)

    @property
    def live(self) -> bool:
        """Did this attempt leave its revision live (so a rollback may ask for it)?"""
        return self in (Result.APPLIED, Result.HEALED, Result.ROLLED_BACK)


@dataclass(frozen=True)
class Failure:
    kind: str                  # syntax, exception, timeout, memory, validation, source, …
    message: str
    location: str | None = None
    details: tuple[str, ...] = ()
    transient: bool = False    # retried with backoff (target unreachable, fetch failed)

    def describe(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ProgramError(ReconcilerError):
    """The mesh program did not give a valid mesh: the user's to fix, wherever it ran (the
    loader in this process, or the sandbox). ``kind`` says how it failed; ``location`` is
    file:line in the user's files when known; ``details`` the traceback frames or the
    findings, one line each. ``str()`` is the one line of what and where;
    :meth:`report` is what a user reads."""

    def __init__(self, message: str, *, kind: FailureKind, location: str | None = None,
                 details: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.message, self.kind, self.location = message, kind, location
        self.details = tuple(details)

    @property
    def failure(self) -> Failure:
        """The failure as an attempt records it."""
        return Failure(self.kind, self.message, location=self.location, details=self.details)

    def __str__(self) -> str:
        return self.failure.describe()

    def report(self, paths: Callable[[str], str] = str) -> str:
        """The user-facing text: the line of what and where, then the details indented
        beneath it. ``paths`` rewrites each line (the CLI makes file:line read as the
        user typed the program's path)."""
        return "\n  ".join(paths(line) for line in (str(self), *self.details))


@dataclass(frozen=True)
class Attempt:
    """One reconcile that did something (or failed to): an entry of the history."""

    revision: str
    trigger: str
    started_at: str
    duration: float
    result: Result
    summary: str = ""                  # the commit's subject line
    mesh: str = ""
    changes: dict[str, int] = field(default_factory=dict)
    failure: Failure | None = None
    count: int = 1                     # identical consecutive failures are folded into one

    @property
    def short(self) -> str:
        return self.revision[:12]


@dataclass(frozen=True)
class DriftReport:
    checked_at: str
    objects: tuple[str, ...] = ()
    healed: bool = False


@dataclass(frozen=True)
class Status:
    name: str
    source: str = ""
    target: str = ""
    applied: Attempt | None = None       # what is live: the last successful apply
    last: Attempt | None = None          # the latest attempt, successful or not
    in_progress: str | None = None       # revision being applied (survives a crash)
    suspended: bool = False
    suspend_reason: str | None = None
    drift: DriftReport | None = None
    history: tuple[Attempt, ...] = ()    # newest first
    observed_control: int = 0
    updated_at: str = ""

    @property
    def applied_revision(self) -> str | None:
        return self.applied.revision if self.applied else None

    def record(self, attempt: Attempt, *, limit: int = HISTORY_LIMIT) -> Status:
        """This status after ``attempt``: history gains an entry (a failure identical to
        the newest entry is folded into it), and ``applied`` moves on success."""
        history = list(self.history)
        newest = history[0] if history else None
        if (attempt.failure is not None and newest is not None and newest.failure is not None
                and newest.revision == attempt.revision
                and newest.failure.kind == attempt.failure.kind
                and newest.failure.message == attempt.failure.message):
            history[0] = replace(attempt, count=newest.count + 1,
                                 started_at=newest.started_at)
        else:
            history.insert(0, attempt)
        moved = attempt.result in (Result.APPLIED, Result.ROLLED_BACK)
        applied = attempt if moved else self.applied
        # Older failures keep their message and location, not their traceback lines: the
        # status must stay far below a ConfigMap's 1 MiB.
        history = [replace(a, failure=replace(a.failure, details=()))
                   if i >= _DETAILED and a.failure is not None and a.failure.details else a
                   for i, a in enumerate(history[:limit])]
        return replace(self, applied=applied, last=history[0], history=tuple(history),
                       in_progress=None, updated_at=now_iso())

    def find(self, prefix: str) -> Attempt | None:
        """The newest applied entry whose revision starts with ``prefix``."""
        for attempt in self.history:
            if attempt.result.live and attempt.revision.startswith(prefix):
                return attempt
        return None

    # -- JSON -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = clean(dataclasses.asdict(self))
        return cleaned

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Status:
        def attempt(raw: Any) -> Attempt | None:
            if not isinstance(raw, dict):
                return None
            failure = raw.get("failure")
            return Attempt(
                revision=str(raw.get("revision", "")), trigger=str(raw.get("trigger", "")),
                started_at=str(raw.get("started_at", "")),
                duration=float(raw.get("duration") or 0.0),
                result=Result(raw.get("result", Result.FAILED.value)),
                summary=str(raw.get("summary", "")), mesh=str(raw.get("mesh", "")),
                changes={str(k): int(v) for k, v in (raw.get("changes") or {}).items()},
                failure=Failure(
                    kind=str(failure.get("kind", "")), message=str(failure.get("message", "")),
                    location=failure.get("location"),
                    details=tuple(str(d) for d in failure.get("details") or ()),
                    transient=bool(failure.get("transient")),
                ) if isinstance(failure, dict) else None,
                count=int(raw.get("count") or 1))

        drift = data.get("drift")
        return cls(
            name=str(data.get("name", "")), source=str(data.get("source", "")),
            target=str(data.get("target", "")), applied=attempt(data.get("applied")),
            last=attempt(data.get("last")), in_progress=data.get("in_progress"),
            suspended=bool(data.get("suspended")), suspend_reason=data.get("suspend_reason"),
            drift=DriftReport(checked_at=str(drift.get("checked_at", "")),
                              objects=tuple(drift.get("objects") or ()),
                              healed=bool(drift.get("healed")))
            if isinstance(drift, dict) else None,
            history=tuple(a for a in (attempt(h) for h in data.get("history") or ()) if a),
            observed_control=int(data.get("observed_control") or 0),
            updated_at=str(data.get("updated_at", "")))


@dataclass(frozen=True)
class Control:
    """A request from ``meshctl suspend/resume/rollback``; ``generation`` grows by one per
    request.

    ``rollback_generation`` is the generation that asked for ``rollback``: a suspend that
    lands after a rollback request keeps it (the reconciler may not have seen it yet), so
    two people's requests never cancel each other; the reconciler rolls back once, when it
    first sees a generation at or after it. ``version`` is the store's version of the record
    as read (for compare-and-swap) and ``problem`` says why a stored record could not be
    used (corrupt, not ours) — neither is stored."""

    generation: int = 0
    suspended: bool = False
    reason: str | None = None
    rollback: str | None = None         # full revision to re-apply
    requested_at: str = ""
    requested_by: str = ""
    rollback_generation: int = 0
    version: str = field(default="", compare=False)
    problem: str = field(default="", compare=False)

    def request(self, **changes: Any) -> Control:
        """The next generation with ``changes``. A rollback not cleared by a resume is
        kept (see the class docstring)."""
        generation = self.generation + 1
        if changes.get("rollback"):
            changes["rollback_generation"] = generation
        elif changes.get("suspended") is False:
            changes["rollback"], changes["rollback_generation"] = None, 0
        elif "rollback" in changes and self.rollback:
            del changes["rollback"]          # a suspend keeps a pending rollback
        return replace(self, generation=generation, requested_at=now_iso(), version="",
                       problem="", **changes)

    def wants_rollback(self, observed: int) -> bool:
        """Is there a rollback the reconciler (having seen ``observed``) has not done?"""
        return bool(self.rollback and self.suspended and (
            self.rollback_generation or self.generation) > observed)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["version"], data["problem"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Control:
        generation = int(data.get("generation") or 0)
        rollback = data.get("rollback")
        return cls(generation=generation,
                   suspended=bool(data.get("suspended")), reason=data.get("reason"),
                   rollback=rollback,
                   requested_at=str(data.get("requested_at", "")),
                   requested_by=str(data.get("requested_by", "")),
                   rollback_generation=int(data.get("rollback_generation")
                                           or (generation if rollback else 0)))


def clean(value: Any) -> Any:
    """Bounded, JSON-ready: long messages and detail lists are cut."""
    if isinstance(value, dict):
        out = {k: clean(v) for k, v in value.items()}
        if "message" in out and isinstance(out["message"], str):
            out["message"] = out["message"][:_MESSAGE_LIMIT]
        if "details" in out and isinstance(out["details"], list):
            out["details"] = [str(d)[:500] for d in out["details"][:_DETAILS_LIMIT]]
        return out
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    return value


def outputs_to_keep(status: Status, *, limit: int = OUTPUTS_KEPT) -> set[str]:
    """The revisions whose output a rollback may still ask for: the newest applied ones
    (and whatever is live or in progress)."""
    keep: list[str] = []
    for attempt in status.history:
        if attempt.result.live and attempt.revision not in keep:
            keep.append(attempt.revision)
    chosen = set(keep[:limit])
    if status.applied is not None:
        chosen.add(status.applied.revision)
    if status.in_progress:
        chosen.add(status.in_progress)
    return chosen

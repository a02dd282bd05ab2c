"""Where a rollout stands: its phase, stage and traffic, as one frozen, persistable value.

The state is the rollout's entire memory. It is persisted after every transition (to disk
for the local mesh, to the cluster for kube), so a reconciler killed at any moment resumes
at the same stage with the same counters — and, because routes are computed from
(Git revision, rollout state), with the same weights. Timestamps are plain seconds
(``now`` is always passed in — wall-clock ``time.time()`` in the reconciler, so they mean
the same after a restart), so the JSON round trip is exact and decisions replay
identically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from reconciler.delivery.analysis import CheckResult
from reconciler.delivery.errors import StateFormatError

__all__ = ["SCHEMA", "Phase", "RolloutState", "StoredRollout", "TimelineEntry", "Traffic"]

SCHEMA = "meshdsl.dev/rollout/v1"
TIMELINE_LIMIT = 100


class Phase(StrEnum):
    """Where a rollout is; see ``reconciler.delivery.machine`` for the transitions."""

    IDLE = "idle"                  # known plan, nothing started (no traffic change yet)
    INITIALIZING = "initializing"  # all traffic on stable; confirm/pre-rollout gates
    PROGRESSING = "progressing"    # at a stage, waiting for its analysis
    HALTED = "halted"              # last analysis did not allow progress; judged again
    PAUSED = "paused"              # an operator froze it (meshctl canary pause)
    PROMOTING = "promoting"        # all traffic on target; finalising next step
    SUCCEEDED = "succeeded"        # done: the target serves everything
    ROLLING_BACK = "rolling-back"  # all traffic back on stable; finalising next step
    FAILED = "failed"              # done: stable serves everything

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED)


@dataclass(frozen=True)
class Traffic:
    """The traffic a rollout asks for. The split is stored as one canary weight so it can
    never fail to add up to 100; header route and mirror are the pre-weight stages."""

    stable: str
    target: str
    canary_weight: int = 0
    header_route: bool = False
    mirror_percent: float | None = None

    @property
    def weights(self) -> dict[str, int]:
        """Subset weights for ``compile_mesh``: stable first, both always present."""
        if self.stable == self.target:
            return {self.target: 100}
        return {self.stable: 100 - self.canary_weight, self.target: self.canary_weight}

    def describe(self) -> str:
        split = ", ".join(f"{subset}={weight}%" for subset, weight in self.weights.items())
        extras = [f"header route -> {self.target}"] if self.header_route else []
        if self.mirror_percent is not None:
            extras.append(f"mirror {self.mirror_percent:g}% -> {self.target}")
        return split + "".join(f"; {e}" for e in extras)


@dataclass(frozen=True)
class TimelineEntry:
    at: float
    phase: Phase
    stage: str
    message: str


@dataclass(frozen=True)
class RolloutState:
    """One rollout of one service. Fields are plain data; ``to_json``/``from_json`` are the
    persistence format (schema ``meshdsl.dev/rollout/v1``)."""

    namespace: str
    service: str
    target: str
    stable: str
    phase: Phase
    traffic: Traffic
    stages_digest: str = ""
    target_digest: str = ""
    revision: str = ""
    stage_index: int = -1            # -1: before the first stage
    stage_count: int = 0
    stage_label: str = ""
    failed_checks: int = 0           # over the whole rollout
    no_data_count: int = 0           # consecutive analyses without data
    max_failed_checks: int = 2       # the plan's limits, copied for status and commands
    no_data_limit: int = 3
    interval: float = 60.0
    rollout_confirmed: bool = False  # confirm-rollout gates have said yes
    started_at: float = 0.0
    last_transition: float = 0.0
    stage_started_at: float = 0.0    # when the current stage's traffic began
    next_analysis_at: float | None = None
    analyses: int = 0
    paused_from: Phase | None = None
    manual: str | None = None        # the last manual command applied
    reason: str = ""
    last_analysis: tuple[CheckResult, ...] = ()
    timeline: tuple[TimelineEntry, ...] = field(default=())

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.service)

    @property
    def active(self) -> bool:
        return not self.phase.terminal and self.phase is not Phase.IDLE

    def note(self, at: float, message: str) -> RolloutState:
        """The state with one more timeline entry (the oldest dropped past the limit)."""
        entry = TimelineEntry(at, self.phase, self.stage_label, message)
        return replace(self, timeline=(*self.timeline, entry)[-TIMELINE_LIMIT:])

    # --- persistence --------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        t = self.traffic
        return {
            "schema": SCHEMA,
            "namespace": self.namespace, "service": self.service,
            "target": self.target, "stable": self.stable, "phase": self.phase.value,
            "traffic": {"stable": t.stable, "target": t.target,
                        "canary_weight": t.canary_weight, "header_route": t.header_route,
                        "mirror_percent": t.mirror_percent, "weights": t.weights},
            "stages_digest": self.stages_digest, "target_digest": self.target_digest,
            "revision": self.revision, "stage_index": self.stage_index,
            "stage_count": self.stage_count, "stage_label": self.stage_label,
            "failed_checks": self.failed_checks, "no_data_count": self.no_data_count,
            "max_failed_checks": self.max_failed_checks, "no_data_limit": self.no_data_limit,
            "interval": self.interval, "rollout_confirmed": self.rollout_confirmed,
            "started_at": self.started_at, "last_transition": self.last_transition,
            "stage_started_at": self.stage_started_at,
            "next_analysis_at": self.next_analysis_at, "analyses": self.analyses,
            "paused_from": None if self.paused_from is None else self.paused_from.value,
            "manual": self.manual, "reason": self.reason,
            "last_analysis": [c.to_json() for c in self.last_analysis],
            "timeline": [{"at": e.at, "phase": e.phase.value, "stage": e.stage,
                          "message": e.message} for e in self.timeline],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RolloutState:
        if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, Mapping) else type(data).__name__
            raise StateFormatError(f"not a rollout state of schema {SCHEMA} (found {found!r})")
        try:
            t = data["traffic"]
            nxt, paused = data.get("next_analysis_at"), data.get("paused_from")
            return cls(
                namespace=str(data["namespace"]), service=str(data["service"]),
                target=str(data["target"]), stable=str(data["stable"]),
                phase=Phase(data["phase"]),
                traffic=Traffic(stable=str(t["stable"]), target=str(t["target"]),
                                canary_weight=int(t["canary_weight"]),
                                header_route=bool(t["header_route"]),
                                mirror_percent=None if t.get("mirror_percent") is None
                                else float(t["mirror_percent"])),
                stages_digest=str(data["stages_digest"]),
                target_digest=str(data["target_digest"]), revision=str(data["revision"]),
                stage_index=int(data["stage_index"]), stage_count=int(data["stage_count"]),
                stage_label=str(data["stage_label"]),
                failed_checks=int(data["failed_checks"]),
                no_data_count=int(data["no_data_count"]),
                max_failed_checks=int(data["max_failed_checks"]),
                no_data_limit=int(data["no_data_limit"]), interval=float(data["interval"]),
                rollout_confirmed=bool(data["rollout_confirmed"]),
                started_at=float(data["started_at"]),
                last_transition=float(data["last_transition"]),
                stage_started_at=float(data.get("stage_started_at",
                                                data["last_transition"])),
                next_analysis_at=None if nxt is None else float(nxt),
                analyses=int(data["analyses"]),
                paused_from=None if paused is None else Phase(paused),
                manual=None if data.get("manual") is None else str(data["manual"]),
                reason=str(data["reason"]),
                last_analysis=tuple(CheckResult.from_json(c) for c in data["last_analysis"]),
                timeline=tuple(TimelineEntry(float(e["at"]), Phase(e["phase"]),
                                             str(e["stage"]), str(e["message"]))
                               for e in data["timeline"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFormatError(f"rollout state {data.get('namespace')}/"
                                   f"{data.get('service')} is malformed: {exc!r}") from exc


@dataclass(frozen=True)
class StoredRollout:
    """A state as read from a store, with the store's generation of it: saving back with
    ``expected_generation`` fails if someone (a ``meshctl canary`` command, another
    reconciler) wrote in between, instead of silently undoing their change."""

    state: RolloutState
    generation: int

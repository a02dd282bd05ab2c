"""Replay a canary plan offline against recorded metrics: every decision, every route.

``meshctl canary simulate`` runs the real machine — the same ``needs``/``step`` the
reconciler runs — with a recording standing in for Prometheus and the webhooks, and time
jumping straight to each analysis. So a plan can be rehearsed (or a past rollout
re-judged) without a cluster, and what it prints is exactly what would have been applied.

The recording (JSON; see ``examples/canary/recorded-*.json``)::

    {
      "description": "free text",
      "checks": {                       # per check: one value per analysis, in order
        "request-count": [480, 510, 495, 502],
        "request-success-rate": [99.9, 99.7, null, 99.8],   # null: no data
        "request-duration@stable": [118, 120, 119, 121]     # <check>@stable: stable twin
      },
      "webhooks": {"confirm-promotion": [false, true]}      # per gate: one answer per call
    }

The n-th time the machine needs a value, it gets the n-th entry of that list. A check the
recording does not have, or whose list has run out, is **no data** (as in real life: never
a pass). A gate webhook the recording does not mention answers yes; past the end of its
list it repeats its last answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshdsl.compile import Manifest, canary_route
from meshdsl.model.canary import CanaryPlan
from meshdsl.model.spec import MeshSpec
from reconciler.delivery.actions import (
    Action,
    CallWebhook,
    Needs,
    Observations,
    RecordEvent,
    SetTraffic,
)
from reconciler.delivery.analysis import CheckResult
from reconciler.delivery.errors import RecordingError
from reconciler.delivery.machine import needs, start, step
from reconciler.delivery.phases import Phase, RolloutState, Traffic
from reconciler.delivery.routes import compile_with_rollouts

__all__ = ["Recording", "SimStep", "Simulation", "simulate"]

MAX_STEPS = 500


def _values(name: str, raw: Any) -> tuple[float | None, ...]:
    if not isinstance(raw, list) or not all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in raw):
        raise RecordingError(f"checks.{name} must be a list of numbers or null (no data)")
    return tuple(None if v is None else float(v) for v in raw)


def _answers(name: str, raw: Any) -> tuple[bool, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(v, bool) for v in raw):
        raise RecordingError(f"webhooks.{name} must be a non-empty list of true/false")
    return tuple(raw)


@dataclass
class Recording:
    """Recorded per-analysis values of each check and answers of each gate webhook.

    Mutable on purpose: it is a tape, and reading advances it."""

    checks: dict[str, tuple[float | None, ...]]
    webhooks: dict[str, tuple[bool, ...]] = field(default_factory=dict)
    description: str = ""
    warnings: list[str] = field(default_factory=list)
    _cursor: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> Recording:
        if not isinstance(data, Mapping) or not isinstance(data.get("checks", {}), Mapping):
            raise RecordingError('a recording is a JSON object: {"checks": {"<check>": '
                                 '[value per analysis, ...]}, "webhooks": {...}}')
        unknown = sorted(set(data) - {"description", "checks", "webhooks"})
        if unknown:
            raise RecordingError(f"unknown keys {unknown} (known: description, checks, "
                                 "webhooks)")
        hooks = data.get("webhooks", {})
        if not isinstance(hooks, Mapping):
            raise RecordingError('"webhooks" must map webhook names to lists of true/false')
        return cls(checks={str(k): _values(str(k), v) for k, v in data["checks"].items()},
                   webhooks={str(k): _answers(str(k), v) for k, v in hooks.items()},
                   description=str(data.get("description", "")))

    def _next(self, key: str) -> int:
        index = self._cursor.get(key, 0)
        self._cursor[key] = index + 1
        return index

    def answer(self, wanted: Needs) -> Observations:
        metrics: dict[str, float | None] = {}
        for query in wanted.queries:
            values = self.checks.get(query.key)
            index = self._next(query.key)
            if values is None:
                self._warn(f"the recording has no {query.key!r}: treated as no data")
                metrics[query.key] = None
            elif index >= len(values):
                self._warn(f"the recording of {query.key!r} ran out after {len(values)} "
                           "values: no data from then on")
                metrics[query.key] = None
            else:
                metrics[query.key] = values[index]
        gates: dict[str, bool] = {}
        for call in wanted.gates:
            answers = self.webhooks.get(call.name)
            index = self._next(f"webhook:{call.name}")
            gates[call.name] = True if answers is None else answers[min(index, len(answers) - 1)]
        return Observations(metrics=metrics, gates=gates)

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


@dataclass(frozen=True)
class SimStep:
    """One decision of the replay: when, from which phase to which, on what evidence."""

    at: float
    phase: Phase
    stage: str
    traffic: Traffic
    decision: str
    checks: tuple[CheckResult, ...]
    actions: tuple[str, ...]
    virtual_services: tuple[Manifest, ...] = ()


@dataclass(frozen=True)
class Simulation:
    steps: tuple[SimStep, ...]
    final: RolloutState
    warnings: tuple[str, ...]
    finished: bool


def _describe(action: Action) -> str:
    if isinstance(action, SetTraffic):
        return f"set traffic: {action.traffic.describe()}"
    if isinstance(action, CallWebhook):
        return f"call {action.call.kind} webhook {action.call.name}"
    if isinstance(action, RecordEvent):
        return f"event ({action.severity}): {action.message}"
    return "persist state"


def _owned_routes(spec: MeshSpec, plan: CanaryPlan) -> set[tuple[str, str]]:
    key = (plan.namespace, plan.service)
    return {(vs.namespace, vs.name) for vs in spec.virtual_services
            if (found := canary_route(vs, spec)) is not None and found[1] == key}


def _record(spec: MeshSpec, owned: set[tuple[str, str]], state: RolloutState,
            actions: list[Action], at: float, checks: tuple[CheckResult, ...]) -> SimStep:
    routes: tuple[Manifest, ...] = ()
    if any(isinstance(a, SetTraffic) for a in actions):
        routes = tuple(m for m in compile_with_rollouts(spec, [state])
                       if m["kind"] == "VirtualService"
                       and (m["metadata"]["namespace"], m["metadata"]["name"]) in owned)
    events = [a.message for a in actions if isinstance(a, RecordEvent)]
    decision = events[-1] if events else f"waiting ({state.reason or state.phase.value})"
    return SimStep(at=at, phase=state.phase, stage=state.stage_label, traffic=state.traffic,
                   decision=decision, checks=checks,
                   actions=tuple(_describe(a) for a in actions), virtual_services=routes)


def simulate(spec: MeshSpec, plan: CanaryPlan, recording: Recording, *,
             max_steps: int = MAX_STEPS) -> Simulation:
    """Run ``plan`` from its start until it succeeds or fails (or ``max_steps`` decisions,
    e.g. when a gate never says yes), jumping time to each analysis."""
    owned = _owned_routes(spec, plan)
    state, actions = start(plan, "simulated", 0.0)
    steps = [_record(spec, owned, state, actions, 0.0, ())]
    now = 0.0
    for _ in range(max_steps):
        if state.phase.terminal:
            break
        if state.next_analysis_at is not None and state.next_analysis_at > now:
            now = state.next_analysis_at
        wanted = needs(state, plan, now)
        observations = recording.answer(wanted)
        state, actions = step(state, plan, observations, now)
        checks = state.last_analysis if wanted else ()
        steps.append(_record(spec, owned, state, actions, now, checks))
    return Simulation(steps=tuple(steps), final=state, warnings=tuple(recording.warnings),
                      finished=state.phase.terminal)

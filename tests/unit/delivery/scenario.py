"""Shared helpers for the delivery tests: a default plan, canned observations, a driver.

The driver is what the reconcile loop does, minus the I/O: jump the clock to the next
analysis, ask ``needs``, answer from a script, ``step``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshdsl.model.canary import (
    CanaryPlan,
    HeaderStage,
    LatencyP99,
    MirrorStage,
    Step,
    SuccessRate,
    Webhook,
)
from meshdsl.model.matching import Header
from reconciler.delivery import machine
from reconciler.delivery.actions import Action, Observations
from reconciler.delivery.phases import RolloutState

HEALTHY: Mapping[str, float | None] = {
    "request-count": 500, "request-success-rate": 99.9, "request-duration": 120}
FAILING: Mapping[str, float | None] = {
    "request-count": 500, "request-success-rate": 91.0, "request-duration": 120}
SLOW: Mapping[str, float | None] = {
    "request-count": 500, "request-success-rate": 99.9, "request-duration": 900}
NO_DATA: Mapping[str, float | None] = {
    "request-count": None, "request-success-rate": None, "request-duration": None}
FEW_REQUESTS: Mapping[str, float | None] = {
    "request-count": 3, "request-success-rate": 100.0, "request-duration": 50}


def hook(name: str, kind: str) -> Webhook:
    return Webhook(name=name, url=f"http://127.0.0.1:9/{name}", kind=kind)  # type: ignore[arg-type]


def make_plan(**overrides: Any) -> CanaryPlan:
    """reviews in shop, v1 -> v2, steps 5/10/50/100 every minute, Flagger's two checks."""
    fields: dict[str, Any] = {
        "service": "reviews", "namespace": "shop", "target": "v2", "stable": "v1",
        "steps": [Step(weight=w) for w in (5, 10, 50, 100)], "interval": "1m",
        "checks": [SuccessRate(min=99), LatencyP99(max_ms=500)],
    }
    if isinstance(overrides.get("steps"), list):
        overrides["steps"] = [s if isinstance(s, Step) else Step(weight=s)
                              for s in overrides["steps"]]
    if overrides.get("header_stage") is True:
        overrides["header_stage"] = HeaderStage(match=Header("x-canary", exact="1"))
    if overrides.get("mirror_stage") is True:
        overrides["mirror_stage"] = MirrorStage(percent=30)
    fields.update(overrides)
    return CanaryPlan(**fields)


def obs(metrics: Mapping[str, float | None] = HEALTHY, gates: Mapping[str, bool] | None = None,
        **kwargs: Any) -> Observations:
    return Observations(metrics=dict(metrics), gates=dict(gates or {}), **kwargs)


@dataclass
class Run:
    """Every state and the actions of each step, from ``start`` on (index 0)."""

    states: list[RolloutState] = field(default_factory=list)
    actions: list[list[Action]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    @property
    def final(self) -> RolloutState:
        return self.states[-1]

    def weights(self) -> list[dict[str, int]]:
        return [s.traffic.weights for s in self.states]

    def phases(self) -> list[str]:
        return [s.phase.value for s in self.states]


def advance(state: RolloutState, now: float) -> float:
    """The time of the next decision: the scheduled analysis, or now when overdue."""
    if state.next_analysis_at is not None and state.next_analysis_at > now:
        return state.next_analysis_at
    return now


def drive(plan: CanaryPlan, script: Iterable[Observations], *,
          state: RolloutState | None = None, now: float = 0.0) -> Run:
    """Start (unless ``state`` is given) and take one step per scripted observation; stop
    early once the rollout is finished."""
    run = Run()
    if state is None:
        state, actions = machine.start(plan, "rev-1", now)
        run.states.append(state)
        run.actions.append(actions)
        run.times.append(now)
    for observation in script:
        if state.phase.terminal:
            break
        now = advance(state, now)
        state, actions = machine.step(state, plan, observation, now)
        run.states.append(state)
        run.actions.append(actions)
        run.times.append(now)
    return run

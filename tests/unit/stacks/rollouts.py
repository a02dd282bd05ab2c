"""Rollouts of bookinfo's frontend canary (v1 -> v2, steps 5/10/50/100) as the reconciler
stores them, made by the real canary machine (shared with the integration tests)."""

from __future__ import annotations

from meshdsl.model.canary import CanaryPlan
from meshdsl.model.spec import MeshSpec
from reconciler.delivery.phases import Phase, RolloutState
from reconciler.ports import RolloutStore
from tests.unit.delivery.scenario import FAILING, drive, obs


def frontend_plan(spec: MeshSpec) -> CanaryPlan:
    (plan,) = [p for p in spec.canaries if (p.namespace, p.service) == ("default", "frontend")]
    return plan


def in_progress(spec: MeshSpec, analyses: int = 2) -> RolloutState:
    """Started, then ``analyses`` healthy analyses: 2 → stage 2/4, v1=90 %, v2=10 %."""
    state = drive(frontend_plan(spec), [obs()] * analyses).final
    assert state.phase is Phase.PROGRESSING, state.phase
    return state


def succeeded(spec: MeshSpec) -> RolloutState:
    state = drive(frontend_plan(spec), [obs()] * 10).final
    assert state.phase is Phase.SUCCEEDED, state.phase
    return state


def failed(spec: MeshSpec) -> RolloutState:
    state = drive(frontend_plan(spec), [obs()] * 2 + [obs(FAILING)] * 6).final
    assert state.phase is Phase.FAILED, state.phase
    return state


def store_rollout(store: RolloutStore, state: RolloutState) -> None:
    """Save ``state`` as the rollout's next generation, as the reconcile loop would."""
    current = store.load(state.namespace, state.service)
    store.save(state, expected_generation=None if current is None else current.generation)

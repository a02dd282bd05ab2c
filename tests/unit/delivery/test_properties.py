"""Properties of the canary machine over arbitrary plans and observation sequences."""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshdsl.model.canary import CanaryPlan
from reconciler.delivery import machine
from reconciler.delivery.actions import Observations, SetTraffic
from reconciler.delivery.errors import ManualCommandError
from reconciler.delivery.phases import Phase, RolloutState
from tests.unit.delivery.scenario import advance, hook, make_plan

# A small alphabet of analysis outcomes keeps examples readable and shrinking fast.
DEFINITIVE = [
    {"request-count": 500, "request-success-rate": 99.9, "request-duration": 100},
    {"request-count": 500, "request-success-rate": 50.0, "request-duration": 100},
    {"request-count": 500, "request-success-rate": 99.9, "request-duration": 5000},
    {"request-count": 10, "request-success-rate": 99.0, "request-duration": 500},
]
UNSURE = [
    {"request-count": None, "request-success-rate": None, "request-duration": None},
    {"request-count": 3, "request-success-rate": 100.0, "request-duration": 10},
    {"request-count": 500, "request-success-rate": None, "request-duration": 100},
    {"request-count": 500, "request-success-rate": float("nan"), "request-duration": 100},
    {},
]

@st.composite
def plans(draw: st.DrawFn) -> CanaryPlan:
    weights = sorted(set(draw(st.lists(st.integers(0, 100), min_size=1, max_size=5))))
    hooks = [hook("release", "confirm-promotion")] if draw(st.booleans()) else []
    hooks += [hook("load", "rollout")] if draw(st.booleans()) else []
    return make_plan(steps=weights, mirror_stage=draw(st.booleans()) or None,
                     header_stage=draw(st.booleans()) or None,
                     max_failed_checks=draw(st.integers(1, 3)),
                     no_data_limit=draw(st.integers(1, 3)),
                     min_requests=draw(st.sampled_from([0, 10])), webhooks=hooks)


def observation(definitive: bool) -> st.SearchStrategy[Observations]:
    metrics = st.sampled_from(DEFINITIVE if definitive else DEFINITIVE + UNSURE)
    gates = (st.just({"release": True, "load": True}) if definitive else
             st.fixed_dictionaries({"release": st.booleans(), "load": st.booleans()}))
    return st.builds(Observations, metrics=metrics, gates=gates)


def _valid(state: RolloutState) -> None:
    weights = state.traffic.weights
    assert set(weights) == {state.stable, state.target}
    assert all(0 <= w <= 100 for w in weights.values())
    assert sum(weights.values()) == 100
    if state.phase is Phase.SUCCEEDED:
        assert weights[state.target] == 100
    if state.phase in (Phase.FAILED, Phase.ROLLING_BACK, Phase.INITIALIZING):
        assert weights[state.stable] == 100


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans(), script=st.lists(observation(False), max_size=40),
       commands=st.lists(st.sampled_from(["none", "pause", "resume", "promote", "abort"]),
                         max_size=40))
def test_weights_are_always_a_valid_split(plan: CanaryPlan, script: list[Observations],
                                          commands: list[str]) -> None:
    state, actions = machine.start(plan, "r", 0.0)
    now = 0.0
    for index, observation in enumerate(script):
        _valid(state)
        for action in actions:
            if isinstance(action, SetTraffic):
                assert sum(action.traffic.weights.values()) == 100
        command = commands[index] if index < len(commands) else "none"
        if command != "none":
            with contextlib.suppress(ManualCommandError):
                state, actions = getattr(machine, command)(state, now)
            _valid(state)
        now = advance(state, now)
        state, actions = machine.step(state, plan, observation, now)
    _valid(state)
    assert RolloutState.from_json(json.loads(json.dumps(state.to_json()))) == state


def run_until_terminal(plan: CanaryPlan, script: list[Observations]
                       ) -> tuple[RolloutState, int]:
    """Start a rollout and step it through ``script`` (each step when the next one is due)
    until it ends or the script does: the last state and how many steps it took."""
    state, _ = machine.start(plan, "r", 0.0)
    now, steps = 0.0, 0
    for observation in script:
        if state.phase.terminal:
            break
        now = advance(state, now)
        state, _ = machine.step(state, plan, observation, now)
        steps += 1
    return state, steps


@settings(max_examples=300, deadline=None)
@given(plan=plans(), script=st.lists(observation(True), min_size=20, max_size=20))
def test_definitive_observations_finish_within_a_bound(plan: CanaryPlan,
                                                       script: list[Observations]) -> None:
    """Each analysis with data either advances a stage or uses up one allowed failure, so
    the rollout ends after at most stages + max_failed_checks analyses (+ start, finish)."""
    state, steps = run_until_terminal(plan, script)
    assert state.phase in (Phase.SUCCEEDED, Phase.FAILED)
    assert steps <= state.stage_count + plan.max_failed_checks + 2


@settings(max_examples=200, deadline=None)
@given(plan=plans(), script=st.lists(observation(False), min_size=60, max_size=60))
def test_any_observations_with_open_gates_finish_within_a_bound(
        plan: CanaryPlan, script: list[Observations]) -> None:
    """Missing data only delays: at most no_data_limit - 1 analyses in a row, between
    analyses that advance or fail."""
    opened = [Observations(metrics=o.metrics, gates={"release": True, "load": True})
              for o in script]
    state, steps = run_until_terminal(plan, opened)
    assert state.phase.terminal
    assert steps <= (state.stage_count + plan.max_failed_checks) * plan.no_data_limit + 2

"""The transition table of the canary machine, one row per (state, observations) case.

Each row builds a state with ``start`` + ``replace``, takes exactly one ``step`` and checks
phase, stage, weights, counters and the kinds of actions, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from reconciler.delivery import machine
from reconciler.delivery.actions import (
    CallWebhook,
    Observations,
    Persist,
    RecordEvent,
    SetTraffic,
)
from reconciler.delivery.phases import Phase, RolloutState, Traffic
from tests.unit.delivery.scenario import (
    FAILING,
    FEW_REQUESTS,
    HEALTHY,
    NO_DATA,
    SLOW,
    hook,
    make_plan,
    obs,
)

T0 = 1000.0


def at_stage(plan_kwargs: dict[str, Any], phase: Phase, index: int, **changes: Any
             ) -> RolloutState:
    """A state of the default plan sitting at stage ``index`` in ``phase``, due at T0."""
    plan = make_plan(**plan_kwargs)
    state, _ = machine.start(plan, "rev-1", 0.0)
    if index >= 0:
        state, _ = machine.step(state, plan, obs(), 0.0)  # -> stage 0
        for _ in range(index):
            state, _ = machine.step(state, plan, obs(), state.next_analysis_at or 0.0)
    traffic = changes.pop("traffic", state.traffic)
    return replace(state, phase=phase, next_analysis_at=T0, traffic=traffic, **changes)


@dataclass(frozen=True)
class Row:
    name: str
    plan: dict[str, Any]
    phase: Phase
    stage: int
    observations: Observations
    expect_phase: Phase
    expect_stage: int
    expect_weights: dict[str, int]
    expect_actions: tuple[type, ...]
    now: float = T0
    state: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, Any] = field(default_factory=dict)
    base: dict[str, Any] | None = None  # the plan the state was made with (default: plan)


HOOKS_CONFIRM = {"webhooks": [hook("go", "confirm-rollout")]}
HOOKS_PRE = {"webhooks": [hook("migrate", "pre-rollout")]}
HOOKS_GATE = {"webhooks": [hook("release", "confirm-promotion")]}
HOOKS_ROLLOUT = {"webhooks": [hook("load", "rollout")]}
HOOKS_END = {"webhooks": [hook("undo", "rollback"), hook("done", "post-rollout"),
                          hook("chat", "event")]}
STABLE = {"v1": 100, "v2": 0}
TARGET = {"v1": 0, "v2": 100}
EVENT = RecordEvent
PERSIST_ONLY = (Persist,)
MOVE = (Persist, SetTraffic, EVENT)
HOLD = (Persist, EVENT)

ROWS = [
    # --- initializing ---------------------------------------------------------------------
    Row("init: no gates -> first stage", {}, Phase.INITIALIZING, -1, obs(),
        Phase.PROGRESSING, 0, {"v1": 95, "v2": 5}, MOVE,
        expect={"next_analysis_at": T0 + 60}),
    Row("init: not due -> nothing", {}, Phase.INITIALIZING, -1, obs(),
        Phase.INITIALIZING, -1, STABLE, (), now=T0 - 1),
    Row("init: confirm-rollout says no -> wait an interval", HOOKS_CONFIRM,
        Phase.INITIALIZING, -1, obs(gates={"go": False}), Phase.INITIALIZING, -1, STABLE,
        HOLD, state={"rollout_confirmed": False},
        expect={"next_analysis_at": T0 + 60, "failed_checks": 0}),
    Row("init: confirm-rollout unanswered -> wait (fail closed)", HOOKS_CONFIRM,
        Phase.INITIALIZING, -1, obs(), Phase.INITIALIZING, -1, STABLE, HOLD,
        state={"rollout_confirmed": False}),
    Row("init: confirm-rollout yes -> confirmed, pre-rollout now", HOOKS_CONFIRM,
        Phase.INITIALIZING, -1, obs(gates={"go": True}), Phase.INITIALIZING, -1, STABLE,
        HOLD, state={"rollout_confirmed": False},
        expect={"rollout_confirmed": True, "next_analysis_at": T0}),
    Row("init: pre-rollout fails -> failed check, wait", HOOKS_PRE, Phase.INITIALIZING, -1,
        obs(gates={"migrate": False}), Phase.INITIALIZING, -1, STABLE, HOLD,
        expect={"failed_checks": 1, "next_analysis_at": T0 + 60}),
    Row("init: pre-rollout fails at the limit -> roll back", HOOKS_PRE, Phase.INITIALIZING,
        -1, obs(gates={"migrate": False}), Phase.ROLLING_BACK, -1, STABLE, HOLD,
        state={"failed_checks": 1}, expect={"failed_checks": 2}),
    Row("init: pre-rollout ok -> first stage", HOOKS_PRE, Phase.INITIALIZING, -1,
        obs(gates={"migrate": True}), Phase.PROGRESSING, 0, {"v1": 95, "v2": 5}, MOVE),
    # --- analysis at a stage -------------------------------------------------------------
    Row("stage: healthy -> next stage", {}, Phase.PROGRESSING, 0, obs(HEALTHY),
        Phase.PROGRESSING, 1, {"v1": 90, "v2": 10}, MOVE,
        expect={"analyses": 1, "next_analysis_at": T0 + 60}),
    Row("stage: not due -> nothing", {}, Phase.PROGRESSING, 0, obs(FAILING),
        Phase.PROGRESSING, 0, {"v1": 95, "v2": 5}, (), now=T0 - 0.001),
    Row("stage: failing -> halted, failed 1, same weights", {}, Phase.PROGRESSING, 1,
        obs(FAILING), Phase.HALTED, 1, {"v1": 90, "v2": 10}, HOLD,
        expect={"failed_checks": 1, "next_analysis_at": T0 + 60}),
    Row("stage: slow p99 -> halted", {}, Phase.PROGRESSING, 0, obs(SLOW), Phase.HALTED, 0,
        {"v1": 95, "v2": 5}, HOLD, expect={"failed_checks": 1}),
    Row("halted: failing again at max -> roll back to 100% stable", {}, Phase.HALTED, 2,
        obs(FAILING), Phase.ROLLING_BACK, 2, STABLE, MOVE,
        state={"failed_checks": 1}, expect={"failed_checks": 2}),
    Row("halted: recovers -> next stage, failures kept", {}, Phase.HALTED, 0, obs(HEALTHY),
        Phase.PROGRESSING, 1, {"v1": 90, "v2": 10}, MOVE, state={"failed_checks": 1},
        expect={"failed_checks": 1}),
    Row("max_failed_checks=1: first failure rolls back", {"max_failed_checks": 1},
        Phase.PROGRESSING, 0, obs(FAILING), Phase.ROLLING_BACK, 0, STABLE, MOVE),
    Row("stage: no data -> halted, no_data 1", {}, Phase.PROGRESSING, 1, obs(NO_DATA),
        Phase.HALTED, 1, {"v1": 90, "v2": 10}, HOLD,
        expect={"no_data_count": 1, "failed_checks": 0}),
    Row("stage: empty observations are no data", {}, Phase.PROGRESSING, 1, Observations(),
        Phase.HALTED, 1, {"v1": 90, "v2": 10}, HOLD, expect={"no_data_count": 1}),
    Row("halted: no data at the limit -> roll back", {}, Phase.HALTED, 1, obs(NO_DATA),
        Phase.ROLLING_BACK, 1, STABLE, MOVE, state={"no_data_count": 2},
        expect={"no_data_count": 3}),
    Row("halted: data returns -> next stage, no_data reset", {}, Phase.HALTED, 1,
        obs(HEALTHY), Phase.PROGRESSING, 2, {"v1": 50, "v2": 50}, MOVE,
        state={"no_data_count": 2}, expect={"no_data_count": 0}),
    Row("stage: too few requests -> no data, not a pass", {}, Phase.PROGRESSING, 0,
        obs(FEW_REQUESTS), Phase.HALTED, 0, {"v1": 95, "v2": 5}, HOLD,
        expect={"no_data_count": 1}),
    Row("stage: min_requests=0 -> few requests judged", {"min_requests": 0},
        Phase.PROGRESSING, 0, obs(FEW_REQUESTS), Phase.PROGRESSING, 1, {"v1": 90, "v2": 10},
        MOVE),
    Row("stage: a failure outranks missing data", {}, Phase.PROGRESSING, 0,
        obs({**FAILING, "request-duration": None}), Phase.HALTED, 0, {"v1": 95, "v2": 5},
        HOLD, expect={"failed_checks": 1, "no_data_count": 0}),
    Row("stage: rollout webhook fails -> failed check", HOOKS_ROLLOUT, Phase.PROGRESSING, 0,
        obs(HEALTHY, {"load": False}), Phase.HALTED, 0, {"v1": 95, "v2": 5}, HOLD,
        expect={"failed_checks": 1}),
    Row("stage: rollout webhook ok -> next", HOOKS_ROLLOUT, Phase.PROGRESSING, 0,
        obs(HEALTHY, {"load": True}), Phase.PROGRESSING, 1, {"v1": 90, "v2": 10}, MOVE),
    Row("no checks: nothing to judge -> next", {"checks": []}, Phase.PROGRESSING, 0,
        obs(NO_DATA), Phase.PROGRESSING, 1, {"v1": 90, "v2": 10}, MOVE),
    # --- last stage and promotion --------------------------------------------------------
    Row("last stage (100%): healthy -> promoting, routes already there", {},
        Phase.PROGRESSING, 3, obs(HEALTHY), Phase.PROMOTING, 3, TARGET, HOLD,
        expect={"next_analysis_at": T0}),
    Row("last stage < 100: promoting still ends at 100%", {"steps": [10, 50]},
        Phase.PROGRESSING, 1, obs(HEALTHY), Phase.PROMOTING, 1, TARGET, MOVE),
    Row("confirm-promotion says no -> hold the step", {"steps": [10, 50], **HOOKS_GATE},
        Phase.PROGRESSING, 1, obs(HEALTHY, {"release": False}), Phase.HALTED, 1,
        {"v1": 50, "v2": 50}, HOLD,
        expect={"failed_checks": 0, "next_analysis_at": T0 + 60}),
    Row("confirm-promotion yes -> promoting", {"steps": [10, 50], **HOOKS_GATE},
        Phase.HALTED, 1, obs(HEALTHY, {"release": True}), Phase.PROMOTING, 1, TARGET, MOVE),
    Row("confirm-promotion yes but checks fail -> halted", {"steps": [10, 50], **HOOKS_GATE},
        Phase.HALTED, 1, obs(FAILING, {"release": True}), Phase.HALTED, 1,
        {"v1": 50, "v2": 50}, HOLD, expect={"failed_checks": 1}),
    Row("promoting -> succeeded, post-rollout + event hooks", HOOKS_END, Phase.PROMOTING, 3,
        obs(), Phase.SUCCEEDED, 3, TARGET, (Persist, CallWebhook, CallWebhook, EVENT),
        state={"traffic": Traffic("v1", "v2", 100)}, expect={"next_analysis_at": None}),
    Row("rolling back -> failed, rollback + post-rollout + event hooks", HOOKS_END,
        Phase.ROLLING_BACK, 2, obs(), Phase.FAILED, 2, STABLE,
        (Persist, CallWebhook, CallWebhook, CallWebhook, EVENT),
        state={"traffic": Traffic("v1", "v2", 0)}),
    Row("succeeded: stays, nothing to do", {}, Phase.SUCCEEDED, 3, obs(FAILING),
        Phase.SUCCEEDED, 3, TARGET, (), state={"traffic": Traffic("v1", "v2", 100)}),
    Row("failed: stays, nothing to do", {}, Phase.FAILED, 1, obs(HEALTHY), Phase.FAILED, 1,
        STABLE, (), state={"traffic": Traffic("v1", "v2", 0)}),
    Row("paused: nothing is judged", {}, Phase.PAUSED, 1, obs(FAILING), Phase.PAUSED, 1,
        {"v1": 90, "v2": 10}, (), state={"paused_from": Phase.PROGRESSING}),
    # --- restarts --------------------------------------------------------------------------
    Row("new target mid-rollout -> restart at the first stage", {"target": "v3"},
        Phase.PROGRESSING, 2, obs(HEALTHY), Phase.INITIALIZING, -1, {"v1": 100, "v3": 0},
        MOVE, now=T0 - 30, expect={"target": "v3", "failed_checks": 0}, base={}),
    Row("target changed in Git (digest) -> restart", {}, Phase.HALTED, 2,
        obs(HEALTHY, target_digest="new", revision="rev-2"), Phase.INITIALIZING, -1, STABLE,
        MOVE, state={"failed_checks": 1},
        expect={"target_digest": "new", "revision": "rev-2", "failed_checks": 0}),
    Row("stage shape changed while active -> restart", {"steps": [20, 100]},
        Phase.PROGRESSING, 1, obs(), Phase.INITIALIZING, -1, STABLE, MOVE, base={}),
    Row("stage shape changed after success -> keep the result", {"steps": [20, 100]},
        Phase.SUCCEEDED, 3, obs(), Phase.SUCCEEDED, 3, TARGET, (),
        state={"traffic": Traffic("v1", "v2", 100)}, base={}),
    Row("succeeded, then a new target -> new rollout", {"target": "v3", "stable": "v2"},
        Phase.SUCCEEDED, 3, obs(), Phase.INITIALIZING, -1, {"v2": 100, "v3": 0}, MOVE,
        state={"traffic": Traffic("v1", "v2", 100)}, base={}),
    Row("a new revision alone only updates the state", {}, Phase.PROGRESSING, 1,
        obs(revision="rev-9"), Phase.PROGRESSING, 1, {"v1": 90, "v2": 10}, PERSIST_ONLY,
        now=T0 - 10, expect={"revision": "rev-9"}),
    Row("idle -> initializing", {}, Phase.IDLE, -1, obs(), Phase.INITIALIZING, -1, STABLE,
        MOVE),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_transition(row: Row) -> None:
    state = at_stage(row.plan if row.base is None else row.base, row.phase, row.stage,
                     **row.state)
    plan = make_plan(**row.plan)
    new, actions = machine.step(state, plan, row.observations, row.now)
    assert new.phase is row.expect_phase, new.reason
    assert new.stage_index == row.expect_stage
    assert new.traffic.weights == row.expect_weights
    assert tuple(type(a) for a in actions) == row.expect_actions, actions
    for name, value in row.expect.items():
        assert getattr(new, name) == value, name
    if actions:
        assert isinstance(actions[0], Persist) and actions[0].state == new
    for action in actions:
        if isinstance(action, SetTraffic):
            assert action.traffic == new.traffic


def test_every_phase_appears_in_the_table() -> None:
    seen = {r.phase for r in ROWS} | {r.expect_phase for r in ROWS}
    assert seen == set(Phase)

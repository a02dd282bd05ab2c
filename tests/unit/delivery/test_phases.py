"""The persisted form of a rollout: exact round trip, clear errors for anything else."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from reconciler.delivery.errors import StateFormatError
from reconciler.delivery.phases import SCHEMA, TIMELINE_LIMIT, Phase, RolloutState, Traffic
from tests.unit.delivery.scenario import FAILING, drive, make_plan, obs


def test_round_trip_of_every_state_of_a_rollout() -> None:
    run = drive(make_plan(mirror_stage=True, header_stage=True),
                [obs(), obs(), obs(FAILING), obs(), obs(), obs(), obs(), obs()])
    for state in run.states:
        text = json.dumps(state.to_json(), sort_keys=True)
        assert RolloutState.from_json(json.loads(text)) == state
    assert run.final.to_json()["traffic"]["weights"] == {"v1": 0, "v2": 100}


@pytest.mark.parametrize(("data", "message"), [
    ({}, "not a rollout state of schema"),
    ([], "not a rollout state"),
    ({"schema": "other/v9"}, "found 'other/v9'"),
    ({"schema": SCHEMA, "namespace": "a", "service": "b"}, "a/b is malformed"),
])
def test_malformed_states_are_refused(data: object, message: str) -> None:
    with pytest.raises(StateFormatError, match=message):
        RolloutState.from_json(data)  # type: ignore[arg-type]


def test_unknown_phase_is_refused() -> None:
    state = drive(make_plan(), [obs()]).final
    data = state.to_json() | {"phase": "exploded"}
    with pytest.raises(StateFormatError, match="malformed"):
        RolloutState.from_json(data)


def test_traffic_weights_always_add_up() -> None:
    assert Traffic("v1", "v2", 30).weights == {"v1": 70, "v2": 30}
    assert Traffic("v1", "v1", 30).weights == {"v1": 100}
    assert Traffic("v1", "v2", 0, mirror_percent=5).describe() == (
        "v1=100%, v2=0%; mirror 5% -> v2")


def test_timeline_is_bounded() -> None:
    state = drive(make_plan(), [obs()]).final
    for i in range(TIMELINE_LIMIT + 20):
        state = state.note(float(i), f"entry {i}")
    assert len(state.timeline) == TIMELINE_LIMIT
    assert state.timeline[-1].message == f"entry {TIMELINE_LIMIT + 19}"
    assert replace(state, phase=Phase.FAILED).active is False

"""The weights a ``pulumi up`` deploys: a rollout in progress is never reset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshdsl.compile import compile_mesh
from meshdsl.model import MeshSpec
from stacks.errors import RolloutStateError
from stacks.rollout import JsonRolloutState, Level, plan_weights

FRONTEND = ("default", "frontend")


def frontend_route(spec: MeshSpec, weights: dict[tuple[str, str], dict[str, int]]) -> object:
    (vs,) = [m for m in compile_mesh(spec, weights=weights or None)
             if m["kind"] == "VirtualService" and m["metadata"]["name"] == "frontend"]
    return [(r["destination"]["subset"], r.get("weight")) for r in vs["spec"]["http"][-1]["route"]]


def write_state(tmp_path: Path, data: object) -> JsonRolloutState:
    path = tmp_path / "rollouts.json"
    path.write_text(json.dumps(data))
    return JsonRolloutState(path)


# --- reading the state --------------------------------------------------------------------


def test_reads_weights_by_namespace_and_service(tmp_path: Path) -> None:
    state = write_state(tmp_path, {"rollouts": {"default/frontend": {
        "weights": {"v1": 90, "v2": 10}, "phase": "progressing", "step": 1}}})
    assert state.current_weights() == {FRONTEND: {"v1": 90, "v2": 10}}


def test_an_empty_state_has_no_rollouts(tmp_path: Path) -> None:
    assert write_state(tmp_path, {}).current_weights() == {}
    assert write_state(tmp_path, {"rollouts": {}}).current_weights() == {}


def test_a_missing_file_is_an_error_not_no_rollouts(tmp_path: Path) -> None:
    with pytest.raises(RolloutStateError, match="does not exist; point meshdsl:rollout_state"):
        JsonRolloutState(tmp_path / "nope.json").current_weights()


@pytest.mark.parametrize(("data", "message"), [
    ([], "expected"),
    ({"rollouts": []}, "expected"),
    ({"rollouts": {"frontend": {"weights": {"v1": 100}}}}, "is not '<namespace>/<service>'"),
    ({"rollouts": {"default/frontend": {}}}, "needs \"weights\""),
    ({"rollouts": {"default/frontend": {"weights": {"v1": "90"}}}}, "needs \"weights\""),
    ({"rollouts": {"default/frontend": {"weights": {"v1": True}}}}, "needs \"weights\""),
])
def test_malformed_state(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(RolloutStateError, match=message):
        write_state(tmp_path, data).current_weights()


def test_unreadable_json(tmp_path: Path) -> None:
    path = tmp_path / "rollouts.json"
    path.write_text("{not json")
    with pytest.raises(RolloutStateError, match="cannot read rollout state"):
        JsonRolloutState(path).current_weights()


# --- deciding the weights -----------------------------------------------------------------


def test_canary_on_without_a_rollout_deploys_the_programs_weights(bookinfo: MeshSpec) -> None:
    plan = plan_weights(bookinfo, canary=True, rollouts={})
    assert plan.weights == {}
    assert plan.notes == []
    assert frontend_route(bookinfo, plan.weights) == [("v1", 95), ("v2", 5)]


def test_canary_on_without_rollout_state_warns_that_it_cannot_see(bookinfo: MeshSpec) -> None:
    plan = plan_weights(bookinfo, canary=True, rollouts=None)
    assert plan.weights == {}
    (note,) = plan.notes
    assert note.level is Level.WARNING
    assert "meshdsl:rollout_state is not set" in note.message
    assert "default/frontend" in note.message


def test_mid_rollout_the_current_weights_are_kept_and_said(bookinfo: MeshSpec) -> None:
    plan = plan_weights(bookinfo, canary=True, rollouts={FRONTEND: {"v1": 50, "v2": 50}},
                        source="state.json")
    assert plan.weights == {FRONTEND: {"v1": 50, "v2": 50}}
    (note,) = plan.notes
    assert note.level is Level.INFO
    assert note.message == (
        "default/frontend is mid-rollout: keeping the rollout's current weights v1=50%, "
        "v2=50% from state.json instead of the program's; the reconciler owns them until "
        "the rollout ends")
    assert frontend_route(bookinfo, plan.weights) == [("v1", 50), ("v2", 50)]


def test_canary_off_sends_everything_to_stable(bookinfo: MeshSpec) -> None:
    plan = plan_weights(bookinfo, canary=False, rollouts=None)
    assert plan.weights == {FRONTEND: {"v1": 100}}
    assert [n.level for n in plan.notes] == [Level.INFO]
    assert "sends all traffic to its stable version v1" in plan.notes[0].message
    assert frontend_route(bookinfo, plan.weights) == [("v1", 100)]


def test_canary_off_never_resets_a_rollout_in_progress(bookinfo: MeshSpec) -> None:
    plan = plan_weights(bookinfo, canary=False, rollouts={FRONTEND: {"v1": 90, "v2": 10}})
    assert plan.weights == {FRONTEND: {"v1": 90, "v2": 10}}
    assert [n.level for n in plan.notes] == [Level.INFO, Level.WARNING]
    assert "its weights are kept, not reset" in plan.notes[1].message


def test_rollout_of_a_service_the_stack_does_not_deploy_is_ignored(bookinfo: MeshSpec) -> None:
    plan = plan_weights(bookinfo, canary=True, rollouts={("other", "svc"): {"v1": 100}})
    assert plan.weights == {}
    assert [n.level for n in plan.notes] == [Level.WARNING]


@pytest.mark.parametrize(("split", "message"), [
    ({"v1": 90, "v3": 10}, "weights v3, which the program does not declare"),
    ({"v1": 90, "v2": 20}, "must be 0 or more and add up to 100"),
    ({"v1": 110, "v2": -10}, "must be 0 or more and add up to 100"),
])
def test_state_that_does_not_fit_the_program(bookinfo: MeshSpec, split: dict[str, int],
                                             message: str) -> None:
    with pytest.raises(RolloutStateError, match=message):
        plan_weights(bookinfo, canary=True, rollouts={FRONTEND: split})

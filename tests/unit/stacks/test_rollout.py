"""The weights a ``pulumi up`` deploys: a rollout in progress is never reset."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from meshdsl.compile import compile_mesh
from meshdsl.model import MeshSpec
from reconciler.delivery import machine
from reconciler.delivery.phases import RolloutState
from reconciler.runtime.rollout_store import DiskRolloutStore
from stacks.errors import RolloutStateError
from stacks.rollout import (
    ClusterRolloutState,
    JsonRolloutState,
    Level,
    StoreRolloutState,
    plan_weights,
    state_dir_rollouts,
)
from tests.unit.stacks.rollouts import (
    failed,
    frontend_plan,
    in_progress,
    store_rollout,
    succeeded,
)

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


# --- reading the reconciler's own store ---------------------------------------------------


def state_dir(tmp_path: Path, *states: RolloutState) -> Path:
    """A reconciler state directory whose rollouts/ holds ``states``."""
    store = DiskRolloutStore.in_state_dir(tmp_path / "state")
    for state in states:
        store_rollout(store, state)
    (tmp_path / "state").mkdir(exist_ok=True)
    return tmp_path / "state"


def test_the_store_gives_the_current_weights_of_a_rollout_in_progress(
        tmp_path: Path, bookinfo: MeshSpec) -> None:
    store = DiskRolloutStore.in_state_dir(tmp_path)
    for analyses, weights in [(1, {"v1": 95, "v2": 5}), (2, {"v1": 90, "v2": 10}),
                              (3, {"v1": 50, "v2": 50})]:
        store_rollout(store, in_progress(bookinfo, analyses))
        assert StoreRolloutState(store, "here").current_weights() == {FRONTEND: weights}


def test_a_rollout_still_initializing_keeps_everything_on_stable(
        tmp_path: Path, bookinfo: MeshSpec) -> None:
    started, _ = machine.start(frontend_plan(bookinfo))
    store = DiskRolloutStore(tmp_path)
    store_rollout(store, started)
    assert StoreRolloutState(store, "here").current_weights() == {FRONTEND: {"v1": 100,
                                                                             "v2": 0}}


@pytest.mark.parametrize("finish", [succeeded, failed], ids=["succeeded", "failed"])
def test_a_finished_rollout_is_not_kept(tmp_path: Path, bookinfo: MeshSpec,
                                        finish: Callable[[MeshSpec], RolloutState]) -> None:
    store = DiskRolloutStore(tmp_path)
    store_rollout(store, finish(bookinfo))
    other = replace(in_progress(bookinfo), namespace="other")
    store_rollout(store, other)
    assert StoreRolloutState(store, "here").current_weights() == {
        ("other", "frontend"): {"v1": 90, "v2": 10}}


def test_an_unreadable_store_is_an_error_naming_where(tmp_path: Path,
                                                      bookinfo: MeshSpec) -> None:
    store = DiskRolloutStore(tmp_path)
    store_rollout(store, in_progress(bookinfo))
    store.path("default", "frontend").write_text("{not json")
    with pytest.raises(RolloutStateError) as excinfo:
        StoreRolloutState(store, store.describe()).current_weights()
    message = str(excinfo.value)
    assert message.startswith(f"cannot read the rollouts in rollout states in {tmp_path}: ")
    assert str(store.path("default", "frontend")) in message


def test_a_state_directory_reads_its_rollouts(tmp_path: Path, bookinfo: MeshSpec) -> None:
    reader = state_dir_rollouts(state_dir(tmp_path, in_progress(bookinfo)))
    assert reader.current_weights() == {FRONTEND: {"v1": 90, "v2": 10}}
    assert reader.source == f"rollout states in {tmp_path / 'state' / 'rollouts'}"


def test_a_state_directory_without_rollouts_has_none(tmp_path: Path) -> None:
    (tmp_path / "status.json").write_text("{}")
    assert state_dir_rollouts(tmp_path).current_weights() == {}


def test_a_missing_state_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RolloutStateError) as excinfo:
        state_dir_rollouts(tmp_path / "nope")
    assert str(excinfo.value).startswith(
        f"reconciler state directory {tmp_path / 'nope'} does not exist; point "
        "meshdsl:rollout_state at the reconciler's state directory")


def test_the_rollouts_directory_itself_is_refused(tmp_path: Path, bookinfo: MeshSpec) -> None:
    rollouts = state_dir(tmp_path, in_progress(bookinfo)) / "rollouts"
    with pytest.raises(RolloutStateError) as excinfo:
        state_dir_rollouts(rollouts)
    assert str(excinfo.value) == (
        f"{rollouts} holds rollout files but no rollouts/ directory: it looks like the "
        "rollouts/ directory of a state directory; point meshdsl:rollout_state at the "
        f"state directory itself ({tmp_path / 'state'})")


def test_a_cluster_that_cannot_be_reached_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "kubeconfig"
    reader = ClusterRolloutState(name="prod", namespace="ops", kubeconfig=str(missing),
                                 context="kind-prod")
    with pytest.raises(RolloutStateError) as excinfo:
        reader.current_weights()
    assert str(excinfo.value).startswith(
        f"cannot read rollout ConfigMaps ops/meshdsl-rollout-prod.* (reconciler 'prod', "
        f"through kubeconfig {missing}, context kind-prod): cannot load {missing}")


def test_a_kubeconfig_given_inline_is_described_as_such() -> None:
    reader = ClusterRolloutState(kubeconfig="apiVersion: v1\nkind: Config\n")
    assert reader.describe() == ("rollout ConfigMaps meshdsl-system/meshdsl-rollout-default.* "
                                 "(reconciler 'default', through the kubeconfig in "
                                 "kubernetes:kubeconfig)")

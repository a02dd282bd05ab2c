"""The stack program end to end under mocks: config → settings → weights → resources."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pulumi
import pytest

from meshdsl.compile import ResourceKey, compile_mesh
from meshdsl.model import MeshSpec
from reconciler.runtime.rollout_store import DiskRolloutStore
from stacks.program import deploy, rollout_reader
from stacks.rollout import ClusterRolloutState, JsonRolloutState, StoreRolloutState
from stacks.settings import KubeAccess, apply_settings, read_settings
from stacks.testing import Run, run_program, stack_config
from tests.unit.stacks.projects import BOOKINFO_PROGRAM, BOOKINFO_PROJECT, stack_file
from tests.unit.stacks.rollouts import failed, in_progress, store_rollout, succeeded

CANARY_ON = {"meshdsl:canary": "true"}


def up(config: dict[str, str], stack: str = "dev") -> Run:
    return run_program(lambda: deploy(BOOKINFO_PROGRAM), config=config, stack=stack)


def frontend_split(run: Run) -> list[tuple[str, int]]:
    vs = run.named("virtualservice-default-frontend").inputs
    return [(r["destination"]["subset"], int(r["weight"]))
            for r in vs["spec"]["http"][-1]["route"]]


def test_dev_stack_file(bookinfo: MeshSpec) -> None:
    config = stack_config(stack_file("dev"))
    run = up(config, "dev")
    settings = read_settings(config, stack="dev")
    expected = compile_mesh(apply_settings(bookinfo, settings),
                            weights={("default", "frontend"): {"v1": 100}})
    assert run.manifests() == expected
    assert "Namespace/bookinfo-dev" in run.exports["resources"]
    assert {m["spec"]["replicas"] for m in run.manifests() if m["kind"] == "Deployment"} == {1}
    assert frontend_split(run) == [("v1", 100)]
    assert run.exports["weights"] == {"default/frontend": {"v1": 100}}
    assert ("info", "canary is off for this stack: default/frontend sends all traffic to its "
                    "stable version v1") in run.logs


def test_prod_stack_file(bookinfo: MeshSpec) -> None:
    run = up(stack_config(stack_file("prod")), "prod")
    replicas = {m["metadata"]["name"]: m["spec"]["replicas"]
                for m in run.manifests() if m["kind"] == "Deployment"}
    assert set(replicas.values()) == {3}
    assert frontend_split(run) == [("v1", 95), ("v2", 5)]
    assert {str(ResourceKey.of(m)) for m in run.manifests()} == {
        str(ResourceKey.of(m)) for m in compile_mesh(bookinfo)}
    assert any("meshdsl:rollout_state is not set" in m for m in run.messages("warning"))


def test_mid_rollout_up_keeps_the_rollouts_weights_and_says_so(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "rollouts.json").write_text(json.dumps({"rollouts": {
        "default/frontend": {"weights": {"v1": 50, "v2": 50}, "phase": "progressing"}}}))
    monkeypatch.chdir(tmp_path)  # relative paths start where pulumi runs the program
    run = up({**CANARY_ON, "meshdsl:rollout_state": "state/rollouts.json"}, "prod")
    assert frontend_split(run) == [("v1", 50), ("v2", 50)]
    assert run.exports["weights"] == {"default/frontend": {"v1": 50, "v2": 50}}
    (info,) = [m for m in run.messages("info") if "mid-rollout" in m]
    assert "keeping the rollout's current weights v1=50%, v2=50% from state/rollouts.json" \
        in info
    assert not any("rollout_state is not set" in m for m in run.messages())


def test_an_empty_rollout_state_deploys_the_programs_weights(tmp_path: Path) -> None:
    state = tmp_path / "rollouts.json"
    state.write_text('{"rollouts": {}}')
    run = up({**CANARY_ON, "meshdsl:rollout_state": str(state)})
    assert frontend_split(run) == [("v1", 95), ("v2", 5)]
    assert list(run.messages("info")) == []


def run_error(config: dict[str, str], program: Path = BOOKINFO_PROGRAM) -> str:
    with pytest.raises(pulumi.RunError) as excinfo:
        run_program(lambda: deploy(program), config=config, stack="dev")
    return str(excinfo.value)


def test_config_errors_stop_the_update_with_the_message() -> None:
    message = run_error({"meshdsl:canary": "true", "meshdsl:replica": "2"})
    assert message == ("Pulumi.dev.yaml: meshdsl:replica is not a meshdsl setting (did you "
                       "mean meshdsl:replicas? the settings are canary, namespaces, replicas, "
                       "hosts, tls_credential, rollout_state, system_namespace)")
    assert "meshdsl:canary is missing" in run_error({})
    assert "meshdsl:namespaces names 'bookinf'" in run_error(
        {**CANARY_ON, "meshdsl:namespaces": '{"bookinf": "x"}'})


def test_a_missing_rollout_state_stops_the_update(tmp_path: Path) -> None:
    message = run_error({**CANARY_ON, "meshdsl:rollout_state": str(tmp_path / "none.json")})
    assert "does not exist" in message


def test_a_broken_program_stops_the_update_at_its_line(tmp_path: Path) -> None:
    program = tmp_path / "mesh.py"
    program.write_text("from meshdsl import Mesh\nmesh = Mesh('x')\nraise ValueError('nope')\n")
    message = run_error(CANARY_ON, program)
    assert f"{program}:3" in message
    assert "ValueError: nope" in message
    assert f"\n  {program}:3 in <module>: raise ValueError('nope')" in message   # the frames


def test_the_project_main_runs_the_bookinfo_program() -> None:
    """stacks/bookinfo/__main__.py is what `pulumi up` runs in that directory."""
    run = run_program(lambda: runpy.run_path(str(BOOKINFO_PROJECT / "__main__.py")),
                      config=CANARY_ON, project="meshdsl-bookinfo", stack="dev")
    assert len(run.manifests()) == 22
    assert run.component().name == "bookinfo"


def test_canary_off_and_rollout_state_follow_renamed_namespaces(tmp_path: Path) -> None:
    state = tmp_path / "rollouts.json"
    state.write_text(json.dumps({"rollouts": {"users/frontend": {"weights": {"v1": 70,
                                                                            "v2": 30}}}}))
    moved = {"meshdsl:namespaces": '{"default": "users"}'}
    off = up({"meshdsl:canary": "false", **moved})
    assert off.exports["weights"] == {"users/frontend": {"v1": 100}}
    vs = off.named("virtualservice-users-frontend").inputs
    assert [r["destination"]["subset"] for r in vs["spec"]["http"][-1]["route"]] == ["v1"]
    kept = up({**CANARY_ON, **moved, "meshdsl:rollout_state": str(state)})
    assert kept.exports["weights"] == {"users/frontend": {"v1": 70, "v2": 30}}


# --- the reconciler's own rollout store -----------------------------------------------------


def test_mid_rollout_up_keeps_the_step_of_the_reconcilers_state_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bookinfo: MeshSpec) -> None:
    """`meshdsl:rollout_state: <state dir>` reads the rollouts the reconciler keeps there."""
    store = DiskRolloutStore.in_state_dir(tmp_path / "state")
    store_rollout(store, in_progress(bookinfo))
    monkeypatch.chdir(tmp_path)  # relative paths start where pulumi runs the program
    run = up({**CANARY_ON, "meshdsl:rollout_state": "state"}, "prod")
    assert frontend_split(run) == [("v1", 90), ("v2", 10)]
    assert run.exports["weights"] == {"default/frontend": {"v1": 90, "v2": 10}}
    (info,) = [m for m in run.messages("info") if "mid-rollout" in m]
    assert info == ("default/frontend is mid-rollout: keeping the rollout's current weights "
                    "v1=90%, v2=10% from state instead of the program's; the reconciler owns "
                    "them until the rollout ends")
    assert not any("rollout_state is not set" in m for m in run.messages())

    # the reconciler moves on: the next update follows it, then a finished rollout is
    # no longer kept (the program's weights again)
    store_rollout(store, in_progress(bookinfo, 3))
    assert frontend_split(up({**CANARY_ON, "meshdsl:rollout_state": "state"})) == [
        ("v1", 50), ("v2", 50)]
    store_rollout(store, succeeded(bookinfo))
    done = up({**CANARY_ON, "meshdsl:rollout_state": "state"})
    assert frontend_split(done) == [("v1", 95), ("v2", 5)]
    assert not any("mid-rollout" in m for m in done.messages())


def test_canary_off_keeps_a_rollout_in_progress_in_the_state_directory(
        tmp_path: Path, bookinfo: MeshSpec) -> None:
    store = DiskRolloutStore.in_state_dir(tmp_path)
    store_rollout(store, in_progress(bookinfo))
    run = up({"meshdsl:canary": "false", "meshdsl:rollout_state": str(tmp_path)})
    assert frontend_split(run) == [("v1", 90), ("v2", 10)]
    assert any("its weights are kept, not reset" in m for m in run.messages("warning"))


def test_a_failed_rollout_is_not_kept(tmp_path: Path, bookinfo: MeshSpec) -> None:
    store_rollout(DiskRolloutStore.in_state_dir(tmp_path), failed(bookinfo))
    run = up({"meshdsl:canary": "false", "meshdsl:rollout_state": str(tmp_path)})
    assert frontend_split(run) == [("v1", 100)]
    assert not any("mid-rollout" in m for m in run.messages())


def test_a_missing_state_directory_stops_the_update(tmp_path: Path) -> None:
    message = run_error({**CANARY_ON, "meshdsl:rollout_state": str(tmp_path / "no-state")})
    assert message.startswith(f"rollout state {tmp_path / 'no-state'} does not exist; point "
                              "meshdsl:rollout_state at the reconciler's state directory")


def test_a_bad_rollout_state_form_stops_the_update() -> None:
    message = run_error({**CANARY_ON, "meshdsl:rollout_state": "clustr:prod"})
    assert message == (
        "Pulumi.dev.yaml: meshdsl:rollout_state must be a path to the reconciler's state "
        "directory (its --state-dir) or to a rollout state file (JSON), or cluster, or "
        "cluster:<reconciler name> (the rollout ConfigMaps of a reconciler on the stack's "
        "cluster); got \"clustr:prod\" (did you mean cluster:prod?)")


def test_the_cluster_form_reads_the_cluster_of_the_stacks_provider(tmp_path: Path) -> None:
    """`cluster:<name>` connects with the provider's kubernetes:kubeconfig/context (here
    a kubeconfig that does not exist, so the update stops saying where it looked)."""
    kubeconfig = tmp_path / "kubeconfig"
    message = run_error({**CANARY_ON, "meshdsl:rollout_state": "cluster:prod",
                         "meshdsl:system_namespace": "ops",
                         "kubernetes:kubeconfig": str(kubeconfig),
                         "kubernetes:context": "kind-prod"})
    assert message.startswith(
        f"cannot read rollout ConfigMaps ops/meshdsl-rollout-prod.* (reconciler 'prod', "
        f"through kubeconfig {kubeconfig}, context kind-prod): cannot load {kubeconfig}")


def test_the_reader_for_each_form(tmp_path: Path) -> None:
    def reader(value: str, **extra: str) -> object:
        settings = read_settings({**CANARY_ON, "meshdsl:rollout_state": value, **extra},
                                 stack="dev")
        return rollout_reader(settings, base=tmp_path,
                              kube=KubeAccess(kubeconfig="/k", context="c"))

    (tmp_path / "state").mkdir()
    assert reader("nothing.json") == JsonRolloutState(tmp_path / "nothing.json")
    assert isinstance(reader("state"), StoreRolloutState)
    assert reader("cluster") == ClusterRolloutState(
        name="default", namespace="meshdsl-system", kubeconfig="/k", context="c")
    assert reader("cluster:prod.eu", **{"meshdsl:system_namespace": "ops"}) == (
        ClusterRolloutState(name="prod.eu", namespace="ops", kubeconfig="/k", context="c"))
    assert rollout_reader(read_settings(CANARY_ON, stack="dev"), base=tmp_path) is None

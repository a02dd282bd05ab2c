"""The stack program end to end under mocks: config → settings → weights → resources."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pulumi
import pytest

from meshdsl.compile import ResourceKey, compile_mesh
from meshdsl.model import MeshSpec
from stacks.program import deploy
from stacks.settings import apply_settings, read_settings
from stacks.testing import Run, run_program, stack_config
from tests.unit.stacks.projects import BOOKINFO_PROGRAM, BOOKINFO_PROJECT, stack_file

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
                       "hosts, tls_credential, rollout_state)")
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

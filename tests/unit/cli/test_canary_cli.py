"""`meshctl canary`: simulate from recordings; status and manual commands on a state dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.cli import _register, app
from reconciler.runtime.rollout_store import DiskRolloutStore
from tests.conftest import EXAMPLES
from tests.unit.delivery.scenario import drive, make_plan, obs

_register()
runner = CliRunner()
CANARY = str(EXAMPLES / "canary" / "mesh.py")
HEALTHY = str(EXAMPLES / "canary" / "recorded-healthy.json")
FAULTY = str(EXAMPLES / "canary" / "recorded-faulty.json")


def meshctl(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})
    return result.exit_code, result.output


def test_rollouts_on_disk_default_to_the_reconcilers_state_dir(tmp_path: Path) -> None:
    """One --state-dir default for every command: $XDG_STATE_HOME/meshdsl/<name>, where
    `meshctl reconcile --name NAME` keeps its status and rollouts."""
    store = DiskRolloutStore.in_state_dir(tmp_path / "meshdsl" / "r")
    store.save(drive(make_plan(), [obs(), obs()]).final, expected_generation=None)
    code, out = meshctl("canary", "status", "--name", "r",
                        env={"XDG_STATE_HOME": str(tmp_path)})
    assert code == 0, out
    assert "shop/reviews  progressing" in out
    code, out = meshctl("canary", "status", env={"XDG_STATE_HOME": str(tmp_path)})
    assert code == 2 and f"{tmp_path}/meshdsl/default does not exist" in out


def test_simulate_healthy_prints_routes_and_decisions() -> None:
    code, out = meshctl("canary", "simulate", CANARY, "--service", "shop/reviews",
                        "--metrics", HEALTHY)
    assert code == 0, out
    assert "result: promoted after 8 step(s)" in out
    assert "mirrorPercentage" in out and "name: reviews-canary" in out
    assert "kind: VirtualService" in out and "Decisions" in out
    assert "confirm-promotion webhook answered no" in out
    assert "-> call event webhook chat" in out


def test_simulate_faulty_exits_1() -> None:
    code, out = meshctl("canary", "simulate", CANARY, "--service", "reviews", "--metrics",
                        FAULTY)
    assert code == 1
    assert "result: rolled back" in out and "96.5 < min 99" in out


def test_simulate_json() -> None:
    code, out = meshctl("canary", "simulate", str(EXAMPLES / "bookinfo" / "mesh.py"),
                        "--service", "default/frontend", "--metrics", HEALTHY, "-o", "json")
    assert code == 0
    data = json.loads(out)
    assert data["result"] == "succeeded" and data["finished"] is True
    assert [s["weights"]["v2"] for s in data["steps"]] == [0, 5, 10, 50, 100, 100, 100]
    assert data["steps"][2]["virtual_services"][0]["spec"]["http"][-1]["route"][1][
        "weight"] == 10
    assert data["final"]["phase"] == "succeeded"


@pytest.mark.parametrize(("args", "message"), [
    (["--service", "shop/nope", "--metrics", HEALTHY], "no canary plan for 'shop/nope'"),
    (["--service", "reviews", "--metrics", "/nonexistent.json"], "cannot read"),
    (["--service", "reviews", "--metrics", CANARY], "is not JSON"),
])
def test_simulate_bad_input_exits_2(args: list[str], message: str) -> None:
    code, out = meshctl("canary", "simulate", CANARY, *args)
    assert code == 2
    assert message in out


def test_status_and_manual_commands(tmp_path: Path) -> None:
    store = DiskRolloutStore.in_state_dir(tmp_path)
    state = drive(make_plan(), [obs(), obs()]).final
    store.save(state, expected_generation=None)

    code, out = meshctl("canary", "status", "--state-dir", str(tmp_path))
    assert code == 0, out
    assert "shop/reviews  progressing  stage 2/4 (weight 10%)" in out
    assert "v1=90%, v2=10%" in out and "request-success-rate" in out and "timeline" in out

    code, out = meshctl("canary", "pause", "reviews", "--state-dir", str(tmp_path))
    assert code == 0 and "pause -> paused" in out
    code, out = meshctl("canary", "pause", "shop/reviews", "--state-dir", str(tmp_path))
    assert code == 0
    code, out = meshctl("canary", "resume", "shop/reviews", "--state-dir", str(tmp_path))
    assert code == 0 and "resume -> progressing" in out
    code, out = meshctl("canary", "resume", "shop/reviews", "--state-dir", str(tmp_path))
    assert code == 1 and "not paused" in out
    code, out = meshctl("canary", "promote", "shop/reviews", "--state-dir", str(tmp_path))
    assert code == 0 and "v1=0%, v2=100%" in out

    code, out = meshctl("canary", "status", "reviews", "--state-dir", str(tmp_path), "-o",
                        "json")
    (rollout,) = json.loads(out)["rollouts"]
    assert rollout["phase"] == "promoting" and rollout["manual"] == "promote"
    stored = store.load("shop", "reviews")
    assert stored is not None and stored.generation == 4  # the second pause wrote nothing

    code, out = meshctl("canary", "abort", "shop/reviews", "--state-dir", str(tmp_path))
    assert code == 0 and "rolling-back" in out
    code, out = meshctl("canary", "promote", "shop/reviews", "--state-dir", str(tmp_path))
    assert code == 1 and "cannot promote shop/reviews: it is rolling-back" in out


def test_status_errors(tmp_path: Path) -> None:
    code, out = meshctl("canary", "status", "--state-dir", str(tmp_path / "missing"))
    assert code == 2 and "does not exist" in out
    code, out = meshctl("canary", "status", "--state-dir", str(tmp_path))
    assert code == 0 and "no rollouts" in out
    code, out = meshctl("canary", "promote", "reviews", "--state-dir", str(tmp_path))
    assert code == 2 and "no rollout is named 'reviews'" in out
    code, out = meshctl("canary", "status", "shop/reviews", "--state-dir", str(tmp_path))
    assert code == 1 and "no rollout of shop/reviews" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--state", "cluster", "--state-dir", "."], "--state-dir is for rollouts on disk"),
    (["--state-dir", ".", "--kubeconfig", "/nonexistent"], "--kubeconfig: only for rollouts "
     "in the cluster"),
    (["--state", "disk", "--context", "prod", "--name", "r"], "--context: only for"),
    (["--as", "u"], "--as: only for rollouts in the cluster (--state cluster)"),
    (["--system-namespace", "x"], "--system-namespace: only for"),
    (["--state", "cluster", "--kubeconfig", "/nonexistent"], "cannot load /nonexistent"),
])
def test_store_options_that_do_not_go_together_exit_2(args: list[str], message: str) -> None:
    for command in (["status"], ["promote", "shop/reviews"]):
        code, out = meshctl("canary", *command, *args)
        assert code == 2, out
        assert message in out

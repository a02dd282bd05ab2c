"""The rollout view explains why a rollout waits or stopped, from its state alone."""

from __future__ import annotations

from dataclasses import replace

from reconciler.delivery import machine
from reconciler.delivery.phases import Phase
from reconciler.delivery.view import canary_view, why
from tests.unit.delivery.scenario import FAILING, HEALTHY, NO_DATA, drive, hook, make_plan, obs


def test_progressing_shows_stage_weights_checks_and_next_analysis() -> None:
    run = drive(make_plan(), [obs(HEALTHY), obs(HEALTHY)])
    state = run.final
    view = canary_view(state, now=run.times[-1])
    assert view["phase"] == "progressing" and view["stage"] == state.stage_label
    assert view["weights"] == {"v1": 90, "v2": 10}
    checks = {c["name"]: c for c in view["checks"]}
    assert checks["request-success-rate"]["verdict"] == "pass"
    assert checks["request-success-rate"]["min"] == 99
    assert view["why"] == "next analysis in 60 s"
    assert view["timeline"][0]["message"].startswith("rollout of v2 started")


def test_halted_on_a_failed_check_counts_failures() -> None:
    run = drive(make_plan(), [obs(HEALTHY), obs(FAILING)])
    assert run.final.phase is Phase.HALTED
    text = why(run.final, run.times[-1])
    assert "failed check request-success-rate (1/2)" in text


def test_halted_without_data_counts_analyses() -> None:
    run = drive(make_plan(), [obs(HEALTHY), obs(NO_DATA)])
    assert run.final.phase is Phase.HALTED
    assert "no data (1/3 analyses)" in why(run.final, run.times[-1])


def test_gate_that_said_no() -> None:
    plan = make_plan(webhooks=[hook("approve", "confirm-rollout")])
    state, _ = machine.start(plan, "r", 0.0)
    assert why(state, 0.0) == "waiting for the confirm-rollout gate to say yes"


def test_paused_names_the_operator_command() -> None:
    run = drive(make_plan(), [obs(HEALTHY)])
    paused = replace(run.final, phase=Phase.PAUSED, manual="pause")
    assert why(paused, 0.0).startswith("paused by an operator (pause)")


def test_finished_rollout_gives_its_reason() -> None:
    run = drive(make_plan(), [obs(HEALTHY)] * 12)
    assert run.final.phase is Phase.SUCCEEDED
    view = canary_view(run.final, run.times[-1])
    assert view["weights"]["v2"] == 100 and view["phase"] == "succeeded"
    assert view["why"] == (run.final.reason or "succeeded")

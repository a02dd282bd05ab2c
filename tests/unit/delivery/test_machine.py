"""Whole rollouts through the machine: promotion, rollback timing, halts, gates, manual
commands, restarts, stage ordering, and resuming from persisted JSON."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from meshdsl.model.canary import Step
from reconciler.delivery import machine
from reconciler.delivery.actions import CallWebhook, Observations, Persist, SetTraffic
from reconciler.delivery.errors import ManualCommandError, PlanError
from reconciler.delivery.phases import Phase, RolloutState
from reconciler.delivery.queries import metric_queries
from tests.unit.delivery.scenario import (
    FAILING,
    HEALTHY,
    NO_DATA,
    advance,
    drive,
    hook,
    make_plan,
    obs,
)

MINUTE = 60.0


def test_healthy_rollout_promotes_through_5_10_50_100() -> None:
    run = drive(make_plan(), [obs()] * 10)
    assert run.phases() == ["initializing", "progressing", "progressing", "progressing",
                            "progressing", "promoting", "succeeded"]
    assert [w["v2"] for w in run.weights()] == [0, 5, 10, 50, 100, 100, 100]
    assert run.times == [0, 0, 60, 120, 180, 240, 240]
    assert run.final.traffic.weights == {"v1": 0, "v2": 100}
    assert run.final.analyses == 4 and run.final.failed_checks == 0
    assert [e.message.split(";")[0] for e in run.final.timeline][:2] == [
        "rollout of v2 started (stable v1, revision rev-1)", "initialized"]


@pytest.mark.parametrize("failing_stage", [0, 1, 2, 3])
@pytest.mark.parametrize("pause", [None, "10m"])
def test_rollback_reaches_stable_within_two_intervals_of_the_failing_check(
        failing_stage: int, pause: str | None) -> None:
    """Failed stages are judged again every interval (not every pause), so with the default
    max_failed_checks=2 traffic is 100% stable one interval after the first failing check."""
    plan = make_plan(steps=[Step(weight=w, pause=pause) for w in (5, 10, 50, 100)])
    script = [obs()] * (1 + failing_stage) + [obs(FAILING)] * 5
    run = drive(plan, script)
    first_fail = next(i for i, s in enumerate(run.states) if s.failed_checks == 1)
    rolled = next(i for i, s in enumerate(run.states) if s.phase is Phase.ROLLING_BACK)
    assert run.states[rolled].traffic.weights == {"v1": 100, "v2": 0}
    assert run.times[rolled] - run.times[first_fail] <= 2 * MINUTE
    assert run.times[rolled] - run.times[first_fail] == MINUTE
    assert isinstance(run.actions[rolled][1], SetTraffic)
    assert run.final.phase is Phase.FAILED and run.final.traffic.weights["v1"] == 100


def test_the_check_that_reaches_max_failed_checks_rolls_back_in_the_same_step() -> None:
    run = drive(make_plan(max_failed_checks=1), [obs(), obs(FAILING)])
    assert run.states[-1].phase is Phase.ROLLING_BACK
    assert run.times[-1] == MINUTE


def test_no_data_halts_then_fails_after_no_data_limit() -> None:
    run = drive(make_plan(no_data_limit=3), [obs()] + [obs(NO_DATA)] * 5)
    assert run.phases()[:6] == ["initializing", "progressing", "halted", "halted",
                                "rolling-back", "failed"]
    assert [s.no_data_count for s in run.states][:5] == [0, 0, 1, 2, 3]
    assert [w["v2"] for w in run.weights()] == [0, 5, 5, 5, 0, 0]
    assert run.final.failed_checks == 0
    assert "no data in 3 analyses in a row" in run.final.reason


def test_no_data_in_between_does_not_add_up_when_data_returns() -> None:
    script = [obs(), obs(NO_DATA), obs(NO_DATA), obs(), obs(NO_DATA), obs(NO_DATA), obs(),
              obs(), obs(), obs()]
    run = drive(make_plan(no_data_limit=3), script)
    assert run.final.phase is Phase.SUCCEEDED


def test_max_failed_checks_counts_over_the_whole_rollout() -> None:
    script = [obs(), obs(FAILING), obs(), obs(FAILING), obs(), obs(FAILING), obs()]
    run = drive(make_plan(max_failed_checks=3), script)
    assert run.phases()[-3:] == ["progressing", "rolling-back", "failed"]
    assert [s.failed_checks for s in run.states] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert run.final.stage_index == 2


def test_min_requests_below_is_no_data_even_when_the_rate_is_perfect() -> None:
    few = {**HEALTHY, "request-count": 9}
    run = drive(make_plan(min_requests=10), [obs(), obs(few)])
    assert run.final.phase is Phase.HALTED
    counted = run.final.last_analysis[0]
    assert (counted.name, counted.verdict.value, counted.value) == ("request-count",
                                                                    "no-data", 9)


def test_confirm_promotion_no_holds_until_yes() -> None:
    plan = make_plan(webhooks=[hook("release", "confirm-promotion")])
    gates = [obs()] * 4 + [obs(gates={"release": False})] * 3 + [
        obs(gates={"release": True}), obs()]
    run = drive(plan, gates)
    assert run.phases()[5:] == ["halted", "halted", "halted", "promoting", "succeeded"]
    assert all(w == {"v1": 0, "v2": 100} for w in run.weights()[4:])
    assert run.final.failed_checks == 0


def test_step_pauses_are_honoured_and_interval_is_the_retry_cadence() -> None:
    plan = make_plan(steps=[Step(weight=10, pause="5m"), Step(weight=100, pause="30s")])
    run = drive(plan, [obs(), obs(FAILING), obs(), obs(), obs()])
    assert run.times == [0, 0, 300, 360, 390, 390]
    assert run.phases() == ["initializing", "progressing", "halted", "progressing",
                            "promoting", "succeeded"]


def test_header_and_mirror_stages_come_before_weights_mirror_first() -> None:
    plan = make_plan(mirror_stage=True, header_stage=True, steps=[50, 100])
    run = drive(plan, [obs()] * 10)
    labels = [s.stage_label for s in run.states]
    assert labels == ["initializing", "mirror 30% 1/1", "header 1/1", "weight 50%",
                      "weight 100%", "weight 100%", "weight 100%"]
    traffic = [(t.canary_weight, t.header_route, t.mirror_percent)
               for t in (s.traffic for s in run.states)]
    assert traffic == [(0, False, None), (0, False, 30.0), (0, True, None),
                       (50, False, None), (100, False, None), (100, False, None),
                       (100, False, None)]
    assert run.final.phase is Phase.SUCCEEDED


def test_iterations_repeat_a_pre_weight_stage() -> None:
    from meshdsl.model.canary import HeaderStage, MirrorStage
    from meshdsl.model.matching import Header
    plan = make_plan(mirror_stage=MirrorStage(percent=100, iterations=2),
                     header_stage=HeaderStage(match=Header("x-beta", exact="1"), iterations=3),
                     steps=[100])
    run = drive(plan, [obs()] * 10)
    assert [s.stage_label for s in run.states][1:7] == [
        "mirror 100% 1/2", "mirror 100% 2/2", "header 1/3", "header 2/3", "header 3/3",
        "weight 100%"]


def test_a_failure_in_the_mirror_stage_rolls_back_like_any_other() -> None:
    run = drive(make_plan(mirror_stage=True), [obs(), obs(FAILING), obs(FAILING), obs()])
    assert run.final.phase is Phase.FAILED
    assert run.final.traffic.mirror_percent is None
    assert run.final.traffic.weights == {"v1": 100, "v2": 0}


def test_new_revision_mid_rollout_restarts_at_the_first_step_with_the_new_target() -> None:
    plan = make_plan()
    run = drive(plan, [obs(), obs(), obs(FAILING)])
    assert (run.final.stage_index, run.final.failed_checks) == (1, 1)
    new_plan = make_plan(target="v3")
    restarted = drive(new_plan, [obs(revision="rev-2"), obs(), obs()], state=run.final,
                      now=run.times[-1] + 5)
    first = restarted.states[0]
    assert (first.phase, first.target, first.revision) == (Phase.INITIALIZING, "v3", "rev-2")
    assert first.traffic.weights == {"v1": 100, "v3": 0}
    assert (first.failed_checks, first.analyses, first.stage_index) == (0, 0, -1)
    assert restarted.states[1].traffic.weights == {"v1": 95, "v3": 5}
    assert any("restarted: new target v3" in e.message for e in first.timeline)
    queries = machine.needs(restarted.final, new_plan, restarted.final.next_analysis_at or 0)
    assert all("destination_workload=~\"reviews-v3\"" in q.promql for q in queries.queries)


def test_manual_pause_resume() -> None:
    plan = make_plan()
    run = drive(plan, [obs(), obs()])
    paused, actions = machine.pause(run.final, 100.0)
    assert paused.phase is Phase.PAUSED and paused.paused_from is Phase.PROGRESSING
    assert isinstance(actions[0], Persist)
    assert not any(isinstance(a, SetTraffic) for a in actions)
    assert machine.step(paused, plan, obs(FAILING), 10_000.0) == (paused, [])
    assert machine.needs(paused, plan, 10_000.0).queries == ()
    assert machine.pause(paused, 101.0) == (paused, [])
    resumed, _ = machine.resume(paused, 500.0)
    assert resumed.phase is Phase.PROGRESSING and resumed.next_analysis_at == 560.0
    assert resumed.traffic == run.final.traffic
    with pytest.raises(ManualCommandError, match="not paused"):
        machine.resume(resumed, 501.0)


def test_manual_promote_skips_stages_and_gates() -> None:
    plan = make_plan(webhooks=[hook("release", "confirm-promotion")])
    run = drive(plan, [obs(), obs(FAILING)])
    promoted, actions = machine.promote(run.final, 200.0)
    assert promoted.phase is Phase.PROMOTING and promoted.manual == "promote"
    assert promoted.traffic.weights == {"v1": 0, "v2": 100}
    assert isinstance(actions[1], SetTraffic)
    done, actions = machine.step(promoted, plan, Observations(), 200.0)
    assert done.phase is Phase.SUCCEEDED
    assert machine.promote(promoted, 201.0) == (promoted, [])
    with pytest.raises(ManualCommandError, match="succeeded"):
        machine.promote(done, 202.0)


def test_manual_abort_rolls_back_and_fires_rollback_hooks_on_the_next_step() -> None:
    plan = make_plan(webhooks=[hook("undo", "rollback")])
    run = drive(plan, [obs(), obs()])
    aborted, _ = machine.abort(run.final, 300.0)
    assert aborted.phase is Phase.ROLLING_BACK and aborted.traffic.weights["v1"] == 100
    failed, actions = machine.step(aborted, plan, Observations(), 300.0)
    calls = [a.call for a in actions if isinstance(a, CallWebhook)]
    assert failed.phase is Phase.FAILED
    assert [(c.name, c.payload["phase"]) for c in calls] == [("undo", "rolling-back")]
    with pytest.raises(ManualCommandError):
        machine.abort(failed, 301.0)
    with pytest.raises(ManualCommandError):
        machine.pause(failed, 301.0)
    paused, _ = machine.pause(run.final, 300.0)
    assert machine.abort(paused, 301.0)[0].phase is Phase.ROLLING_BACK


def test_needs_follow_the_phase() -> None:
    plan = make_plan(webhooks=[hook("go", "confirm-rollout"), hook("migrate", "pre-rollout"),
                               hook("load", "rollout"), hook("release", "confirm-promotion"),
                               hook("chat", "event")])
    state, _ = machine.start(plan, "rev-1", 0.0)
    assert [g.name for g in machine.needs(state, plan, 0.0).gates] == ["go"]
    state, _ = machine.step(state, plan, obs(gates={"go": True}), 0.0)
    assert [g.name for g in machine.needs(state, plan, 0.0).gates] == ["migrate"]
    state, _ = machine.step(state, plan, obs(gates={"migrate": True}), 0.0)
    assert not machine.needs(state, plan, 59.9)
    wanted = machine.needs(state, plan, 60.0)
    assert [q.key for q in wanted.queries] == ["request-count", "request-success-rate",
                                               "request-duration"]
    assert [g.name for g in wanted.gates] == ["load"]
    for _ in range(3):
        state, _ = machine.step(state, plan, obs(gates={"load": True}),
                                advance(state, 60.0))
    assert state.stage_index == 3
    last = machine.needs(state, plan, state.next_analysis_at or 0)
    assert [g.name for g in last.gates] == ["load", "release"]
    assert last.gates[1].payload["weights"] == {"v1": 0, "v2": 100}


def test_webhook_payload_carries_the_rollout_state() -> None:
    plan = make_plan(webhooks=[hook("chat", "event")])
    _, actions = machine.start(plan, "abc123", 0.0, target_digest="d1")
    (call,) = [a.call for a in actions if isinstance(a, CallWebhook)]
    assert (call.name, call.kind, call.timeout, call.retries) == ("chat", "event", 5.0, 2)
    assert call.payload == {
        "name": "reviews", "namespace": "shop", "phase": "initializing", "target": "v2",
        "stable": "v1", "revision": "abc123", "checksum": "d1", "stage": "initializing",
        "stageIndex": -1, "stageCount": 4, "weights": {"v1": 100, "v2": 0},
        "failedChecks": 0, "message": "rollout of v2 started (stable v1, revision abc123)",
        "metadata": {}}


def test_actions_always_persist_first() -> None:
    plan = make_plan(mirror_stage=True, webhooks=[hook("chat", "event"), hook("x", "rollback")])
    run = drive(plan, [obs(), obs(), obs(FAILING), obs(NO_DATA), obs(FAILING), obs()])
    for state, actions in zip(run.states, run.actions, strict=True):
        if actions:
            assert actions[0] == Persist(state)
            assert [type(a).__name__ for a in actions][-1] == "RecordEvent"


def test_resuming_from_persisted_json_yields_identical_decisions() -> None:
    """Kill the reconciler after any step: the JSON it persisted replays to the same
    states and actions as the uninterrupted run."""
    plan = make_plan(mirror_stage=True, header_stage=True,
                     webhooks=[hook("release", "confirm-promotion"), hook("chat", "event")])
    script = [obs(), obs(), obs(NO_DATA), obs(), obs(FAILING), obs(),
              obs(gates={"release": False}), obs(gates={"release": True}), obs()]
    whole = drive(plan, script)
    for cut in range(len(whole.states)):
        saved = json.loads(json.dumps(whole.states[cut].to_json()))
        revived = RolloutState.from_json(saved)
        assert revived == whole.states[cut]
        rest = drive(plan, script[cut:], state=revived, now=whole.times[cut])
        assert rest.states == whole.states[cut + 1:]
        assert rest.actions == whole.actions[cut + 1:]


def test_a_plan_for_another_service_is_refused() -> None:
    state, _ = machine.start(make_plan(), "r", 0.0)
    with pytest.raises(PlanError, match="given to the rollout of shop/reviews"):
        machine.step(state, make_plan(service="ratings"), Observations(), 1.0)


def test_a_plan_that_cannot_run_fails_at_start() -> None:
    with pytest.raises(PlanError, match="interval"):
        machine.start(make_plan(interval="soon"), "r", 0.0)
    from meshdsl.model.canary import MetricCheck
    bad = make_plan(checks=[MetricCheck(name="x", query="rate(x{{ nope }}[1m])", max=1)])
    with pytest.raises(PlanError, match="unknown template variable"):
        machine.start(bad, "r", 0.0)
    with pytest.raises(PlanError, match="neither builtin"):
        metric_queries(make_plan(checks=[MetricCheck(name="x", max=1)]))


def test_a_plan_change_of_thresholds_applies_in_place() -> None:
    plan = make_plan()
    run = drive(plan, [obs(), obs()])
    strict = make_plan(max_failed_checks=1)
    state, _ = machine.step(run.final, strict, obs(FAILING), advance(run.final, 0))
    assert state.phase is Phase.ROLLING_BACK and state.max_failed_checks == 1
    assert replace(state, timeline=()).stage_index == 1

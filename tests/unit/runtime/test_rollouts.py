"""The rollout driver with a scripted metrics source, the real disk store and a recording
route target: action order, the single writer of weights, resume after a restart, manual
commands, store conflicts, metrics errors and duplicate plans."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from meshdsl.compile import Weights
from meshdsl.model import Mesh
from meshdsl.model.canary import LatencyP99, SuccessRate
from meshdsl.model.spec import MeshSpec
from reconciler.delivery import machine
from reconciler.delivery.phases import Phase
from reconciler.delivery.queries import MetricQuery
from reconciler.ports import MetricsError
from reconciler.runtime.rollout_store import DiskRolloutStore
from reconciler.runtime.rollouts import RolloutDriver, RolloutReport

HEALTHY = {"request-count": 100.0, "request-success-rate": 100.0, "request-duration": 20.0}
FAILING = {**HEALTHY, "request-success-rate": 80.0}
KEY = ("shop", "reviews")


def program(target: str = "v2", *, twice: bool = False) -> MeshSpec:
    mesh = Mesh("unit", namespace="shop")
    reviews = mesh.service("reviews", port=9080, versions=["v1", "v2", "v3"])
    reviews.route(to={reviews.v1: 100})
    for _ in range(2 if twice else 1):
        reviews.canary(target=target, stable="v1", steps=[20, 50, 100], interval="2s",
                       checks=[SuccessRate(99), LatencyP99(500)])
    return mesh.build()


class Metrics:
    def __init__(self, values: Mapping[str, float | None] = HEALTHY) -> None:
        self.values = dict(values)
        self.error = False
        self.asked: list[str] = []

    def measure(self, query: MetricQuery) -> float | None:
        self.asked.append(query.key)
        if self.error:
            raise MetricsError("prometheus down")
        return self.values.get(query.key)

    def sample(self) -> None:
        """Prometheus-like: keeps its own history."""


class Target:
    def __init__(self) -> None:
        self.pushed: list[dict[str, int]] = []
        self.fail = False

    def __call__(self, spec: MeshSpec, weights: Weights) -> None:
        if self.fail:
            raise RuntimeError("target unreachable")
        self.pushed.append(dict(weights.get(KEY, {})))


def make(tmp_path: Path, metrics: Metrics | None = None
         ) -> tuple[RolloutDriver, Target, DiskRolloutStore, list[RolloutReport]]:
    store = DiskRolloutStore(tmp_path / "rollouts")
    target, reports = Target(), list[RolloutReport]()
    driver = RolloutDriver(store, metrics or Metrics(), target, on_report=reports.append)
    driver.set_program(program(), "r1")
    return driver, target, store, reports


def run(driver: RolloutDriver, start: float, end: float, step: float = 0.5) -> None:
    now = start
    while now <= end:
        driver.tick(now)
        now += step


def test_a_healthy_rollout_pushes_every_step_in_order(tmp_path: Path) -> None:
    driver, target, store, _ = make(tmp_path)
    run(driver, 1000, 1012)
    stored = store.load(*KEY)
    assert stored is not None and stored.state.phase is Phase.SUCCEEDED
    weights = [w["v2"] for w in target.pushed]
    assert weights == [0, 20, 50, 100], target.pushed
    assert driver.finished()


def test_failing_checks_roll_back_to_stable(tmp_path: Path) -> None:
    driver, target, store, _ = make(tmp_path, Metrics(FAILING))
    run(driver, 1000, 1010)
    stored = store.load(*KEY)
    assert stored is not None and stored.state.phase is Phase.FAILED
    assert target.pushed[-1] == {"v1": 100, "v2": 0}


def test_a_restarted_driver_resumes_at_the_same_step(tmp_path: Path) -> None:
    driver, _, store, _ = make(tmp_path)
    run(driver, 1000, 1003)
    before = store.load(*KEY)
    assert before is not None and before.state.stage_index == 1
    again = RolloutDriver(store, Metrics(), (fresh := Target()))
    again.set_program(program(), "r1")
    again.tick(1003.1)
    assert fresh.pushed == [before.state.traffic.weights], "same weights, first tick"
    after = store.load(*KEY)
    assert after is not None and after.state.stage_index == 1
    assert after.state.started_at == before.state.started_at


def test_a_resync_of_the_same_revision_keeps_the_step(tmp_path: Path) -> None:
    driver, target, _, _ = make(tmp_path)
    run(driver, 1000, 1001)
    pushed = len(target.pushed)
    driver.set_program(program(), "r1")  # the loop re-deploys the same commit
    driver.tick(1001.2)
    assert target.pushed[-1] == {"v1": 80, "v2": 20}
    assert len(target.pushed) == pushed + 1  # a new program object is pushed once


def test_a_new_target_restarts_from_the_first_step(tmp_path: Path) -> None:
    driver, target, store, _ = make(tmp_path)
    run(driver, 1000, 1003)
    driver.set_program(program("v3"), "r2")
    driver.tick(1003.2)
    stored = store.load(*KEY)
    assert stored is not None
    assert (stored.state.target, stored.state.phase) == ("v3", Phase.INITIALIZING)
    assert target.pushed[-1] == {"v1": 100, "v3": 0}


def test_a_manual_abort_is_applied_on_the_next_tick(tmp_path: Path) -> None:
    driver, target, store, _ = make(tmp_path)
    run(driver, 1000, 1001)
    stored = store.load(*KEY)
    assert stored is not None
    aborted, _ = machine.abort(stored.state, 1001.1)
    store.save(aborted, expected_generation=stored.generation)
    driver.tick(1001.2)
    assert target.pushed[-1] == {"v1": 100, "v2": 0}


def test_metrics_errors_are_no_data_never_a_pass(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.error = True
    driver, _, store, reports = make(tmp_path, metrics)
    run(driver, 1000, 1005)
    stored = store.load(*KEY)
    assert stored is not None and stored.state.stage_index == 0
    assert stored.state.phase is Phase.HALTED and stored.state.no_data_count >= 1
    assert any("prometheus down" in e for r in reports for e in r.errors)


def test_a_failed_push_is_retried_on_the_next_tick(tmp_path: Path) -> None:
    driver, target, _, _ = make(tmp_path)
    driver.tick(1000)
    target.fail = True
    driver.tick(1000.5)  # stage 1 persisted, push failed
    target.fail = False
    driver.tick(1000.6)
    assert target.pushed[-1] == {"v1": 80, "v2": 20}


def test_two_plans_for_one_service_advance_neither(tmp_path: Path) -> None:
    driver, _, store, reports = make(tmp_path)
    driver.set_program(program(twice=True), "r1")
    driver.tick(1000)
    assert store.load(*KEY) is None
    assert reports and all("several canary plans" in r.errors[0] for r in reports)


@pytest.mark.parametrize("revision", ["", "abc"])
def test_view_without_plans_is_the_program(tmp_path: Path, revision: str) -> None:
    driver, _, _, _ = make(tmp_path)
    spec = Mesh("plain", namespace="shop").build()
    driver.set_program(spec, revision)
    assert driver.view() == (spec, {})
    assert driver.tick(1.0) == []

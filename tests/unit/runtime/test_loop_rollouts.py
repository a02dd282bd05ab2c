"""The reconcile loop with progressive delivery: what goes out is always the rollout view.

A scripted source/runner (each revision is a real mesh program, serialised as the sandbox
serialises it), a deployer that records the VirtualService weights it was given, the real
disk stores, a scripted metrics source and a fake clock. The real Git, sandbox, Envoy and
Prometheus path is tests/e2e/test_reconcile_canary.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from meshdsl.compile import compile_mesh
from meshdsl.model import Mesh
from meshdsl.model.canary import SuccessRate
from meshdsl.model.spec import MeshSpec
from reconciler.delivery.phases import Phase
from reconciler.delivery.queries import MetricQuery
from reconciler.ports import Deployed, DeployError, Revision
from reconciler.runtime.loop import Reconciler, Settings, target_lock
from reconciler.runtime.rollout_store import DiskRolloutStore
from reconciler.runtime.rollouts import RolloutDriver
from reconciler.runtime.sandbox import Compiled
from reconciler.runtime.status import Control, DiskStore, Result
from tests.unit.runtime.fakes import ManifestTarget

HEALTHY = {"request-count": 100.0, "request-success-rate": 100.0}
FAILING = {**HEALTHY, "request-success-rate": 70.0}
KEY = ("shop", "reviews")


def program(*, canary_to: str | None, routed: str = "v1") -> MeshSpec:
    mesh = Mesh("unit", namespace="shop")
    reviews = mesh.service("reviews", port=9080, versions=["v1", "v2", "v3"])
    reviews.route(to={getattr(reviews, routed): 100})
    if canary_to is not None:
        reviews.canary(target=canary_to, stable="v1", steps=[10, 50, 100], interval="10s",
                       checks=[SuccessRate(99)], min_requests=5)
    return mesh.build()


# Revisions: A = reviews on v1, no plan; B = a canary of v2 whose program routes to v2
# (what the user will end with) — the loop must still start at 100% v1; C = a canary of v3.
PROGRAMS = {"a" * 40: program(canary_to=None),
            "b" * 40: program(canary_to="v2", routed="v2"),
            "c" * 40: program(canary_to="v3", routed="v3")}
A, B, C = PROGRAMS


class Source:
    ref = "refs/heads/main"
    signed = True

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.head = tmp, A

    def describe(self) -> str:
        return "scripted"

    def latest(self) -> Revision:
        return Revision(id=self.head, ref=self.ref)

    def ensure(self, revision: str) -> Revision:
        return Revision(id=revision)

    def between(self, since: str, until: str, *, limit: int = 20) -> list[Revision]:
        return []

    def verify(self, revision: str, *, allowed_signers: Path) -> str:
        return "Good signature"

    def checkout(self, revision: str) -> Path:
        path = self.tmp / revision
        path.mkdir(parents=True, exist_ok=True)
        return path


class Runner:
    def __init__(self) -> None:
        self.asked_for_spec: list[bool] = []

    def run(self, checkout: Path, program: str, *, spec: bool = False) -> Compiled:
        self.asked_for_spec.append(spec)
        built = PROGRAMS[checkout.name]
        return Compiled(mesh=built.name, manifests=compile_mesh(built),
                        spec=built.model_dump(mode="json") if spec else None)


def weights_of(manifests: list[dict[str, Any]]) -> dict[str, int]:
    vs = next(m for m in manifests if m["kind"] == "VirtualService"
              and m["metadata"]["name"] == "reviews")
    split = {d["destination"]["subset"]: d.get("weight", 100)
             for d in vs["spec"]["http"][-1]["route"]}
    return {subset: weight for subset, weight in split.items() if weight}


class Deployer(ManifestTarget):
    def __init__(self) -> None:
        super().__init__("scripted-target")
        self.seen: list[tuple[dict[str, int], bool]] = []   # (reviews weights, dry_run)
        self.reject: set[str] = set()

    def deploy(self, output: dict[str, Any], *, mesh: str, heal: bool,
               dry_run: bool = False, fence: Callable[[], bool] | None = None) -> Deployed:
        weights = weights_of(output["manifests"])
        named = {d["destination"]["subset"] for m in output["manifests"]
                 if m["kind"] == "VirtualService" for d in m["spec"]["http"][-1]["route"]}
        if named & self.reject:
            raise DeployError("admission webhook refused the VirtualService", kind="rejected",
                              transient=False)
        self.seen.append((weights, dry_run))
        return Deployed(changes={"updated": 1})

    @property
    def live(self) -> dict[str, int]:
        return next(w for w, dry in reversed(self.seen) if not dry)


class Metrics:
    def __init__(self) -> None:
        self.values: Mapping[str, float] = HEALTHY

    def measure(self, query: MetricQuery) -> float | None:
        assert query.builtin is not None
        return self.values.get(query.builtin)

    def sample(self) -> None:
        """Keeps no snapshots."""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.source, self.runner, self.deployer = Source(tmp / "src"), Runner(), Deployer()
        self.metrics, self.clock = Metrics(), Clock()
        self.rollouts = DiskRolloutStore.in_state_dir(tmp / "state")
        self.rec = self.restart()

    def restart(self) -> Reconciler:
        """A fresh process: a new reconciler and driver over the same stores."""
        driver = RolloutDriver(self.rollouts, self.metrics, clock=self.clock)
        self.rec = Reconciler(Settings(backoff_initial=0.01, backoff_max=0.05),
                              source=self.source, deployer=self.deployer,
                              store=DiskStore(self.tmp / "state"), sandbox=self.runner,
                              rollouts=driver)
        return self.rec

    def push(self, revision: str) -> None:
        self.source.head = revision
        self.rec.reconcile({"webhook"})

    def start_canary(self, analyses: int = 0) -> None:
        """Apply A, then B (whose plan rolls v2 out from v1); then ``analyses`` analyses."""
        self.push(A)
        self.push(B)
        self.analyse(analyses)

    def analyse(self, times: int = 1) -> None:
        for _ in range(times):
            self.clock.now += 10.5
            self.rec.tick_rollouts()

    def phase(self) -> Phase | None:
        stored = self.rollouts.load(*KEY)
        return None if stored is None else stored.state.phase


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_a_new_canary_starts_at_full_stable_not_at_the_programs_routes(rig: Rig) -> None:
    rig.push(A)
    assert rig.deployer.live == {"v1": 100}
    rig.push(B)     # the program routes reviews to v2; the plan rolls v2 out from v1
    assert rig.rec.status.applied_revision == B
    assert rig.deployer.live == {"v1": 100}
    assert rig.phase() is not None and rig.phase() is not Phase.SUCCEEDED
    assert all(rig.runner.asked_for_spec)   # the loop needs the spec to compute views


def test_ticks_walk_the_steps_and_each_view_is_deployed(rig: Rig) -> None:
    rig.start_canary()
    history = []
    for _ in range(8):
        rig.analyse()
        if rig.deployer.live not in history:
            history.append(rig.deployer.live)
        if rig.phase() is Phase.SUCCEEDED:
            break
    assert rig.phase() is Phase.SUCCEEDED
    assert history[:3] == [{"v1": 90, "v2": 10}, {"v1": 50, "v2": 50}, {"v2": 100}]
    assert rig.deployer.live == {"v2": 100}


def test_failing_analysis_rolls_back_to_stable(rig: Rig) -> None:
    rig.start_canary(analyses=1)
    assert rig.deployer.live == {"v1": 90, "v2": 10}
    rig.metrics.values = FAILING
    rig.analyse(4)
    assert rig.phase() is Phase.FAILED
    assert rig.deployer.live == {"v1": 100}


def test_drift_checks_and_resyncs_deploy_the_current_step(rig: Rig) -> None:
    rig.start_canary(analyses=1)
    assert rig.deployer.live == {"v1": 90, "v2": 10}
    rig.rec.reconcile({"drift"})
    rig.rec.reconcile({"webhook"})   # a re-sync of the same revision
    assert rig.deployer.live == {"v1": 90, "v2": 10}
    assert all(w == {"v1": 90, "v2": 10} for w, _ in rig.deployer.seen[-2:])


def test_a_restarted_reconciler_resumes_at_the_same_step(rig: Rig) -> None:
    rig.start_canary(analyses=2)
    assert rig.deployer.live == {"v1": 50, "v2": 50}
    rig.rec.stop()
    rig.restart().reconcile({"start"})
    assert rig.deployer.live == {"v1": 50, "v2": 50}
    rig.analyse(3)
    assert rig.phase() is Phase.SUCCEEDED and rig.deployer.live == {"v2": 100}


def test_a_new_revision_mid_rollout_restarts_with_the_new_target(rig: Rig) -> None:
    rig.start_canary(analyses=2)
    rig.push(C)
    assert rig.deployer.live == {"v1": 100}
    stored = rig.rollouts.load(*KEY)
    assert stored is not None and stored.state.target == "v3"
    rig.analyse()
    assert rig.deployer.live == {"v1": 90, "v3": 10}


def test_a_rejected_revision_leaves_the_applied_rollout_alone(rig: Rig) -> None:
    rig.start_canary(analyses=1)
    rig.deployer.reject = {"v3"}
    rig.source.head = C
    rig.rec.reconcile({"webhook"})
    assert rig.rec.status.applied_revision == B
    assert rig.rec.status.last is not None and rig.rec.status.last.result is Result.FAILED
    stored = rig.rollouts.load(*KEY)
    assert stored is not None and stored.state.target == "v2"   # nothing persisted for C
    rig.rec.reconcile({"drift"})
    assert rig.deployer.live == {"v1": 90, "v2": 10}             # B's rollout, same step
    rig.analyse(4)
    assert rig.phase() is Phase.SUCCEEDED and rig.deployer.live == {"v2": 100}


def test_suspended_reconciler_does_not_move_traffic(rig: Rig) -> None:
    rig.start_canary(analyses=1)
    rig.rec.store.save_control(Control(generation=1, suspended=True, reason="freeze"))
    rig.rec.reconcile({"manual"})
    assert rig.rec.status.suspended
    before = list(rig.deployer.seen)
    rig.analyse(4)
    assert rig.deployer.seen == before


def test_without_a_driver_the_raw_program_is_deployed(rig: Rig) -> None:
    rec = Reconciler(Settings(), source=rig.source, deployer=rig.deployer,
                     store=DiskStore(rig.tmp / "plain"), sandbox=rig.runner)
    rig.source.head = B
    rec.reconcile({"webhook"})
    assert rig.deployer.live == {"v2": 100}
    assert rig.runner.asked_for_spec[-1] is False


def test_the_loop_ticks_when_an_analysis_is_due_not_a_period_later(rig: Rig) -> None:
    rig.push(A)
    assert rig.rec.rollouts is not None and rig.rec.rollouts.next_due() is None
    assert rig.rec._rollout_wait(30.0) == 30.0
    rig.push(B)
    rig.analyse()
    stored = rig.rollouts.load(*KEY)
    assert stored is not None and stored.state.next_analysis_at is not None
    assert rig.rec.rollouts.next_due() == stored.state.next_analysis_at
    due_in = stored.state.next_analysis_at - rig.clock.now
    assert 0 < due_in <= 10.5
    assert rig.rec._rollout_wait(30.0) == pytest.approx(due_in + 0.01)
    assert rig.rec._rollout_wait(1.0) == 1.0          # manual commands still seen each period
    rig.clock.now += 60                               # overdue: tick almost at once
    assert rig.rec._rollout_wait(30.0) == pytest.approx(0.02)


def test_analyses_wait_without_the_target_lock(rig: Rig) -> None:
    """Metric queries and gate webhooks may take their whole deadline: a tick must not
    hold the target lock meanwhile (a pass or a rollback would stall behind it)."""
    rig.start_canary()
    held: list[bool] = []
    measure = rig.metrics.measure

    def watched(query: MetricQuery) -> float | None:
        held.append(target_lock(rig.deployer.identity).locked())
        return measure(query)

    rig.metrics.measure = watched  # type: ignore[method-assign]
    rig.analyse(3)
    assert held and not any(held)
    assert rig.deployer.live == {"v2": 100}   # the steps' views were still pushed

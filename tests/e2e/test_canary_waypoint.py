"""Issue #15 on the local mesh: a canary in an ambient namespace — the workloads behind L4
proxies, the routes and the weights on the namespace's waypoint — promoted when healthy and
rolled back when faulty, judged on the waypoint's metrics (``reporter="waypoint"``) by a
real Prometheus through the Envoy -> Istio bridge."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from reconciler.delivery.phases import Phase
from reconciler.demo.prometheus import by_label
from reconciler.demo.traffic import CanaryRig
from tests.e2e.conftest import NS, SERVICE, canary_mesh
from tests.e2e.test_canary_local import run_rollout, state_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REQUESTS = (f'sum by (reporter, destination_workload) (istio_requests_total'
            f'{{destination_workload_namespace="{NS}", destination_service_name="{SERVICE}"}})')


def reporters(found: dict[str, dict[str, float]]) -> Callable[[CanaryRig], None]:
    """An inspection that records requests per reporter and destination workload."""
    def inspect(rig: CanaryRig) -> None:
        assert rig.prometheus is not None
        for sample in rig.prometheus.query(REQUESTS):
            labels = sample["metric"]
            found.setdefault(labels.get("reporter", ""), {})[
                labels.get("destination_workload", "")] = float(sample["value"][1])
    return inspect


def test_a_healthy_canary_is_promoted_on_the_waypoints_metrics(state_dir: Path) -> None:
    spec = canary_mesh(mode="ambient")
    assert spec.canaries[0].reporter == "waypoint"
    seen: dict[str, dict[str, float]] = {}
    rig, traffic, _ = run_rollout(state_dir, spec, inspect=reporters(seen))
    state = state_of(rig)
    assert state.phase is Phase.SUCCEEDED, state.reason
    assert state.traffic.weights == {"v1": 0, "v2": 100}
    pushed = [dict(w.get((NS, SERVICE), {})) for _, w in rig.pushes]
    for step in (20, 50, 100):
        assert {"v1": 100 - step, "v2": step} in pushed, pushed
    assert traffic is not None
    assert traffic.share("reviews-v2", since=state.last_transition + 0.3) == 1.0
    assert all(s.status == 200 for s in traffic.samples), "a healthy rollout fails nothing"
    # What judged it: the waypoint's series; no sidecar reported any (there is none).
    assert seen.get("waypoint", {}).get("reviews-v2", 0) > 0, seen
    assert seen["waypoint"].get("reviews-v1", 0) > 0, seen
    assert set(seen) == {"waypoint"}, seen
    passed = [c for c in state.last_analysis if c.name == "request-success-rate"]
    assert passed and passed[0].value == pytest.approx(100.0)


def test_a_canary_with_20_percent_5xx_is_rolled_back_on_the_waypoints_metrics(
        state_dir: Path) -> None:
    seen: dict[str, dict[str, float]] = {}
    rig, traffic, _ = run_rollout(state_dir, canary_mesh(v2=["--error-rate", "0.2"],
                                                         mode="ambient"),
                                  inspect=reporters(seen))
    state = state_of(rig)
    assert state.phase is Phase.FAILED, state.reason
    assert "request-success-rate" in state.reason
    assert state.traffic.weights == {"v1": 100, "v2": 0}
    assert state.stage_index == 0, "caught at the first step"
    failed = [c for c in state.last_analysis if c.name == "request-success-rate"]
    assert failed and failed[0].value is not None and failed[0].value < 99, failed
    assert set(seen) == {"waypoint"} and seen["waypoint"].get("reviews-v2", 0) > 0, seen
    assert traffic is not None
    after = traffic.since(state.last_transition + 0.3)
    assert after and all(s.served_by == "reviews-v1" and s.status == 200 for s in after)


def test_the_waypoint_series_carry_istios_destination_labels(state_dir: Path) -> None:
    """One short run without a rollout: the bridge's waypoint series, label by label."""
    rig = CanaryRig(state_dir)
    try:
        rig.start(canary_mesh(mode="ambient"), drive=False)
        assert rig.mesh is not None and rig.prometheus is not None
        with httpx.Client(timeout=5, trust_env=False) as client:
            for _ in range(20):
                assert client.get(rig.mesh.outbound_url("client", SERVICE)).status_code == 200
        query = 'istio_requests_total{reporter="waypoint", response_code="200"}'
        result = rig.prometheus.wait_for(
            query, lambda r: sum(by_label(r, "destination_workload").values()) >= 20, 15)
        (sample,) = [s for s in result if s["metric"]["destination_workload"] == "reviews-v1"]
        labels = sample["metric"]
        assert {k: labels[k] for k in ("destination_workload_namespace",
                                       "destination_service", "destination_version",
                                       "destination_canonical_service")} == {
            "destination_workload_namespace": NS,
            "destination_service": f"{SERVICE}.{NS}.svc.cluster.local",
            "destination_version": "v1", "destination_canonical_service": SERVICE}
    finally:
        rig.stop()

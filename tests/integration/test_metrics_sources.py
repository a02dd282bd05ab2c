"""Canary metrics from real components: Prometheus 2.42 scraping a real Envoy with the
Envoy -> Istio recording rules loaded, and the same Envoy's stats read directly.

The Envoy is wired like the local mesh: an ingress listener routes (by header) to
``outbound|9080|<version>|reviews_test_svc_cluster_local`` clusters, which reach each
version's "sidecar" listener, whose ``inbound|9080|<version>|...`` cluster is the demo app.
So both reporters exist: the callers' view (outbound, ``reporter="source"``) and the
destination's (inbound, ``reporter="destination"`` — what the builtin queries read).
reviews v2 fails 20% of requests with 503 and takes ~20 ms; v1 is healthy.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from meshdsl.model.canary import LatencyP99, SuccessRate
from reconciler.delivery.queries import MetricQuery, metric_queries
from reconciler.metrics import EnvoyStatsSource, PrometheusSource, istio_bridge_rule_groups
from reconciler.metrics.recording_rules import rules_file
from reconciler.targets.envoy import EnvoyProcess
from reconciler.testing.demo_apps import DemoApp
from reconciler.testing.envoy_config import http_listener, route_table, static_cluster
from reconciler.testing.ports import free_ports
from reconciler.testing.prometheus import LocalPrometheus, ScrapeJob, by_label
from tests.unit.delivery.scenario import make_plan

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

NAMESPACE, SERVICE = "test", "reviews"
V2_REQUESTS, V1_REQUESTS = 250, 50


def cluster(direction: str, version: str) -> str:
    return f"{direction}|9080|{version}|{SERVICE}_{NAMESPACE}_svc_cluster_local"


def route_to(name: str, *, version_header: str | None = None) -> dict[str, Any]:
    match: dict[str, Any] = {"prefix": "/"}
    if version_header is not None:
        match["headers"] = [{"name": "x-version", "string_match": {"exact": version_header}}]
    return {"match": match, "route": {"cluster": name}}


@dataclass
class Mesh:
    envoy: EnvoyProcess
    url: str
    v2_statuses: Counter[int]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    ingress, sidecar_v1, sidecar_v2 = free_ports(3)
    workdir = tmp_path_factory.mktemp("envoy")
    with (
        DemoApp(SERVICE, "v1") as v1,
        DemoApp(SERVICE, "v2", error_rate=0.2, latency_ms=20, seed=7) as v2,
        EnvoyProcess(workdir) as envoy,
    ):
        listeners = [
            http_listener("ingress", ingress, route_config=route_table("ingress", [
                route_to(cluster("outbound", "v2"), version_header="v2"),
                route_to(cluster("outbound", "v1"))])),
            http_listener("sidecar-v1", sidecar_v1, route_config=route_table(
                "sidecar-v1", [route_to(cluster("inbound", "v1"))])),
            http_listener("sidecar-v2", sidecar_v2, route_config=route_table(
                "sidecar-v2", [route_to(cluster("inbound", "v2"))])),
        ]
        clusters = [
            static_cluster(cluster("outbound", "v1"), sidecar_v1),
            static_cluster(cluster("outbound", "v2"), sidecar_v2),
            static_cluster(cluster("inbound", "v1"), v1.port),
            static_cluster(cluster("inbound", "v2"), v2.port),
        ]
        envoy.update(listeners, clusters, "1")
        yield Mesh(envoy, f"http://127.0.0.1:{ingress}", Counter())


def send(mesh: Mesh, client: httpx.Client, version: str, count: int, path: str = "/") -> None:
    for _ in range(count):
        response = client.get(f"{mesh.url}{path}", headers={"x-version": version})
        assert response.headers.get("x-served-by") == f"{SERVICE}-{version}", response.text
        if version == "v2" and path == "/":
            mesh.v2_statuses[response.status_code] += 1


def queries(interval: str) -> dict[str, MetricQuery]:
    plan = make_plan(namespace=NAMESPACE, service=SERVICE, interval=interval,
                     checks=[SuccessRate(min=99), LatencyP99(max_ms=500)])
    return {q.key: q for q in metric_queries(plan)}


def expected_success(mesh: Mesh) -> float:
    total = sum(mesh.v2_statuses.values())
    return 100.0 * mesh.v2_statuses[200] / total


def test_prometheus_with_recording_rules_answers_the_builtin_queries(
        mesh: Mesh, tmp_path: Path) -> None:
    admin = mesh.envoy.admin_url.removeprefix("http://")
    job = ScrapeJob("envoy", [admin], metrics_path="/stats/prometheus")
    rules = istio_bridge_rule_groups(interval="1s")
    with (
        LocalPrometheus([job], rule_groups=rules, workdir=tmp_path / "prom") as prometheus,
        httpx.Client(timeout=10.0, trust_env=False) as client,
        PrometheusSource(prometheus.url) as source,
    ):
        # Warm up: every series (200 and 503, both versions) exists before the measured
        # traffic, so rate() sees the whole of it as increase.
        for version in ("v1", "v2"):
            send(mesh, client, version, 1, "/status/503")
            send(mesh, client, version, 1, "/healthz")
        prometheus.wait_for(
            'count(istio_requests_total{destination_workload_namespace="test"})',
            lambda r: bool(r) and float(r[0]["value"][1]) >= 8, timeout=20)
        time.sleep(2.5)  # two more scrapes of the warm-up values
        mesh.v2_statuses.clear()
        send(mesh, client, "v2", V2_REQUESTS)
        send(mesh, client, "v1", V1_REQUESTS)

        served = 'sum(istio_requests_total{reporter="destination",destination_workload="reviews-v2"})'
        prometheus.wait_for(served, lambda r: bool(r) and float(r[0]["value"][1])
                            >= V2_REQUESTS + 2, timeout=20)
        time.sleep(2.5)

        wanted = queries("1m")
        rate = source.measure(wanted["request-success-rate"])
        assert rate is not None
        assert sum(mesh.v2_statuses.values()) == V2_REQUESTS
        assert abs(rate - expected_success(mesh)) < 2.0, (rate, mesh.v2_statuses)
        assert 72.0 <= rate <= 88.0

        count = source.measure(wanted["request-count"])
        assert count is not None and abs(count - V2_REQUESTS) < 0.25 * V2_REQUESTS

        by_reporter = by_label(prometheus.query(
            'sum by (reporter) (istio_requests_total{destination_workload="reviews-v2",'
            'response_code="503"})'), "reporter")
        assert set(by_reporter) == {"source", "destination"}
        assert by_reporter["source"] == by_reporter["destination"]
        (sample,) = prometheus.query(
            'istio_requests_total{reporter="source",destination_workload="reviews-v1",'
            'response_code="200"}')
        labels = sample["metric"]
        assert (labels["destination_workload_namespace"], labels["destination_service_name"],
                labels["destination_service"], labels["destination_version"]) == (
            "test", "reviews", "reviews.test.svc.cluster.local", "v1")

        stable_plan = make_plan(namespace=NAMESPACE, service=SERVICE, target="v1",
                                stable="v2", checks=[SuccessRate(min=99)])
        (_, stable_rate) = metric_queries(stable_plan)
        assert source.measure(stable_rate) == 100.0

        # Envoy merges histograms at its stats flush (every 5 s): wait for the p99.
        deadline = time.monotonic() + 20
        p99 = source.measure(wanted["request-duration"])
        while p99 is None and time.monotonic() < deadline:
            time.sleep(1)
            p99 = source.measure(wanted["request-duration"])
        assert p99 is not None and 10.0 < p99 <= 100.0, p99

        nothing = make_plan(namespace=NAMESPACE, service=SERVICE, target="v9",
                            checks=[SuccessRate(min=99)])
        assert all(source.measure(q) is None for q in metric_queries(nothing))


def test_envoy_stats_read_directly_give_the_exact_success_rate(mesh: Mesh) -> None:
    destination = EnvoyStatsSource([mesh.envoy.admin_url])
    source_view = EnvoyStatsSource([mesh.envoy.admin_url], reporter="source")
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        send(mesh, client, "v2", 1, "/healthz")
        destination.sample()
        source_view.sample()
        mesh.v2_statuses.clear()
        send(mesh, client, "v2", V2_REQUESTS)
        send(mesh, client, "v1", V1_REQUESTS)
    wanted = queries("1m")
    for reader in (destination, source_view):
        assert reader.measure(wanted["request-count"]) == V2_REQUESTS
        rate = reader.measure(wanted["request-success-rate"])
        assert rate == pytest.approx(expected_success(mesh))
        assert 72.0 <= (rate or 0) <= 88.0
    time.sleep(6)  # one stats flush: the histograms include the window
    p99 = destination.measure(wanted["request-duration"])
    assert p99 is not None and 10.0 < p99 <= 100.0, p99
    destination.close()
    source_view.close()


def test_promtool_accepts_and_unit_tests_the_rules(tmp_path: Path) -> None:
    """Prometheus' own rule tester: exact Istio labels from an Envoy-shaped input series."""
    (tmp_path / "rules.yml").write_text(rules_file())
    check = subprocess.run(["promtool", "check", "rules", str(tmp_path / "rules.yml")],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    inbound = cluster("inbound", "v2")
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": f'envoy_cluster_upstream_rq{{envoy_cluster_name="{inbound}",'
                           'envoy_response_code="503",job="envoy",instance="a"}',
                 "values": "0+2x10"},
                {"series": 'envoy_cluster_upstream_rq{envoy_cluster_name="outbound|9080||'
                           'reviews_test_svc_cluster_local",envoy_response_code="200"}',
                 "values": "0+1x10"},
            ],
            "promql_expr_test": [{
                "expr": "sum by (reporter, destination_workload, "
                        "destination_workload_namespace, destination_service_name, "
                        "response_code) (istio_requests_total)",
                "eval_time": "5m",
                "exp_samples": [{
                    "labels": '{reporter="destination",destination_workload="reviews-v2",'
                              'destination_workload_namespace="test",'
                              'destination_service_name="reviews",response_code="503"}',
                    "value": 10}],
            }],
        }],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(["promtool", "test", "rules", "tests.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

"""Canary metrics from real components: Prometheus 2.42 scraping a real Envoy through the
Envoy -> Istio bridge (scrape relabelling + recording rule), and the same Envoy's stats
read directly.

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
from reconciler.demo.apps import DemoApp
from reconciler.demo.prometheus import LocalPrometheus, ScrapeJob, by_label
from reconciler.demo.traffic import SCRAPE_INTERVAL
from reconciler.metrics import (
    EnvoyStatsSource,
    PrometheusSource,
    istio_bridge_relabel_configs,
    istio_bridge_rule_groups,
)
from reconciler.metrics.recording_rules import ENVOY_STATS_FILTER, rules_file
from reconciler.processes.ports import free_ports
from reconciler.targets.envoy import EnvoyProcess
from reconciler.testing.envoy_config import http_listener, route_table, static_cluster
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


def bridge_job(mesh: Mesh) -> ScrapeJob:
    """The Envoy scrape job as the local mesh's Prometheus runs it (see ``envoy_scrape_job``)."""
    return ScrapeJob("envoy", [mesh.envoy.admin_url.removeprefix("http://")],
                     metrics_path="/stats/prometheus", params={"filter": ENVOY_STATS_FILTER},
                     metric_relabel_configs=istio_bridge_relabel_configs())


def expected_success(mesh: Mesh) -> float:
    total = sum(mesh.v2_statuses.values())
    return 100.0 * mesh.v2_statuses[200] / total


def test_prometheus_with_recording_rules_answers_the_builtin_queries(
        mesh: Mesh, tmp_path: Path) -> None:
    rules = istio_bridge_rule_groups(interval="1s")
    with (
        LocalPrometheus([bridge_job(mesh)], rule_groups=rules,
                        workdir=tmp_path / "prom") as prometheus,
        httpx.Client(timeout=10.0, trust_env=False) as client,
        PrometheusSource(prometheus.url) as source,
    ):
        # No warm-up: the bridge records 0 for the 200s and 503s of every subset cluster
        # before its first request, so rate() counts the very first one. Wait for those
        # zeros (4 clusters x 5 codes) and the measured traffic is the whole increase.
        prometheus.wait_for(
            'count(istio_requests_total{destination_workload_namespace="test"})',
            lambda r: bool(r) and float(r[0]["value"][1]) >= 20, timeout=20)
        mesh.v2_statuses.clear()
        send(mesh, client, "v2", V2_REQUESTS)
        send(mesh, client, "v1", V1_REQUESTS)

        served = 'sum(istio_requests_total{reporter="destination",destination_workload="reviews-v2"})'
        prometheus.wait_for(served, lambda r: bool(r) and float(r[0]["value"][1])
                            >= V2_REQUESTS, timeout=20)
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

        # Envoy merges histograms at its stats flush (every second): wait for the p99.
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
    time.sleep(2.5)  # a stats flush (every second): the histograms include the window
    p99 = destination.measure(wanted["request-duration"])
    assert p99 is not None and 10.0 < p99 <= 100.0, p99
    destination.close()
    source_view.close()


def test_a_request_envoy_counted_is_an_istio_request_within_a_few_scrapes(
        mesh: Mesh, tmp_path: Path) -> None:
    """The bridge's lag, end to end, as the local mesh runs it: a response Envoy counted is
    in ``istio_requests_total`` — and in its ``increase()``, though it is the first with
    its code — well within one analysis interval. (It used to take up to a scrape plus a
    rule evaluation of 1 s each, and a code's first response was never counted.)"""
    rules = istio_bridge_rule_groups(interval=SCRAPE_INTERVAL)
    selector = ('istio_requests_total{reporter="destination",destination_workload="reviews-v1",'
                'response_code="504"}')
    with (
        LocalPrometheus([bridge_job(mesh)], scrape_interval=SCRAPE_INTERVAL, rule_groups=rules,
                        workdir=tmp_path / "prom") as prometheus,
        httpx.Client(timeout=10.0, trust_env=False) as client,
    ):
        # The 0 recorded before any 504, for long enough that increase() has a baseline.
        prometheus.wait_for(f"count_over_time({selector}[1m])",
                            lambda r: bool(r) and float(r[0]["value"][1]) >= 3, timeout=15)
        response = client.get(f"{mesh.url}/status/504", headers={"x-version": "v1"})
        assert response.status_code == 504
        counted = time.monotonic()
        deadline = counted + 5.0
        seen = 0.0
        while time.monotonic() < deadline:
            result = prometheus.query(f"sum(increase({selector}[1m]))")
            seen = float(result[0]["value"][1]) if result else 0.0
            if seen >= 0.9:
                break
            time.sleep(0.02)
        lag = time.monotonic() - counted
        assert seen >= 0.9, f"the 504 never showed in {selector} ({seen})"
        assert lag <= 1.5, f"the bridge took {lag:.2f}s to show a counted request"


def test_promtool_accepts_the_bridge_and_unit_tests_its_rule(tmp_path: Path) -> None:
    """Prometheus' own checkers: a scrape config with the bridge's relabelling and its rules
    file are valid; the rule keeps Envoy's counters and counts a code's first response."""
    (tmp_path / "rules.yml").write_text(rules_file())
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": ["rules.yml"],
        "scrape_configs": [{
            "job_name": "envoy", "metrics_path": "/stats/prometheus",
            "params": {"filter": [ENVOY_STATS_FILTER]},
            "static_configs": [{"targets": ["127.0.0.1:15000"]}],
            "metric_relabel_configs": istio_bridge_relabel_configs(),
        }],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    check = subprocess.run(["promtool", "check", "config", "prometheus.yml"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    # Input as Prometheus stores it after the relabelling; the 503 counter is born at 5m.
    labels = (f'envoy_cluster_name="{cluster("inbound", "v2")}",reporter="destination",'
              'destination_workload="reviews-v2",destination_workload_namespace="test",'
              'job="envoy",instance="a"')
    by = "sum by (reporter, destination_workload, response_code)"
    v2 = 'reporter="destination",destination_workload="reviews-v2"'
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": f"envoy_cluster_upstream_rq_total{{{labels}}}",
                 "values": "0 0 0 0 0 1 2 3 4 5 6"},
                {"series": f'envoy_cluster_upstream_rq{{{labels},envoy_response_code="503",'
                           'response_code="503"}',
                 "values": "_ _ _ _ _ 1 2 3 4 5 6"},
            ],
            "promql_expr_test": [
                {"expr": f'{by} (istio_requests_total{{response_code=~"200|503"}})',
                 "eval_time": "4m",
                 "exp_samples": [
                     {"labels": f'{{{v2},response_code="200"}}', "value": 0},
                     {"labels": f'{{{v2},response_code="503"}}', "value": 0}]},
                {"expr": f'{by} (istio_requests_total{{response_code=~"200|503"}})',
                 "eval_time": "10m",
                 "exp_samples": [
                     {"labels": f'{{{v2},response_code="200"}}', "value": 0},
                     {"labels": f'{{{v2},response_code="503"}}', "value": 6}]},
                # The first 503 is an increase from 0 ...
                {"expr": f'{by} (increase(istio_requests_total{{response_code="503"}}[2m]))',
                 "eval_time": "5m",
                 "exp_samples": [{"labels": f'{{{v2},response_code="503"}}', "value": 1}]},
                # ... which Envoy's own counter, born at 1, never shows.
                {"expr": 'increase(envoy_cluster_upstream_rq{response_code="503"}[2m])',
                 "eval_time": "5m", "exp_samples": []},
            ],
        }],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(["promtool", "test", "rules", "tests.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

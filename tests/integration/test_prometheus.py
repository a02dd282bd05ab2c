"""Prometheus 2.42 scraping a real Envoy: the metrics path canary analysis relies on."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reconciler.demo.apps import DemoApp
from reconciler.demo.prometheus import LocalPrometheus, ScrapeJob, by_label
from reconciler.targets.envoy import EnvoyProcess
from reconciler.testing.envoy_config import route_table, static_cluster, weighted_route
from tests.integration.conftest import ROUTES, Ingress

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SPLIT = 'sum by (envoy_cluster_name) (envoy_cluster_upstream_rq_total{envoy_cluster_name=~"v1|v2"})'


@pytest.fixture
def envoy_90_10(envoy: EnvoyProcess, reviews: tuple[DemoApp, DemoApp], ingress: Ingress
                ) -> tuple[EnvoyProcess, str]:
    """An Envoy routing 90/10 between reviews v1 and v2; it and its listener URL."""
    v1, v2 = reviews
    envoy.update(
        ingress.listeners,
        [static_cluster("v1", v1.port), static_cluster("v2", v2.port)],
        "1",
        routes=[route_table(ROUTES, [weighted_route({"v1": 90, "v2": 10})])],
    )
    return envoy, ingress.url


def _admin_target(envoy: EnvoyProcess) -> str:
    return envoy.admin_url.removeprefix("http://")


def test_prometheus_sees_the_weighted_split_of_envoy_traffic(
    tmp_path: Path, envoy_90_10: tuple[EnvoyProcess, str]
) -> None:
    envoy, url = envoy_90_10
    rules = [
        {
            "name": "local-mesh",
            "interval": "1s",
            "rules": [
                {
                    "record": "mesh:upstream_rq:total",
                    "expr": "sum by (envoy_cluster_name) (envoy_cluster_upstream_rq_total)",
                }
            ],
        }
    ]
    job = ScrapeJob("envoy", [_admin_target(envoy)], metrics_path="/stats/prometheus")
    with LocalPrometheus([job], rule_groups=rules, workdir=tmp_path / "prom") as prometheus:
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            for _ in range(300):
                assert client.get(url).status_code == 200

        result = prometheus.wait_for(
            SPLIT, lambda r: sum(by_label(r, "envoy_cluster_name").values()) >= 300, timeout=10
        )
        split = by_label(result, "envoy_cluster_name")
        assert sum(split.values()) == 300, split
        assert 0.04 <= split.get("v2", 0) / 300 <= 0.18, split

        recorded = prometheus.wait_for(
            'mesh:upstream_rq:total{envoy_cluster_name=~"v1|v2"}',
            lambda r: sum(by_label(r, "envoy_cluster_name").values()) >= 300,
            timeout=10,
        )
        assert by_label(recorded, "envoy_cluster_name") == split
        assert [t["health"] for t in prometheus.targets()] == ["up"]


def test_reload_targets_without_restart(
    tmp_path: Path, envoy_90_10: tuple[EnvoyProcess, str]
) -> None:
    envoy, _ = envoy_90_10
    with LocalPrometheus(workdir=tmp_path / "prom") as prometheus:
        assert prometheus.targets() == []
        job = ScrapeJob(
            "envoy",
            [_admin_target(envoy)],
            metrics_path="/stats/prometheus",
            labels={"mesh": "local"},
        )
        prometheus.reload_targets([job])
        result = prometheus.wait_for(
            'up{job="envoy"}', lambda r: by_label(r, "mesh") == {"local": 1.0}, timeout=10
        )
        assert result[0]["metric"]["instance"] == _admin_target(envoy)

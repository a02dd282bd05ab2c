"""The dashboard's server on 127.0.0.1 (read-only, token when asked) and its traffic
sources against real components: Prometheus fed by the local mesh's Envoys through the
Istio bridge, with Kiali's queries."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from meshdsl import Mesh
from meshdsl.model.spec import MeshSpec
from reconciler.core.graph import service_id, workload_id
from reconciler.dashboard import (
    Dashboard,
    DashboardError,
    Feeds,
    PrometheusTraffic,
    is_loopback,
    parse_listen,
)
from reconciler.demo.apps import DEMO_APP
from reconciler.demo.prometheus import LocalPrometheus
from reconciler.demo.traffic import TrafficGenerator, envoy_scrape_job
from reconciler.metrics import istio_bridge_rule_groups
from reconciler.targets.envoy.mesh import LocalMesh

pytestmark = pytest.mark.integration


def small() -> MeshSpec:
    mesh = Mesh("dash", namespace="shop")
    mesh.namespace("shop")
    web = mesh.service("web", port=9080, versions=["v1"])
    web.route(to=web.v1)
    web.run_locally("v1", command=["python3", str(DEMO_APP), "--name", "{service}",
                                   "--version", "{version}", "--port", "{port}"])
    mesh.service("client", port=8080).deploy("v1", image="none")
    return mesh.build()


def test_token_required_when_asked_and_read_only() -> None:
    spec = small()
    feeds = Feeds(spec=lambda: spec, tracing_url="http://127.0.0.1:16686/")
    with Dashboard(feeds, token="s3cret", refresh=0.5) as board:
        base = f"http://127.0.0.1:{board.port}"
        with httpx.Client(trust_env=False, timeout=5) as client:
            assert client.get(f"{base}/").status_code == 401
            assert client.get(f"{base}/api/graph?token=wrong").status_code == 401
            page = client.get(board.url)
            assert page.status_code == 200 and "cytoscape" in page.text
            assert client.cookies.get("meshdsl_dashboard") == "s3cret"
            graph = client.get(f"{base}/api/graph").json()   # the cookie is enough
            assert service_id("shop", "web") in {n["id"] for n in graph["graph"]["nodes"]}
            assert graph["tracing_url"] == "http://127.0.0.1:16686/"
            assert client.post(f"{base}/api/graph").status_code == 405
        with httpx.Client(trust_env=False, timeout=5) as other:
            headers = {"Authorization": "Bearer s3cret"}
            assert other.get(f"{base}/static/app.js", headers=headers).status_code == 200
            # spans come from Envoys, which cannot carry the token
            span = {"traceId": "a" * 32, "id": "b" * 16, "name": "get",
                    "timestamp": 1, "duration": 5, "localEndpoint": {"serviceName": "web"}}
            assert other.post(f"{base}/api/v2/spans", json=[span]).status_code == 202
            traces = other.get(f"{base}/api/traces?service=web", headers=headers).json()
            assert [t["trace_id"] for t in traces] == ["a" * 32]


def test_loopback_needs_no_token_and_events_stream() -> None:
    spec = small()
    with Dashboard(Feeds(spec=lambda: spec), refresh=0.3) as board:
        assert board.token is None and board.url.endswith("/")
        seqs = []
        with httpx.Client(trust_env=False, timeout=5) as client, \
                client.stream("GET", f"http://127.0.0.1:{board.port}/api/events") as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    seqs.append(json.loads(line[6:])["seq"])
                if len(seqs) == 3:
                    break
        assert seqs == sorted(seqs) and len(set(seqs)) == 3


def test_listen_parsing_and_loopback() -> None:
    assert parse_listen("127.0.0.1:8090") == ("127.0.0.1", 8090)
    assert parse_listen("[::1]:0") == ("::1", 0)
    with pytest.raises(DashboardError, match="expected HOST:PORT"):
        parse_listen("8090")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")


def test_kiali_queries_on_prometheus_fed_by_the_local_mesh(tmp_path: Path) -> None:
    spec = small()
    prometheus = LocalPrometheus(rule_groups=istio_bridge_rule_groups(interval="1s"),
                                 workdir=tmp_path / "prometheus").start()
    mesh = LocalMesh(spec, workdir=tmp_path / "mesh")
    traffic = None
    try:
        mesh.start()
        prometheus.reload_targets([envoy_scrape_job(mesh)])
        traffic = TrafficGenerator(mesh.outbound_url("client", "web"), rate=20,
                                   max_seconds=60).start()
        source = PrometheusTraffic(prometheus.url, lambda: spec, window="10s")
        deadline, edges = time.monotonic() + 40, []
        while time.monotonic() < deadline:
            edges = [e for e in source.edges() if e.service == "web" and e.rps > 0]
            if edges and edges[0].p99_ms is not None and edges[0].rps > 10:
                break
            time.sleep(1)
        assert edges, "no istio_requests_total for web in Prometheus"
        (edge,) = edges
        assert (edge.namespace, edge.version) == ("shop", "v1")
        assert 10 < edge.rps < 40 and edge.error_rps == 0   # 20 req/s sent
        assert edge.p50_ms is not None and edge.p99_ms is not None
        assert edge.p50_ms <= edge.p99_ms
        # the bridge has no source_workload label: the caller is "unknown"
        assert edge.source == "unknown"
        board = Dashboard(Feeds(spec=lambda: spec, traffic=source)).start()
        try:
            graph = board.build()["graph"]
        finally:
            board.stop()
        ids = {e["id"]: e for e in graph["edges"]}
        version_edge = ids[f"{service_id('shop', 'web')}->{workload_id('shop', 'web', 'v1')}"]
        assert version_edge["rps"] > 0 and version_edge["health"] == "healthy"
    finally:
        if traffic is not None:
            traffic.stop()
        mesh.stop()
        prometheus.stop()

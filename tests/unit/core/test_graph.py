"""The dashboard's graph: declared routes laid over seen traffic, health and mTLS."""

from __future__ import annotations

import pytest

from meshdsl import Mesh
from meshdsl.model.spec import MeshSpec
from reconciler.core.graph import (
    EdgeStats,
    build_graph,
    gateway_id,
    health,
    service_id,
    source_node,
    workload_id,
)

FRONT = workload_id("shop", "front", "v1")
SVC = service_id("shop", "reviews")
V1, V2 = workload_id("shop", "reviews", "v1"), workload_id("shop", "reviews", "v2")


def spec() -> MeshSpec:
    mesh = Mesh("g", namespace="shop")
    mesh.namespace("shop")
    gw = mesh.gateway("edge").http("*")
    front = mesh.service("front", versions=["v1"])
    reviews = mesh.service("reviews", versions=["v1", "v2"])
    reviews.route(to={reviews.v1: 80, reviews.v2: 20})
    gw.routes("front", hosts=["*"]).route(to=front)
    return mesh.build()


def by_id(graph: dict) -> tuple[dict, dict]:
    return ({n["id"]: n for n in graph["nodes"]}, {e["id"]: e for e in graph["edges"]})


def test_declared_routes_without_traffic_are_idle_edges_with_weights() -> None:
    nodes, edges = by_id(build_graph(spec(), []))
    assert {SVC, V1, V2, FRONT, gateway_id("shop", "edge"), "ns:shop"} <= nodes.keys()
    assert edges[f"{SVC}->{V1}"]["weight"] == 80 and edges[f"{SVC}->{V2}"]["weight"] == 20
    assert all(e["state"] == "idle" and e["declared"] for e in edges.values())
    assert edges[f"{gateway_id('shop', 'edge')}->{service_id('shop', 'front')}"]
    assert nodes[V1]["parent"] == "ns:shop" and nodes[V1]["health"] == "none"


def test_traffic_splits_into_caller_and_version_edges() -> None:
    traffic = [EdgeStats(FRONT, "shop", "reviews", "v1", rps=8.0, p50_ms=2, p99_ms=9,
                         mtls=True),
               EdgeStats(FRONT, "shop", "reviews", "v2", rps=2.0, error_rps=1.0,
                         p50_ms=3, p99_ms=30, mtls=True)]
    nodes, edges = by_id(build_graph(spec(), traffic))
    caller = edges[f"{FRONT}->{SVC}"]
    assert caller["rps"] == 10.0 and caller["error_pct"] == 10.0
    assert caller["p99_ms"] == 30 and caller["mtls"] is True
    assert caller["undeclared"] and caller["health"] == "failure"
    assert edges[f"{SVC}->{V1}"]["health"] == "healthy" and edges[f"{SVC}->{V1}"]["declared"]
    assert edges[f"{SVC}->{V2}"]["error_pct"] == 50.0
    assert nodes[V2]["health"] == "failure" and nodes[V1]["health"] == "healthy"
    assert nodes[SVC]["health"] == "failure"


def test_mixed_mtls_is_not_a_lock() -> None:
    traffic = [EdgeStats(FRONT, "shop", "reviews", "v1", rps=1, mtls=True),
               EdgeStats("unknown", "shop", "reviews", "v1", rps=1, mtls=False)]
    _, edges = by_id(build_graph(spec(), traffic))
    assert edges[f"{SVC}->{V1}"]["mtls"] is False


def test_a_gateway_proxy_is_drawn_as_the_declared_gateway_routing_there() -> None:
    proxy = gateway_id("shop", "istio-ingressgateway")
    traffic = [EdgeStats(proxy, "shop", "front", "", rps=5)]
    nodes, edges = by_id(build_graph(spec(), traffic))
    assert edges[f"{gateway_id('shop', 'edge')}->{service_id('shop', 'front')}"]["rps"] == 5
    assert proxy not in nodes


def test_seen_only_services_appear_and_output_is_deterministic() -> None:
    traffic = [EdgeStats(FRONT, "other", "ghost", "v9", rps=1)]
    first = build_graph(spec(), traffic)
    nodes, _ = by_id(first)
    assert not nodes[service_id("other", "ghost")]["declared"]
    assert first == build_graph(spec(), list(reversed(traffic)))


def test_canary_attached_to_its_service() -> None:
    nodes, _ = by_id(build_graph(spec(), [], canaries={SVC: {"stage": "10%"}}))
    assert nodes[SVC]["canary"] == {"stage": "10%"}


@pytest.mark.parametrize(("rps", "errors", "want"), [
    (0, 0, "none"), (100, 0, "healthy"), (1000, 1, "healthy"), (100, 1, "degraded"),
    (100, 5, "failure")])
def test_health_thresholds(rps: float, errors: float, want: str) -> None:
    assert health(rps, errors) == want


def test_source_workload_label_resolves_to_nodes() -> None:
    s = spec()
    assert source_node(s, "shop", "reviews-v2") == V2
    assert source_node(s, "istio-system", "istio-ingressgateway") == gateway_id("shop", "edge")
    assert source_node(s, "shop", "unknown") == "unknown"
    assert source_node(s, "x", "cron") == "wl:x/cron"


def test_a_waypoints_view_fills_the_version_edges_without_counting_callers_twice() -> None:
    """A sidecar caller names the service only (its waypoint routes); the waypoint names
    the versions but not the callers."""
    traffic = [EdgeStats(FRONT, "shop", "reviews", "", rps=10.0, mtls=True),
               EdgeStats("", "shop", "reviews", "v1", rps=7.0, p99_ms=4, mtls=True),
               EdgeStats("", "shop", "reviews", "v2", rps=3.0, error_rps=3.0, mtls=True)]
    nodes, edges = by_id(build_graph(spec(), traffic))
    assert edges[f"{FRONT}->{SVC}"]["rps"] == 10.0
    assert edges[f"{SVC}->{V1}"]["rps"] == 7.0 and edges[f"{SVC}->{V2}"]["rps"] == 3.0
    assert edges[f"{SVC}->{V2}"]["health"] == "failure" and nodes[V2]["health"] == "failure"
    assert not any(e["source"] in ("", "unknown") for e in edges.values())
    assert "" not in nodes and "unknown" not in nodes

"""Clusters a sidecar gets for a service: endpoints per subset and the client policy."""

from __future__ import annotations

from typing import Any

import pytest

from meshdsl.compile.envoy import WorkloadKey, compile_local
from meshdsl.model import (
    ClientTls,
    ConnectionPool,
    ConsistentHash,
    HttpPool,
    LoadBalancer,
    Mesh,
    OutlierDetection,
    TcpPool,
    TrafficPolicy,
    Version,
)
from meshdsl.model.spec import MeshSpec
from tests.unit.compile.envoy.conftest import placement, proxies

API = "api.shop.svc.cluster.local"
UNLIMITED = 4294967295


def mesh_with(**policy: Any) -> MeshSpec:
    mesh = Mesh("t", namespace="shop")
    mesh.service("web", port=9080).deploy("v1", image="web")
    api = mesh.service("api", port=8080, versions=[
        "v1", Version("v2", traffic_policy=TrafficPolicy(
            load_balancer=LoadBalancer(simple="RANDOM")))])
    api.deploy("v1", image="api").deploy("v2", image="api")
    if policy:
        api.policy(**policy)
    return mesh.build()


def cluster(spec: MeshSpec, subset: str | None, *, pki: bool = True) -> dict[str, Any]:
    return proxies(spec, pki=pki)["web-v1.shop"].cluster(f"outbound|8080|{subset or ''}|{API}")


def test_istio_defaults_where_envoys_differ() -> None:
    out = cluster(mesh_with(), None)
    assert out["lb_policy"] == "LEAST_REQUEST"
    assert out["connect_timeout"] == "10s"
    assert out["circuit_breakers"]["thresholds"] == [{
        "max_connections": UNLIMITED, "max_pending_requests": UNLIMITED,
        "max_requests": UNLIMITED, "max_retries": UNLIMITED, "track_remaining": True}]
    assert out["alt_stat_name"] == "outbound|8080||api_shop_svc_cluster_local"
    assert "outlier_detection" not in out


def test_subsets_hold_the_inbound_listeners_of_their_versions() -> None:
    spec = mesh_with()
    where = placement(spec)
    proxy = compile_local(spec, where)["web-v1.shop"]

    def ports(name: str) -> list[int]:
        endpoints = proxy.cluster(name)["load_assignment"].get("endpoints", [])
        return sorted(e["endpoint"]["address"]["socket_address"]["port_value"]
                      for group in endpoints for e in group["lb_endpoints"])

    inbound = {k.version: v.inbound.port for k, v in where.sidecars.items() if k.service == "api"}
    assert ports(f"outbound|8080|v1|{API}") == [inbound["v1"]]
    assert ports(f"outbound|8080|v2|{API}") == [inbound["v2"]]
    assert ports(f"outbound|8080||{API}") == sorted(inbound.values())


def test_connection_pool_becomes_circuit_breakers_and_protocol_options() -> None:
    pool = ConnectionPool(tcp=TcpPool(max_connections=100, connect_timeout="250ms"),
                          http=HttpPool(http1_max_pending_requests=10, http2_max_requests=1000,
                                        max_retries=3, max_requests_per_connection=2,
                                        idle_timeout="30s"))
    out = cluster(mesh_with(connection_pool=pool), "v1")
    assert out["connect_timeout"] == "0.25s"
    assert out["circuit_breakers"]["thresholds"][0] == {
        "max_connections": 100, "max_pending_requests": 10, "max_requests": 1000,
        "max_retries": 3, "track_remaining": True}
    options = out["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert options["common_http_protocol_options"] == {"idle_timeout": "30s",
                                                       "max_requests_per_connection": 2}
    assert options["explicit_http_config"] == {"http_protocol_options": {}}


def test_outlier_detection_like_istio() -> None:
    od = OutlierDetection(consecutive_5xx_errors=5, consecutive_gateway_errors=0,
                          interval="30s", base_ejection_time="1m", max_ejection_percent=50,
                          min_health_percent=20)
    out = cluster(mesh_with(outlier_detection=od), None)
    assert out["outlier_detection"] == {
        "enforcing_success_rate": 0, "consecutive_5xx": 5, "enforcing_consecutive_5xx": 100,
        "consecutive_gateway_failure": 0, "enforcing_consecutive_gateway_failure": 0,
        "interval": "30s", "base_ejection_time": "60s", "max_ejection_percent": 50}
    assert out["common_lb_config"] == {"healthy_panic_threshold": {"value": 20.0}}


@pytest.mark.parametrize(("lb", "expected"), [
    (LoadBalancer(simple="ROUND_ROBIN"), {"lb_policy": "ROUND_ROBIN"}),
    (LoadBalancer(simple="LEAST_REQUEST"), {"lb_policy": "LEAST_REQUEST"}),
    (LoadBalancer(simple="UNSPECIFIED"), {"lb_policy": "LEAST_REQUEST"}),
])
def test_simple_load_balancers(lb: LoadBalancer, expected: dict[str, Any]) -> None:
    out = cluster(mesh_with(load_balancer=lb), "v1")
    assert {k: out.get(k) for k in expected} == expected


def test_subset_policy_overrides_the_top_level_field() -> None:
    spec = mesh_with(load_balancer=LoadBalancer(simple="ROUND_ROBIN"))
    assert cluster(spec, "v1")["lb_policy"] == "ROUND_ROBIN"
    assert cluster(spec, "v2")["lb_policy"] == "RANDOM"


def test_ring_hash_with_minimum_ring_size() -> None:
    lb = LoadBalancer(consistent_hash=ConsistentHash(http_header_name="x-user",
                                                     minimum_ring_size=2048))
    out = cluster(mesh_with(load_balancer=lb), None)
    assert out["lb_policy"] == "RING_HASH"
    assert out["ring_hash_lb_config"] == {"minimum_ring_size": 2048}


def test_auto_mtls_uses_the_callers_identity_and_checks_the_servers() -> None:
    out = cluster(mesh_with(), "v1")
    istio, plain = out["transport_socket_matches"]
    assert istio["match"] == {"tlsMode": "istio"} and plain["match"] == {}
    context = istio["transport_socket"]["typed_config"]
    assert context["common_tls_context"]["tls_certificates"][0]["certificate_chain"] == {
        "filename": "/pki/cluster.local_ns_shop_sa_web.crt"}
    assert context["common_tls_context"]["validation_context"][
        "match_typed_subject_alt_names"] == [
        {"san_type": "URI", "matcher": {"exact": "spiffe://cluster.local/ns/shop/sa/api"}}]
    assert context["sni"] == f"outbound_.8080_.v1_.{API}"
    endpoint = out["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert endpoint["metadata"] == {
        "filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}}


def test_endpoints_of_workloads_that_disable_mtls_stay_plaintext() -> None:
    mesh = Mesh("t", namespace="shop")
    mesh.service("web", port=9080).deploy("v1", image="web")
    api = mesh.service("api", port=8080)
    api.deploy("v1", image="api").mtls("DISABLE")
    out = proxies(mesh.build())["web-v1.shop"].cluster(f"outbound|8080||{API}")
    assert "metadata" not in out["load_assignment"]["endpoints"][0]["lb_endpoints"][0]


@pytest.mark.parametrize(("mode", "socket_key"), [
    ("DISABLE", None),
    ("ISTIO_MUTUAL", "transport_socket"),
    ("SIMPLE", "transport_socket_matches"),
])
def test_destination_rule_tls_mode(mode: str, socket_key: str | None) -> None:
    out = cluster(mesh_with(tls=ClientTls.model_validate({"mode": mode})), None)
    keys = {"transport_socket", "transport_socket_matches"} & set(out)
    assert keys == ({socket_key} if socket_key else set())


def test_without_pki_everything_is_plaintext() -> None:
    out = cluster(mesh_with(), "v1", pki=False)
    assert "transport_socket_matches" not in out and "transport_socket" not in out


def test_inbound_cluster_points_at_the_app() -> None:
    spec = mesh_with()
    where = placement(spec)
    proxy = compile_local(spec, where)["api-v2.shop"]
    out = proxy.cluster(f"inbound|8080|v2|{API}")
    address = out["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"]["port_value"] == where.sidecars[
        WorkloadKey("shop", "api", "v2")].app.port
    assert out["alt_stat_name"] == "inbound|8080|v2|api_shop_svc_cluster_local"

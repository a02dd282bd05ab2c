"""The whole of ``compile_local`` on bookinfo and on small meshes: which proxies exist,
what each listens on, gateways, determinism, and placement errors."""

from __future__ import annotations

import json

import pytest

from meshdsl.compile.envoy import (
    EnvoyCompileError,
    GatewayPlacement,
    LocalPlacement,
    ProxyKind,
    WorkloadKey,
    compile_local,
    credential_names,
    gateway_ports,
    local_workloads,
    ports_needed,
    required_identities,
)
from meshdsl.model import Caller, Mesh
from meshdsl.model.spec import MeshSpec
from tests.unit.compile.envoy.conftest import (
    hcm,
    http_filter,
    http_filter_names,
    placement,
    proxies,
    routes_of,
)

GATEWAY = "istio-ingressgateway.istio-system"
REVIEWS = "reviews.bookinfo.svc.cluster.local"
TYPES = {
    "listeners": "type.googleapis.com/envoy.config.listener.v3.Listener",
    "clusters": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "routes": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
}


def test_one_sidecar_per_workload_and_one_gateway(bookinfo: MeshSpec) -> None:
    out = proxies(bookinfo)
    assert list(out) == sorted(out)
    # Every version runs locally (run_locally), deployed or not.
    sidecars = ["frontend-v1.default", "frontend-v2.default", "my-service-v1.default",
                "orders-v1.default", "productpage-v1.bookinfo", "ratings-v1.bookinfo",
                "reviews-v1.bookinfo", "reviews-v2.bookinfo", "reviews-v3.bookinfo",
                "users-v1.default", "users-v2.default", "users-v3.default"]
    assert {pid: p.kind for pid, p in out.items()} == {
        GATEWAY: ProxyKind.GATEWAY, **{pid: ProxyKind.SIDECAR for pid in sidecars}}
    assert out["reviews-v2.bookinfo"].workload == WorkloadKey("bookinfo", "reviews", "v2")
    assert out["reviews-v2.bookinfo"].principal == "spiffe://cluster.local/ns/bookinfo/sa/reviews"
    assert all(not p.notes for p in out.values())


def test_every_resource_is_typed_and_sorted(bookinfo: MeshSpec) -> None:
    for proxy in proxies(bookinfo).values():
        for kind, type_url in TYPES.items():
            resources = getattr(proxy, kind)
            assert all(r["@type"] == type_url for r in resources), (proxy.id, kind)
            assert [r["name"] for r in resources] == sorted(r["name"] for r in resources)


def test_output_is_deterministic(bookinfo: MeshSpec) -> None:
    def dump() -> str:
        return json.dumps({k: [v.listeners, v.clusters, v.routes, v.notes]
                           for k, v in proxies(bookinfo).items()}, sort_keys=True)
    assert dump() == dump()


def test_sidecar_listens_outbound_for_every_service_port_and_inbound_once(
        bookinfo: MeshSpec) -> None:
    proxy = proxies(bookinfo)["reviews-v1.bookinfo"]
    inbound = [ls for ls in proxy.listeners if ls["traffic_direction"] == "INBOUND"]
    outbound = [ls["name"] for ls in proxy.listeners if ls["traffic_direction"] == "OUTBOUND"]
    assert [ls["name"] for ls in inbound] == [f"inbound|9080|v1|{REVIEWS}"]
    assert len(outbound) == 7  # users, orders, frontend, my-service, productpage, reviews, ratings
    assert f"outbound|9080||{REVIEWS}" in outbound
    assert "outbound|80||frontend.default.svc.cluster.local" in outbound  # implied port


def test_every_subset_has_a_cluster(bookinfo: MeshSpec) -> None:
    names = {c["name"] for c in proxies(bookinfo)["productpage-v1.bookinfo"].clusters}
    assert {f"outbound|9080|{s}|{REVIEWS}" for s in ("", "v1", "v2", "v3")} <= names


def test_reviews_routes_all_traffic_to_v1_and_is_rate_limited(bookinfo: MeshSpec) -> None:
    out = proxies(bookinfo)
    (route,) = routes_of(out["productpage-v1.bookinfo"], f"outbound|9080||{REVIEWS}")
    assert route["route"]["cluster"] == f"outbound|9080|v1|{REVIEWS}"
    inbound = out["reviews-v2.bookinfo"].listener(f"inbound|9080|v2|{REVIEWS}")
    limit = http_filter(inbound, "envoy.filters.http.local_ratelimit")
    assert limit["token_bucket"] == {"max_tokens": 100, "tokens_per_fill": 100,
                                     "fill_interval": "1s"}
    ratings = out["ratings-v1.bookinfo"].listener(
        "inbound|9080|v1|ratings.bookinfo.svc.cluster.local")
    assert http_filter_names(ratings, 0) == ["envoy.filters.http.router"]


def test_gateway_merges_servers_of_all_gateways_by_port(bookinfo: MeshSpec) -> None:
    gateway = proxies(bookinfo)[GATEWAY]
    assert [ls["name"] for ls in gateway.listeners] == ["istio-ingressgateway|443",
                                                        "istio-ingressgateway|80"]
    hosts = gateway.route_table("http.80")["virtual_hosts"]
    assert [h["domains"] for h in hosts] == [["*"], ["api.example.com"]]
    star, api = hosts
    assert [r["match"] for r in star["routes"]] == [
        {"prefix": "/productpage"}, {"prefix": "/static"}, {"path": "/login"},
        {"path": "/logout"}]
    assert star["routes"][0]["route"]["cluster"] == (
        "outbound|9080||productpage.bookinfo.svc.cluster.local")
    assert [r["route"]["cluster"] for r in api["routes"]] == [
        "outbound|8080||users.default.svc.cluster.local",
        "outbound|8080||orders.default.svc.cluster.local"]
    https = gateway.listener("istio-ingressgateway|443")
    (chain,) = https["filter_chains"]
    context = chain["transport_socket"]["typed_config"]
    assert context["common_tls_context"]["tls_certificates"][0]["certificate_chain"] == {
        "filename": "/pki/api-cert.crt"}
    assert "require_client_certificate" not in context
    assert hcm(https)["strip_any_host_port"] is True


def test_https_without_credential_files_is_left_out_with_a_note(bookinfo: MeshSpec) -> None:
    where = placement(bookinfo)
    where = LocalPlacement(sidecars=where.sidecars, gateways=where.gateways,
                           ca_cert=where.ca_cert, identities=where.identities)
    gateway = compile_local(bookinfo, where)[GATEWAY]
    assert [ls["name"] for ls in gateway.listeners] == ["istio-ingressgateway|80"]
    assert any("api-cert" in note for note in gateway.notes)


def test_https_redirect_requires_tls_on_its_hosts() -> None:
    mesh = Mesh("t", namespace="shop")
    web = mesh.service("web", port=9080)
    gw = mesh.gateway("edge")
    gw.http("shop.example.com", https_redirect=True)
    gw.https("shop.example.com", credential="shop-cert")
    gw.routes("front").route(to=web)
    gateway = proxies(mesh.build())[GATEWAY]
    (host,) = gateway.route_table("http.80")["virtual_hosts"]
    assert host["require_tls"] == "ALL"
    (secure,) = gateway.route_table("https.443.https.edge.shop")["virtual_hosts"]
    assert "require_tls" not in secure and secure["routes"]


def test_placement_helpers(bookinfo: MeshSpec) -> None:
    assert local_workloads(bookinfo) == [
        WorkloadKey("bookinfo", "productpage", "v1"), WorkloadKey("bookinfo", "ratings", "v1"),
        WorkloadKey("bookinfo", "reviews", "v1"), WorkloadKey("bookinfo", "reviews", "v2"),
        WorkloadKey("bookinfo", "reviews", "v3"), WorkloadKey("default", "frontend", "v1"),
        WorkloadKey("default", "frontend", "v2"), WorkloadKey("default", "my-service", "v1"),
        WorkloadKey("default", "orders", "v1"), WorkloadKey("default", "users", "v1"),
        WorkloadKey("default", "users", "v2"), WorkloadKey("default", "users", "v3")]
    assert gateway_ports(bookinfo) == {"istio-ingressgateway": [80, 443]}
    assert credential_names(bookinfo) == {"api-cert": ["api.example.com"]}
    assert "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account" in (
        required_identities(bookinfo, local_workloads(bookinfo)))
    assert ports_needed(bookinfo) == 12 * (2 + 7) + 2


def test_run_locally_without_version_runs_every_declared_version() -> None:
    mesh = Mesh("t", namespace="shop")
    mesh.service("api", port=8080, versions=["v1", "v2"]).run_locally(
        command=["app", "{port}"])
    mesh.service("db", port=5432).run_locally(address="127.0.0.1:5432")
    spec = mesh.build()
    assert local_workloads(spec) == [WorkloadKey("shop", "api", "v1"),
                                     WorkloadKey("shop", "api", "v2"),
                                     WorkloadKey("shop", "db", "v1")]
    where = placement(spec)
    assert where.sidecars[WorkloadKey("shop", "db", "v1")].app.port == 5432


def test_unknown_workload_in_placement_is_an_error(bookinfo: MeshSpec) -> None:
    where = placement(bookinfo, workloads=[WorkloadKey("bookinfo", "details", "v1")])
    with pytest.raises(EnvoyCompileError, match="details"):
        compile_local(bookinfo, where)


def test_unknown_gateway_in_placement_is_an_error(bookinfo: MeshSpec) -> None:
    where = placement(bookinfo)
    where = LocalPlacement(sidecars=where.sidecars, gateways={"egress": GatewayPlacement({})})
    with pytest.raises(EnvoyCompileError, match="istio-ingressgateway"):
        compile_local(bookinfo, where)


def test_missing_certificate_is_an_error_that_says_how_to_fix(bookinfo: MeshSpec) -> None:
    where = placement(bookinfo)
    where = LocalPlacement(sidecars=where.sidecars, ca_cert=where.ca_cert)
    with pytest.raises(EnvoyCompileError, match="required_identities"):
        compile_local(bookinfo, where)


def test_source_labels_decide_routes_per_caller() -> None:
    mesh = Mesh("t", namespace="shop")
    api = mesh.service("api", port=8080, versions=["v1", "v2"])
    mesh.service("web", port=9080).deploy("v1", image="w")
    mesh.service("batch", port=9080).deploy("v1", image="b")
    api.route(match=Caller(labels={"app": "web"}), to=api.v2)
    api.route(to=api.v1)
    out = proxies(mesh.build())
    table = "outbound|8080||api.shop.svc.cluster.local"
    assert [r["route"]["cluster"].split("|")[2] for r in routes_of(out["web-v1.shop"],
                                                                   table)] == ["v2", "v1"]
    assert [r["route"]["cluster"].split("|")[2] for r in routes_of(out["batch-v1.shop"],
                                                                   table)] == ["v1"]

"""Ambient namespaces on the local mesh: an L4 proxy per workload, a waypoint per namespace
applying routes and authorization, mTLS on both hops, and who reaches whom through what."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from meshdsl.compile.envoy import (
    EnvoyCompileError,
    ProxyConfig,
    ProxyKind,
    WaypointKey,
    compile_local,
    required_identities,
    waypoint_targets,
)
from meshdsl.model import Header, Mesh, Retries, To
from meshdsl.model.spec import MeshSpec
from tests.unit.compile.envoy.conftest import hcm, placement, proxies, routes_of

REVIEWS = "reviews.shop.svc.cluster.local"
WAYPOINT = "spiffe://cluster.local/ns/shop/sa/waypoint"
HCM = "envoy.filters.network.http_connection_manager"


def shop(*, authz: bool = True, l4_only: bool = False) -> MeshSpec:
    """``shop`` ambient (reviews v1/v2 with routes, a client), ``web`` with sidecars."""
    mesh = Mesh("amb", namespace="shop")
    ns = mesh.namespace("shop", mode="ambient", waypoint=None if l4_only else "waypoint")
    reviews = ns.service("reviews", port=9080, versions=["v1", "v2"])
    reviews.run_locally(command=["app"])
    reviews.route(match=Header("end-user", exact="jason"), to=reviews.v2,
                  retries=Retries(attempts=4, retry_on="503"))
    reviews.route(to={reviews.v1: 80, reviews.v2: 20}, timeout="2s")
    client = ns.service("client", port=8080)
    client.deploy("v1", image="none")
    web = mesh.namespace("web").service("web", port=8080)
    web.deploy("v1", image="none")
    if authz:
        reviews.allow(client, methods=["GET"])
        ns.authorization("no-admin", action="DENY").rule(to=To(paths=["/admin*"]))
    return mesh.build()


def filters_of(listener: dict[str, Any]) -> list[str]:
    return [f["name"] for chain in listener["filter_chains"] for f in chain["filters"]]


def rbac_actions(listener: dict[str, Any]) -> list[tuple[str, list[str]]]:
    out = []
    for f in hcm(listener)["http_filters"]:
        if f["name"] == "envoy.filters.http.rbac":
            rules = f["typed_config"]["rules"]
            out.append((rules["action"], sorted(rules["policies"])))
    return out


def san(cluster: dict[str, Any]) -> str:
    context = cluster["transport_socket"]["typed_config"]["common_tls_context"]
    return str(context["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]
               ["exact"])


def cert(cluster: dict[str, Any]) -> str:
    context = cluster["transport_socket"]["typed_config"]["common_tls_context"]
    return str(context["tls_certificates"][0]["certificate_chain"]["filename"])


def test_each_ambient_workload_gets_an_l4_proxy_and_the_namespace_one_waypoint() -> None:
    out = proxies(shop())
    assert {pid: p.kind for pid, p in out.items()} == {
        "client-v1.shop": ProxyKind.ZTUNNEL, "reviews-v1.shop": ProxyKind.ZTUNNEL,
        "reviews-v2.shop": ProxyKind.ZTUNNEL, "waypoint.shop": ProxyKind.WAYPOINT,
        "web-v1.web": ProxyKind.SIDECAR}
    assert out["waypoint.shop"].principal == WAYPOINT
    assert out["waypoint.shop"].waypoint == WaypointKey("shop", "waypoint")
    assert WAYPOINT in required_identities(shop(), [])
    no_waypoint = proxies(shop(authz=False, l4_only=True))
    assert not any(p.kind is ProxyKind.WAYPOINT for p in no_waypoint.values())


def test_the_waypoint_listens_for_every_service_port_whole_and_per_subset() -> None:
    assert waypoint_targets(shop()) == {WaypointKey("shop", "waypoint"): [
        ("client", 8080, ""), ("reviews", 9080, ""), ("reviews", 9080, "v1"),
        ("reviews", 9080, "v2")]}
    names = [ls["name"] for ls in proxies(shop())["waypoint.shop"].listeners]
    assert names == sorted(["inbound-vip|8080||client.shop.svc.cluster.local",
                            f"inbound-vip|9080||{REVIEWS}", f"inbound-vip|9080|v1|{REVIEWS}",
                            f"inbound-vip|9080|v2|{REVIEWS}"])


def test_an_l4_proxy_has_no_http_and_sends_its_calls_to_the_waypoint_over_mtls() -> None:
    out = proxies(shop())
    client = out["client-v1.shop"]
    assert client.routes == [] and not any(HCM in filters_of(ls) for ls in client.listeners)
    listener = client.listener(f"outbound|9080||{REVIEWS}")
    (proxy,) = [f["typed_config"] for f in listener["filter_chains"][0]["filters"]]
    assert proxy["cluster"] == f"outbound|9080||{REVIEWS}"
    cluster = client.cluster(f"outbound|9080||{REVIEWS}")
    port = placement(shop()).waypoints[WaypointKey("shop", "waypoint")].listeners[
        ("reviews", 9080, "")]
    (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert endpoint["endpoint"]["address"]["socket_address"]["port_value"] == port
    assert san(cluster) == WAYPOINT  # only the waypoint may answer
    assert cert(cluster) == "/pki/cluster.local_ns_shop_sa_client.crt"  # as the workload


def test_the_waypoint_routes_with_the_services_routes_to_its_own_clusters() -> None:
    wp = proxies(shop())["waypoint.shop"]
    jason, split = routes_of(wp, f"inbound-vip|9080||{REVIEWS}")
    assert jason["route"]["cluster"] == f"inbound-vip|9080|v2|{REVIEWS}"
    assert jason["route"]["retry_policy"]["num_retries"] == 4
    assert split["route"]["weighted_clusters"]["clusters"] == [
        {"name": f"inbound-vip|9080|v1|{REVIEWS}", "weight": 80},
        {"name": f"inbound-vip|9080|v2|{REVIEWS}", "weight": 20}]
    assert split["route"]["timeout"] == "2s"
    (subset,) = routes_of(wp, f"inbound-vip|9080|v1|{REVIEWS}")
    assert subset["route"]["cluster"] == f"inbound-vip|9080|v1|{REVIEWS}"
    v2 = wp.cluster(f"inbound-vip|9080|v2|{REVIEWS}")
    workload = placement(shop()).sidecars
    (endpoint,) = v2["load_assignment"]["endpoints"][0]["lb_endpoints"]
    (key,) = [k for k in workload if k.proxy_id == "reviews-v2.shop"]
    assert endpoint["endpoint"]["address"]["socket_address"]["port_value"] == \
        workload[key].inbound.port
    assert v2["alt_stat_name"] == f"inbound-vip|9080|v2|{REVIEWS.replace('.', '_')}"
    with pytest.raises(KeyError):
        wp.cluster(f"outbound|9080|v2|{REVIEWS}")  # never through itself


def test_canary_weights_land_on_the_waypoint() -> None:
    spec = shop()
    out = compile_local(spec, placement(spec), weights={("shop", "reviews"): {"v1": 50,
                                                                              "v2": 50}})
    split = routes_of(out["waypoint.shop"], f"inbound-vip|9080||{REVIEWS}")[-1]
    assert [c["weight"] for c in split["route"]["weighted_clusters"]["clusters"]] == [50, 50]


def test_the_waypoint_requires_mtls_and_forwards_the_callers_identity() -> None:
    listener = proxies(shop())["waypoint.shop"].listener(f"inbound-vip|9080||{REVIEWS}")
    (chain,) = listener["filter_chains"]
    context = chain["transport_socket"]["typed_config"]
    assert context["require_client_certificate"] is True
    assert hcm(listener)["forward_client_cert_details"] == "APPEND_FORWARD"
    plain = proxies(shop(), pki=False)["waypoint.shop"].listener(f"inbound-vip|9080||{REVIEWS}")
    assert [c["name"] for c in plain["filter_chains"]] == ["plaintext"]


def test_policies_attach_as_targetrefs_say() -> None:
    """``reviews.allow`` targets the Service reviews: its whole listener; the namespace-wide
    DENY targets the waypoint: every listener; the subset listeners stand for the version
    Services, which no service policy targets."""
    wp = proxies(shop())["waypoint.shop"]
    reviews = wp.listener(f"inbound-vip|9080||{REVIEWS}")
    assert rbac_actions(reviews) == [("DENY", ["ns[shop]-policy[no-admin]-rule[0]"]),
                                     ("ALLOW", ["ns[shop]-policy[reviews]-rule[0]"])]
    assert rbac_actions(wp.listener(f"inbound-vip|9080|v2|{REVIEWS}")) == [
        ("DENY", ["ns[shop]-policy[no-admin]-rule[0]"])]
    assert rbac_actions(wp.listener("inbound-vip|8080||client.shop.svc.cluster.local")) == [
        ("DENY", ["ns[shop]-policy[no-admin]-rule[0]"])]


def test_workloads_admit_only_the_waypoint_when_the_namespace_has_authorization() -> None:
    inbound = f"inbound-l4|9080|v1|{REVIEWS}"
    guarded = proxies(shop())["reviews-v1.shop"].listener(inbound)
    # PERMISSIVE (no PeerAuthentication): an mTLS and a plaintext chain, both guarded
    assert [c["name"] for c in guarded["filter_chains"]] == ["mtls", "plaintext"]
    for chain in guarded["filter_chains"]:
        first = chain["filters"][0]
        assert first["name"] == "envoy.filters.network.rbac"
        (policy,) = first["typed_config"]["rules"]["policies"].values()
        assert policy["principals"] == [{"authenticated": {"principal_name": {
            "exact": WAYPOINT}}}]
    open_ = proxies(shop(authz=False))["reviews-v1.shop"].listener(inbound)
    assert "envoy.filters.network.rbac" not in filters_of(open_)


def test_a_sidecar_caller_leaves_routing_to_the_waypoint() -> None:
    web = proxies(shop())["web-v1.web"]
    (route,) = routes_of(web, f"outbound|9080||{REVIEWS}")
    assert route["route"]["cluster"] == f"outbound|9080||{REVIEWS}"
    assert san(web.cluster(f"outbound|9080||{REVIEWS}")) == WAYPOINT
    assert san(web.cluster(f"outbound|9080|v2|{REVIEWS}")) == WAYPOINT


def test_without_a_waypoint_callers_reach_the_workloads_at_l4() -> None:
    out = proxies(shop(authz=False, l4_only=True))
    cluster = out["client-v1.shop"].cluster(f"outbound|9080||{REVIEWS}")
    assert len(cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]) == 2
    assert any("routes do not apply" in n for n in out["client-v1.shop"].notes)
    web = out["web-v1.web"]  # a sidecar applies the routes itself, as without ambient
    assert len(routes_of(web, f"outbound|9080||{REVIEWS}")) == 2


def test_a_placement_without_the_waypoint_is_refused() -> None:
    spec = shop()
    where = replace(placement(spec), waypoints={})
    with pytest.raises(EnvoyCompileError, match="runs no such waypoint"):
        compile_local(spec, where)


def test_compiled_output_is_deterministic() -> None:
    def dump(out: dict[str, ProxyConfig]) -> list[Any]:
        return [[p.listeners, p.clusters, p.routes, p.notes] for p in out.values()]
    assert dump(proxies(shop())) == dump(proxies(shop()))

"""Table-driven checks of the Gateway API translation, one concept at a time."""

from __future__ import annotations

from typing import Any

import pytest

from meshdsl import (
    Cors,
    Header,
    L4Match,
    Mesh,
    Query,
    Redirect,
    Rewrite,
    ServicePort,
    StringMatch,
    To,
    Uri,
)
from meshdsl.compile import compile_mesh
from meshdsl.compile.gateway_api.matches import grpc_method, http_match
from meshdsl.compile.gateway_api.refs import duration


@pytest.mark.parametrize(("given", "expected"), [
    ("10s", "10s"), ("1.5s", "1500ms"), ("250ms", "250ms"), ("1m30s", "1m30s"),
    ("0.25ms", "1ms"), ("100us", "1ms"), ("3600.5s", "3601s"), ("2h", "2h"),
])
def test_durations_fit_the_gateway_api_syntax(given: str, expected: str) -> None:
    assert duration(given) == expected


@pytest.mark.parametrize(("match", "expected"), [
    (Uri(prefix="/api"), {"path": {"type": "PathPrefix", "value": "/api"}}),
    (Uri(exact="/a"), {"path": {"type": "Exact", "value": "/a"}}),
    (Uri(regex="/a.*"), {"path": {"type": "RegularExpression", "value": "/a.*"}}),
    (Header("X-User", prefix="ja.") & Query("q", exact="1"),
     {"headers": [{"name": "x-user", "type": "RegularExpression", "value": "^ja\\..*"}],
      "queryParams": [{"name": "q", "value": "1"}]}),
])
def test_matches(match: Any, expected: dict[str, Any]) -> None:
    assert http_match(match) == expected


@pytest.mark.parametrize(("uri", "expected"), [
    (StringMatch(exact="/shop.Cart/Add"), {"service": "shop.Cart", "method": "Add"}),
    (StringMatch(prefix="/shop.Cart/"), {"service": "shop.Cart"}),
    (StringMatch(prefix="/shop"), None),
    (StringMatch(exact="/shop.Cart/"), None),
    (StringMatch(regex="/x"), None),
])
def test_grpc_methods(uri: StringMatch, expected: dict[str, str] | None) -> None:
    assert grpc_method(uri) == expected


def _one(mesh: Mesh, kind: str, name: str) -> dict[str, Any]:
    (found,) = [m for m in compile_mesh(mesh.build())
                if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def test_rewrite_redirect_and_cors_filters() -> None:
    mesh = Mesh("t", mode="ambient")
    r = mesh.service("r", port=80)
    r.route(match=Uri(prefix="/old"), rewrite=Rewrite(uri="/new", authority="r2"), to=r)
    r.route(match=Uri(exact="/x"), rewrite=Rewrite(uri="/y"), to=r)
    r.route(match=Uri(exact="/go"), redirect=Redirect(scheme="https", redirect_code=308))
    r.route(to=r, cors=Cors(allow_origins=[StringMatch(exact="https://a.example")],
                            allow_methods=["GET"], max_age="1h"))
    rules = _one(mesh, "HTTPRoute", "r")["spec"]["rules"]
    assert rules[0]["filters"] == [{"type": "URLRewrite", "urlRewrite": {
        "hostname": "r2", "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}}}]
    assert rules[1]["filters"][0]["urlRewrite"]["path"] == {
        "type": "ReplaceFullPath", "replaceFullPath": "/y"}
    assert rules[2]["filters"] == [{"type": "RequestRedirect", "requestRedirect": {
        "scheme": "https", "statusCode": 308}}]
    assert "backendRefs" not in rules[2]
    assert rules[3]["filters"] == [{"type": "CORS", "cors": {
        "allowOrigins": ["https://a.example"], "allowMethods": ["GET"], "maxAge": 3600}}]


def test_tcp_routes_attach_to_the_matched_port() -> None:
    mesh = Mesh("t", mode="ambient")
    db = mesh.service("db", port=[ServicePort(number=5432, name="tcp-pg"),
                                  ServicePort(number=5433, name="tcp-replica")])
    db.tcp_route(to=db.on(5432), match=L4Match(port=5432))
    db.tcp_route(to=db.on(5433), port=5433)
    first, second = _one(mesh, "TCPRoute", "db"), _one(mesh, "TCPRoute", "db-1")
    assert first["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "db",
                                            "port": 5432}]
    assert second["spec"]["rules"] == [{"backendRefs": [{"name": "db", "port": 5433}]}]


def test_an_ingress_gateway_with_https_and_a_redirect() -> None:
    mesh = Mesh("t")
    edge = mesh.namespace("edge", mode="ambient", waypoint=None)
    shop = mesh.namespace("shop", mode="ambient")
    web = shop.service("web", port=8080)
    gw = edge.gateway("gw").http("a.example", https_redirect=True).https(
        "a.example", "*", credential="a-cert")
    gw.routes("web", namespace="shop", hosts=["a.example"]).route(to=web)
    gateway = _one(mesh, "Gateway", "gw")["spec"]
    assert gateway["gatewayClassName"] == "istio"
    assert [(listener["name"], listener.get("hostname"), listener["protocol"])
            for listener in gateway["listeners"]] == [
        ("http", "a.example", "HTTP"), ("https", "a.example", "HTTPS"), ("https-1", None, "HTTPS")]
    assert gateway["listeners"][1]["tls"] == {"mode": "Terminate", "certificateRefs": [
        {"group": "", "kind": "Secret", "name": "a-cert"}]}
    assert all(listener["allowedRoutes"] == {"namespaces": {"from": "All"}}
               for listener in gateway["listeners"])
    redirect = _one(mesh, "HTTPRoute", "gw-https-redirect")["spec"]
    assert redirect["parentRefs"][0]["sectionName"] == "http"
    route = _one(mesh, "HTTPRoute", "web")["spec"]
    assert route["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                    "name": "gw", "namespace": "edge"}]
    assert route["hostnames"] == ["a.example"]


def test_a_mixed_mesh_keeps_its_sidecar_namespaces_classic() -> None:
    mesh = Mesh("t")
    classic = mesh.namespace("classic").service("c", port=80, versions=["v1"])
    classic.route(to=classic.v1)
    amb = mesh.namespace("amb", mode="ambient").service("a", port=80, versions=["v1"])
    amb.route(to=amb.v1)
    amb.allow(classic)
    kinds = {(m["kind"], m["metadata"].get("namespace", m["metadata"]["name"]))
             for m in compile_mesh(mesh.build())}
    assert ("VirtualService", "classic") in kinds and ("DestinationRule", "classic") in kinds
    assert ("HTTPRoute", "amb") in kinds and ("VirtualService", "amb") not in kinds
    policy = _one(mesh, "AuthorizationPolicy", "a")["spec"]
    assert policy["rules"][0]["from"][0]["source"]["principals"] == [
        "cluster.local/ns/classic/sa/c"]


def test_a_route_in_mesh_and_at_a_gateway_keeps_its_outside_hosts_as_hostnames() -> None:
    mesh = Mesh("t")
    edge = mesh.namespace("edge", mode="ambient", waypoint=None)
    shop = mesh.namespace("shop", mode="ambient")
    web = shop.service("web", port=80)
    gw = edge.gateway("gw").http("web.example.com")
    shop.routes("web", hosts=["web", "web.example.com"], gateways=["mesh", gw]).route(to=web)
    route = _one(mesh, "HTTPRoute", "web")["spec"]
    assert route["parentRefs"] == [
        {"group": "", "kind": "Service", "name": "web"},
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw",
         "namespace": "edge"}]
    assert route["hostnames"] == ["web.example.com"]  # "web" is the Service parent


@pytest.mark.parametrize(("selector", "expected"), [
    ({"app": "web"}, {"group": "", "kind": "Service", "name": "web"}),
    ({}, {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "waypoint"}),
    ({"gateway.networking.k8s.io/gateway-name": "gw"},
     {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}),
    ({"gateway.networking.k8s.io/gateway-name": "elsewhere"}, None),
    ({"app": "web", "version": "v1"}, None),
])
def test_authorization_attaches_to_what_it_selects(selector: dict[str, str],
                                                    expected: dict[str, str] | None) -> None:
    mesh = Mesh("t")
    shop = mesh.namespace("shop", mode="ambient")
    shop.service("web", port=80)
    shop.gateway("gw").http("web.example.com")
    shop.authorization("p", action="DENY", selector=selector)
    spec = _one(mesh, "AuthorizationPolicy", "p")["spec"]
    assert spec.get("targetRefs") == ([expected] if expected else None)
    assert ("selector" in spec) == (expected is None)


def test_a_gateways_own_policy_is_declared_on_the_gateway() -> None:
    mesh = Mesh("t")
    edge = mesh.namespace("edge", mode="ambient", waypoint=None)
    gw = edge.gateway("front").http("shop.example.com")
    gw.authorization(action="DENY").rule(to=To(paths=["/internal*"]))
    spec = _one(mesh, "AuthorizationPolicy", "front")["spec"]
    assert spec["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                   "name": "front"}]
    classic = Mesh("t")
    classic.namespace("edge").gateway("front").http("shop.example.com").authorization()
    selector = _one(classic, "AuthorizationPolicy", "front")["spec"]["selector"]
    assert selector == {"matchLabels": {"gateway.networking.k8s.io/gateway-name": "front"}}

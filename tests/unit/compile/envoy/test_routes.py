"""Route tables of a caller's sidecar for one service, for each VirtualService feature."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from meshdsl.model import (
    Abort,
    ConsistentHash,
    Cors,
    Delay,
    Fault,
    HeaderOps,
    Headers,
    HttpCookie,
    LoadBalancer,
    Mesh,
    Redirect,
    Retries,
    Rewrite,
    Service,
    StringMatch,
    Uri,
)
from tests.unit.compile.envoy.conftest import proxies, routes_of

API = "api.shop.svc.cluster.local"
V1 = f"outbound|8080|v1|{API}"
V2 = f"outbound|8080|v2|{API}"
TABLE = f"outbound|8080||{API}"
FAULT = "envoy.filters.http.fault"
CORS = "envoy.filters.http.cors"

Build = Callable[[Service, Service], dict[str, Any]]


def compiled(build: Build | None, *, policy: LoadBalancer | None = None,
             **compile_kwargs: Any) -> list[dict[str, Any]]:
    """The routes ``web-v1`` has for ``api`` after ``api.route(**build(api, shadow))``."""
    mesh = Mesh("t", namespace="shop")
    mesh.service("web", port=9080).deploy("v1", image="web")
    api = mesh.service("api", port=8080, versions=["v1", "v2"])
    api.deploy("v1", image="api").deploy("v2", image="api")
    shadow = mesh.service("shadow", port=8080)
    if policy is not None:
        api.policy(load_balancer=policy)
    if build is not None:
        api.route(**build(api, shadow))
    return routes_of(proxies(mesh.build(), **compile_kwargs)["web-v1.shop"], TABLE)


def action(build: Build, **kwargs: Any) -> dict[str, Any]:
    routes = compiled(build, **kwargs)
    assert len(routes) == 1
    return routes[0]


def test_without_a_virtual_service_all_endpoints_with_istio_defaults() -> None:
    (route,) = compiled(None)
    assert route["match"] == {"prefix": "/"}
    assert route["route"]["cluster"] == TABLE
    assert route["route"]["timeout"] == "0s"
    assert route["route"]["retry_policy"]["num_retries"] == 2
    assert route["route"]["retry_policy"]["retriable_status_codes"] == [503]


@pytest.mark.parametrize(("build", "expected"), [
    (lambda a, s: {"to": a.v2}, {"cluster": V2}),
    (lambda a, s: {"to": {a.v1: 90, a.v2: 10}},
     {"weighted_clusters": {"clusters": [{"name": V1, "weight": 90},
                                         {"name": V2, "weight": 10}]}}),
    (lambda a, s: {"to": {a.v1: 100, a.v2: 0}}, {"cluster": V1}),
    (lambda a, s: {"to": {a.v1: 0, a.v2: 0}},
     {"weighted_clusters": {"clusters": [{"name": V1, "weight": 1},
                                         {"name": V2, "weight": 1}]}}),
    (lambda a, s: {"to": a}, {"cluster": TABLE}),
])
def test_destinations(build: Build, expected: dict[str, Any]) -> None:
    route = action(build)["route"]
    destination = {k: v for k, v in route.items() if k in ("cluster", "weighted_clusters")}
    assert destination == expected


def test_canary_weights_replace_the_catch_all_split() -> None:
    routes = compiled(lambda a, s: {"to": {a.v1: 90, a.v2: 10}},
                      weights={("shop", "api"): {"v1": 40, "v2": 60}})
    assert routes[0]["route"]["weighted_clusters"]["clusters"] == [
        {"name": V1, "weight": 40}, {"name": V2, "weight": 60}]


@pytest.mark.parametrize(("retries", "expected"), [
    (Retries(attempts=3, per_try_timeout="2s"),
     {"num_retries": 3, "per_try_timeout": "2s", "retriable_status_codes": [503]}),
    (Retries(attempts=1, retry_on="5xx,gateway-error"),
     {"num_retries": 1, "retry_on": "5xx,gateway-error"}),
    (Retries(attempts=2, retry_on="connect-failure,502,504"),
     {"retry_on": "connect-failure,retriable-status-codes",
      "retriable_status_codes": [502, 504]}),
])
def test_retries(retries: Retries, expected: dict[str, Any]) -> None:
    policy = action(lambda a, s: {"to": a.v1, "retries": retries})["route"]["retry_policy"]
    assert {k: policy.get(k) for k in expected} == expected


def test_zero_attempts_disable_retries_and_timeout_is_set() -> None:
    route = action(lambda a, s: {"to": a.v1, "retries": Retries(attempts=0),
                                 "timeout": "1.5s"})["route"]
    assert "retry_policy" not in route
    assert route["timeout"] == "1.5s"


@pytest.mark.parametrize(("fault", "expected"), [
    (Fault(abort=Abort(status=418)),
     {"abort": {"http_status": 418,
                "percentage": {"numerator": 1_000_000, "denominator": "MILLION"}}}),
    (Fault(delay=Delay(fixed="250ms", percent=10)),
     {"delay": {"fixed_delay": "0.25s",
                "percentage": {"numerator": 100_000, "denominator": "MILLION"}}}),
])
def test_faults_configure_the_fault_filter_per_route(fault: Fault,
                                                     expected: dict[str, Any]) -> None:
    config = action(lambda a, s: {"to": a.v1, "fault": fault})["typed_per_filter_config"]
    assert config[FAULT] == {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
        **expected}


def test_mirror_with_percentage() -> None:
    route = action(lambda a, s: {"to": a.v1, "mirror": s, "mirror_percent": 25})["route"]
    assert route["request_mirror_policies"] == [{
        "cluster": "outbound|8080||shadow.shop.svc.cluster.local",
        "runtime_fraction": {"default_value": {"numerator": 250_000,
                                               "denominator": "MILLION"}}}]


def test_rewrite() -> None:
    route = action(lambda a, s: {"to": a.v1, "match": Uri(prefix="/old"),
                                 "rewrite": Rewrite(uri="/new", authority="api.internal")})
    assert route["route"]["prefix_rewrite"] == "/new"
    assert route["route"]["host_rewrite_literal"] == "api.internal"


@pytest.mark.parametrize(("redirect", "expected"), [
    (Redirect(uri="/v2/login"), {"path_redirect": "/v2/login"}),
    (Redirect(authority="new.example.com", scheme="https", port=8443, redirect_code=308),
     {"host_redirect": "new.example.com", "scheme_redirect": "https", "port_redirect": 8443,
      "response_code": "PERMANENT_REDIRECT"}),
    (Redirect(uri="/x", redirect_code=302), {"path_redirect": "/x", "response_code": "FOUND"}),
])
def test_redirects_have_no_destination(redirect: Redirect, expected: dict[str, Any]) -> None:
    route = action(lambda a, s: {"redirect": redirect})
    assert route["redirect"] == expected
    assert "route" not in route


def test_header_operations() -> None:
    headers = Headers(request=HeaderOps(set={"x-env": "local"}, add={"x-trace": "1"},
                                        remove=["x-debug"]),
                      response=HeaderOps(remove=["server"]))
    route = action(lambda a, s: {"to": a.v1, "headers": headers})
    assert route["request_headers_to_add"] == [
        {"header": {"key": "x-env", "value": "local"},
         "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
        {"header": {"key": "x-trace", "value": "1"}, "append_action": "APPEND_IF_EXISTS_OR_ADD"}]
    assert route["request_headers_to_remove"] == ["x-debug"]
    assert route["response_headers_to_remove"] == ["server"]


def test_cors_policy_per_route() -> None:
    cors = Cors(allow_origins=[StringMatch(exact="https://a.example"),
                               StringMatch(regex="https://.*\\.b\\.example")],
                allow_methods=["GET", "POST"], allow_headers=["x-token"], max_age="24h",
                allow_credentials=True)
    config = action(lambda a, s: {"to": a.v1, "cors": cors})["typed_per_filter_config"][CORS]
    assert config["allow_origin_string_match"] == [
        {"exact": "https://a.example"}, {"safe_regex": {"regex": "https://.*\\.b\\.example"}}]
    assert config["allow_methods"] == "GET,POST"
    assert config["max_age"] == "86400"
    assert config["allow_credentials"] is True


def test_each_istio_match_is_one_envoy_route_with_the_same_action() -> None:
    routes = compiled(lambda a, s: {"to": a.v2, "match": [Uri(prefix="/a"), Uri(exact="/b")],
                                    "name": "ab"})
    assert [r["match"] for r in routes] == [{"prefix": "/a"}, {"path": "/b"}]
    assert {r["name"] for r in routes} == {"ab"}
    assert routes[0]["route"] == routes[1]["route"]


@pytest.mark.parametrize(("lb", "expected"), [
    (LoadBalancer(consistent_hash=ConsistentHash(http_cookie=HttpCookie(name="s", ttl="1h"))),
     [{"cookie": {"name": "s", "ttl": "3600s"}}]),
    (LoadBalancer(consistent_hash=ConsistentHash(http_header_name="x-user")),
     [{"header": {"header_name": "x-user"}}]),
    (LoadBalancer(consistent_hash=ConsistentHash(use_source_ip=True)),
     [{"connection_properties": {"source_ip": True}}]),
    (LoadBalancer(consistent_hash=ConsistentHash(http_query_parameter_name="u")),
     [{"query_parameter": {"name": "u"}}]),
    (LoadBalancer(simple="RANDOM"), None),
])
def test_consistent_hash_puts_the_key_on_the_route(lb: LoadBalancer,
                                                   expected: list[Any] | None) -> None:
    route = action(lambda a, s: {"to": {a.v1: 50, a.v2: 50}}, policy=lb)["route"]
    assert route.get("hash_policy") == expected


def test_destination_outside_the_mesh_gets_an_empty_cluster_and_a_note() -> None:
    mesh = Mesh("t", namespace="shop")
    mesh.service("web", port=9080).deploy("v1", image="web")
    api = mesh.service("api", port=8080)
    api.route(to="payments.example.com")
    proxy = proxies(mesh.build())["web-v1.shop"]
    (route,) = routes_of(proxy, TABLE)
    assert route["route"]["cluster"] == "outbound|80||payments.example.com"
    assert "endpoints" not in proxy.cluster("outbound|80||payments.example.com")[
        "load_assignment"]
    assert any("payments.example.com" in note for note in proxy.notes)

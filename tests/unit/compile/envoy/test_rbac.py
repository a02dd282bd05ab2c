"""AuthorizationPolicy → RBAC filters on a workload's inbound listener."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from meshdsl.compile.envoy import ProxyConfig, compile_local
from meshdsl.model import From, Mesh, Service, To, When
from tests.unit.compile.envoy.conftest import hcm, placement, proxies

RBAC = "envoy.filters.http.rbac"
INBOUND = "inbound|8080|v1|api.shop.svc.cluster.local"
ORDERS = {"authenticated": {"principal_name": {
    "exact": "spiffe://cluster.local/ns/shop/sa/orders"}}}
ANY = {"any": True}

Declare = Callable[[Mesh, Service, Service], object]


def compiled(declare: Declare) -> ProxyConfig:
    mesh = Mesh("t", namespace="shop")
    api = mesh.service("api", port=8080)
    api.deploy("v1", image="api")
    orders = mesh.service("orders", port=8080)
    declare(mesh, api, orders)
    return proxies(mesh.build())["api-v1.shop"]


def rbac_filters(proxy: ProxyConfig) -> list[dict[str, Any]]:
    return [f["typed_config"]["rules"] for f in hcm(proxy.listener(INBOUND))["http_filters"]
            if f["name"] == RBAC]


def only_policy(proxy: ProxyConfig) -> dict[str, Any]:
    (rules,) = rbac_filters(proxy)
    (policy,) = rules["policies"].values()
    return dict(policy)


def test_no_policy_no_filter() -> None:
    assert rbac_filters(compiled(lambda m, a, o: None)) == []


def test_allow_named_service_by_spiffe_identity() -> None:
    proxy = compiled(lambda m, a, o: a.allow(o))
    (rules,) = rbac_filters(proxy)
    assert rules["action"] == "ALLOW"
    assert rules["policies"] == {"ns[shop]-policy[api]-rule[0]": {
        "permissions": [ANY], "principals": [ORDERS]}}


def test_filter_order_is_deny_then_allow_then_rate_limit() -> None:
    def declare(m: Mesh, a: Service, o: Service) -> None:
        a.allow(o)
        a.authorization("no-admin", action="DENY").rule(to=To(paths=["/admin*"]))
        a.rate_limit(max_tokens=5)

    names = [f["name"] for f in hcm(compiled(declare).listener(INBOUND))["http_filters"]]
    assert names == [RBAC, RBAC, "envoy.filters.http.local_ratelimit",
                     "envoy.filters.http.router"]
    deny, allow = rbac_filters(compiled(declare))
    assert (deny["action"], allow["action"]) == ("DENY", "ALLOW")


@pytest.mark.parametrize(("source", "expected"), [
    (From(principals=["cluster.local/ns/shop/sa/orders"]), ORDERS),
    (From(principals=["*"]),
     {"authenticated": {"principal_name": {"safe_regex": {"regex": ".+"}}}}),
    (From(principals=["cluster.local/ns/shop/*"]),
     {"authenticated": {"principal_name": {"prefix": "spiffe://cluster.local/ns/shop/"}}}),
    (From(namespaces=["shop"]),
     {"authenticated": {"principal_name": {"safe_regex": {"regex": ".*/ns/shop/.*"}}}}),
    (From(not_principals=["cluster.local/ns/shop/sa/orders"]), {"not_id": ORDERS}),
    (From(ip_blocks=["10.0.0.0/8"]),
     {"direct_remote_ip": {"address_prefix": "10.0.0.0", "prefix_len": 8}}),
    (From(remote_ip_blocks=["192.168.1.7"]),
     {"remote_ip": {"address_prefix": "192.168.1.7", "prefix_len": 32}}),
    (From(principals=["a/ns/x/sa/y"], namespaces=["shop"]),
     {"and_ids": {"ids": [
         {"authenticated": {"principal_name": {"exact": "spiffe://a/ns/x/sa/y"}}},
         {"authenticated": {"principal_name": {"safe_regex": {"regex": ".*/ns/shop/.*"}}}}]}}),
])
def test_sources(source: From, expected: dict[str, Any]) -> None:
    policy = only_policy(compiled(lambda m, a, o: a.authorization().rule(from_=source)))
    assert policy["principals"] == [expected]


@pytest.mark.parametrize(("operation", "expected"), [
    (To(methods=["GET"]), {"header": {"name": ":method", "string_match": {"exact": "GET"}}}),
    (To(paths=["/users/*"]), {"url_path": {"path": {"prefix": "/users/"}}}),
    (To(paths=["*/info"]), {"url_path": {"path": {"suffix": "/info"}}}),
    (To(paths=["/exact"]), {"url_path": {"path": {"exact": "/exact"}}}),
    (To(not_methods=["DELETE"]),
     {"not_rule": {"header": {"name": ":method", "string_match": {"exact": "DELETE"}}}}),
    (To(hosts=["api.example.com"]),
     {"header": {"name": ":authority",
                 "string_match": {"exact": "api.example.com", "ignore_case": True}}}),
    (To(ports=[8080]), {"destination_port": "LISTENER"}),
    (To(ports=[9999]), {"not_rule": {"any": True}}),
    (To(methods=["GET", "HEAD"]), {"or_rules": {"rules": [
        {"header": {"name": ":method", "string_match": {"exact": "GET"}}},
        {"header": {"name": ":method", "string_match": {"exact": "HEAD"}}}]}}),
])
def test_operations(operation: To, expected: dict[str, Any]) -> None:
    mesh = Mesh("t", namespace="shop")
    api = mesh.service("api", port=8080)
    api.deploy("v1", image="api")
    api.authorization().rule(to=operation)
    spec = mesh.build()
    where = placement(spec)
    proxy = compile_local(spec, where)["api-v1.shop"]
    if expected == {"destination_port": "LISTENER"}:
        expected = {"destination_port": next(iter(where.sidecars.values())).inbound.port}
    assert only_policy(proxy)["permissions"] == [expected]


@pytest.mark.parametrize(("when", "side", "expected"), [
    (When(key="request.headers[x-env]", values=["dev"]), "principals",
     {"header": {"name": "x-env", "string_match": {"exact": "dev"}}}),
    (When(key="source.namespace", values=["shop"]), "principals",
     {"authenticated": {"principal_name": {"safe_regex": {"regex": ".*/ns/shop/.*"}}}}),
    (When(key="source.principal", not_values=["cluster.local/ns/shop/sa/orders"]),
     "principals", {"not_id": ORDERS}),
    (When(key="connection.sni", values=["*.local"]), "permissions",
     {"requested_server_name": {"suffix": ".local"}}),
])
def test_conditions(when: When, side: str, expected: dict[str, Any]) -> None:
    policy = only_policy(compiled(lambda m, a, o: a.authorization().rule(when=when)))
    assert policy[side] == [expected]


def test_unsupported_allow_rule_never_matches_and_is_noted() -> None:
    proxy = compiled(lambda m, a, o: a.authorization().rule(
        when=When(key="request.auth.claims[iss]", values=["x"])))
    (rules,) = rbac_filters(proxy)
    assert rules == {"action": "ALLOW", "policies": {}}  # an empty ALLOW set denies all
    assert any("never matches" in note for note in proxy.notes)


def test_unsupported_deny_condition_is_dropped_so_the_rule_denies_more() -> None:
    proxy = compiled(lambda m, a, o: a.authorization("d", action="DENY").rule(
        to=To(paths=["/admin"]),
        when=When(key="request.auth.claims[iss]", values=["x"])))
    policy = only_policy(proxy)
    assert policy["permissions"] == [{"url_path": {"path": {"exact": "/admin"}}}]
    assert policy["principals"] == [ANY]


def test_allow_policy_without_rules_denies_everything() -> None:
    proxy = compiled(lambda m, a, o: a.authorization())
    assert rbac_filters(proxy) == [{"action": "ALLOW", "policies": {}}]


def test_custom_is_enforced_as_deny_and_audit_as_log() -> None:
    def declare(m: Mesh, a: Service, o: Service) -> None:
        a.authorization("ext", action="CUSTOM").rule(to=To(paths=["/x"]))
        a.authorization("audit", action="AUDIT").rule(to=To(paths=["/y"]))

    proxy = compiled(declare)
    assert [r["action"] for r in rbac_filters(proxy)] == ["DENY", "LOG"]
    assert any("CUSTOM" in note for note in proxy.notes)


def test_root_namespace_policies_apply_everywhere() -> None:
    def declare(m: Mesh, a: Service, o: Service) -> None:
        m.namespace("istio-system").authorization("mesh-deny", action="DENY").rule(
            from_=From(not_namespaces=["shop"]))

    (rules,) = rbac_filters(compiled(declare))
    assert rules["action"] == "DENY"
    assert list(rules["policies"]) == ["ns[istio-system]-policy[mesh-deny]-rule[0]"]

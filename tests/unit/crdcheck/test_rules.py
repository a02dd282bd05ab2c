"""The offline CRD check: one object a cluster rejects and one it accepts per rule family.

Each case is an object as a user writes it; the failing variant breaks exactly one schema
constraint or CEL rule of the bundled CRDs, and the check must name that field and the
rule's own message.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from meshdsl.crdcheck import Catalog, check, default_catalog
from meshdsl.crdcheck.rules import RuleError, compile_rules, escape, to_cel


def obj(api: str, kind: str, spec: dict[str, Any], name: str = "x") -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind,
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


NET = "networking.istio.io/v1"
SEC = "security.istio.io/v1"
GW = "gateway.networking.k8s.io/v1"

# (family, good object, path to break (list of keys), bad value, expected message part)
CASES: list[tuple[str, dict[str, Any], tuple[Any, ...], Any, str]] = [
    ("networking: VirtualService duration",
     obj(NET, "VirtualService", {"hosts": ["api"], "http": [
         {"route": [{"destination": {"host": "api"}}], "timeout": "5s"}]}),
     ("spec", "http", 0, "timeout"), "0s", "valid duration greater than 1ms"),
    ("networking: DestinationRule nested duration",
     obj(NET, "DestinationRule", {"host": "api", "trafficPolicy": {
         "outlierDetection": {"interval": "10s"}}}),
     ("spec", "trafficPolicy", "outlierDetection", "interval"), "0s",
     "valid duration greater than 1ms"),
    ("networking: ServiceEntry wildcard host",
     obj(NET, "ServiceEntry", {"hosts": ["api.example.com"], "ports": [
         {"number": 443, "name": "https", "protocol": "TLS"}], "resolution": "DNS"}),
     ("spec", "hosts", 0), "*", "hostname cannot be wildcard"),
    ("networking: ServiceEntry duplicate port",
     obj(NET, "ServiceEntry", {"hosts": ["db.example.com"], "ports": [
         {"number": 5432, "name": "pg", "protocol": "TCP"}], "resolution": "DNS"}),
     ("spec", "ports", 1), {"number": 5432, "name": "pg2", "protocol": "TCP"},
     "port number cannot be duplicated"),
    ("networking: WorkloadEntry UDS path",
     obj(NET, "WorkloadEntry", {"address": "unix:///var/run/app.sock"}),
     ("spec", "address"), "unix://relative.sock", "UDS must be an absolute path"),
    ("security: AuthorizationPolicy selector and targetRef",
     obj(SEC, "AuthorizationPolicy", {"selector": {"matchLabels": {"app": "api"}},
                                      "action": "ALLOW"}),
     ("spec", "targetRef"), {"kind": "Gateway", "group": "gateway.networking.k8s.io",
                             "name": "gw"}, "only one of targetRefs or selector"),
    ("security: PeerAuthentication port range",
     obj(SEC, "PeerAuthentication", {"selector": {"matchLabels": {"app": "api"}},
                                     "portLevelMtls": {"8080": {"mode": "DISABLE"}}}),
     ("spec", "portLevelMtls", "70000"), {"mode": "DISABLE"}, "port must be between 1-65535"),
    ("security: RequestAuthentication jwksUri scheme (Kubernetes url library)",
     obj(SEC, "RequestAuthentication", {"jwtRules": [
         {"issuer": "https://issuer.example.com", "jwksUri": "https://issuer.example.com/k"}]}),
     ("spec", "jwtRules", 0, "jwksUri"), "ftp://issuer.example.com/keys",
     "url must have scheme http:// or https://"),
    ("security: wildcard label value",
     obj(SEC, "AuthorizationPolicy", {"selector": {"matchLabels": {"app": "api"}}}),
     ("spec", "selector", "matchLabels", "app"), "api-*", "wildcard not allowed"),
    ("telemetry: Telemetry reporting interval",
     obj("telemetry.istio.io/v1", "Telemetry", {"metrics": [
         {"providers": [{"name": "prometheus"}], "reportingInterval": "10s"}]}),
     ("spec", "metrics", 0, "reportingInterval"), "0s", "valid duration greater than 1ms"),
    ("telemetry: tag override UPSERT without value",
     obj("telemetry.istio.io/v1", "Telemetry", {"metrics": [{"overrides": [
         {"tagOverrides": {"team": {"operation": "UPSERT", "value": "'shop'"}}}]}]}),
     ("spec", "metrics", 0, "overrides", 0, "tagOverrides", "team", "value"), "",
     "value must be set when operation is UPSERT"),
    ("gateway api: HTTPRoute parentRefs unique (defaults, __namespace__)",
     obj(GW, "HTTPRoute", {"parentRefs": [{"name": "gw", "sectionName": "http"},
                                          {"name": "gw", "sectionName": "https"}],
                           "rules": [{"backendRefs": [{"name": "api", "port": 80}]}]}),
     ("spec", "parentRefs", 1, "sectionName"), "http",
     "must be unique"),  # standard: "sectionName must be…"; experimental: "sectionName or port must be…"
    ("gateway api: Gateway TLS terminate without certificates",
     obj(GW, "Gateway", {"gatewayClassName": "istio", "listeners": [
         {"name": "https", "port": 443, "protocol": "HTTPS",
          "tls": {"mode": "Terminate", "certificateRefs": [{"name": "cert"}]}}]}),
     ("spec", "listeners", 0, "tls", "certificateRefs"), [],
     "certificateRefs or options must be specified"),
    ("gateway api: HTTPRoute redirect and backends together",
     obj(GW, "HTTPRoute", {"parentRefs": [{"name": "gw"}], "rules": [
         {"backendRefs": [{"name": "api", "port": 80}]}]}),
     ("spec", "rules", 0, "filters"),
     [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}}],
     "RequestRedirect filter must not be used together with backendRefs"),
    ("schema: wrong type", obj(NET, "VirtualService", {"hosts": ["api"], "http": [
        {"route": [{"destination": {"host": "api"}, "weight": 100}]}]}),
     ("spec", "http", 0, "route", 0, "weight"), "all", "is not of type \"integer\""),
    ("schema: enum", obj(NET, "DestinationRule", {"host": "api", "trafficPolicy": {
        "loadBalancer": {"simple": "ROUND_ROBIN"}}}),
     ("spec", "trafficPolicy", "loadBalancer", "simple"), "FASTEST", "FASTEST"),
    ("schema: unknown field the server would drop",
     obj(NET, "VirtualService", {"hosts": ["api"], "http": [
         {"route": [{"destination": {"host": "api"}}]}]}),
     ("spec", "http", 0, "retry"), {"attempts": 3}, "'retry'"),
    ("schema: required", obj(GW, "HTTPRoute", {"parentRefs": [{"name": "gw"}]}),
     ("spec", "parentRefs", 0, "name"), None, "\"name\" is a required property"),
    ("schema: pattern", obj(GW, "HTTPRoute", {"hostnames": ["shop.example.com"]}),
     ("spec", "hostnames", 0), "Shop_Example", "does not match"),
]


def _with(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    target: Any = out
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    elif isinstance(target, list) and path[-1] == len(target):
        target.append(value)
    else:
        target[path[-1]] = value
    return out


@pytest.mark.parametrize(("family", "good", "path", "bad", "message"), CASES,
                         ids=[c[0] for c in CASES])
def test_one_accepted_and_one_rejected_object_per_rule(
        family: str, good: dict[str, Any], path: tuple[Any, ...], bad: Any,
        message: str) -> None:
    assert check([good]) == [], family
    violations = check([_with(good, path, bad)])
    assert violations, f"{family}: nothing reported"
    assert any(message in v.message for v in violations), [str(v) for v in violations]


def test_violation_is_reported_at_the_breaking_field() -> None:
    bad = _with(CASES[0][1], ("spec", "http", 0, "timeout"), "0s")
    [violation] = check([bad])
    assert violation.path == ("spec", "http", 0, "timeout")
    assert violation.rule == "duration(self) >= duration('1ms')"
    assert str(violation).startswith("VirtualService/default/x spec.http[0].timeout: ")


def test_kinds_no_crd_defines_are_not_checked() -> None:
    assert check([{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"},
                   "spec": {"bogus": True}}]) == []


def test_transition_rules_are_skipped_and_escaping_follows_kubernetes() -> None:
    assert compile_rules({"x-kubernetes-validations": [{"rule": "self == oldSelf"}]}) is None
    assert escape("namespace") == "__namespace__"
    assert escape("x-b.c/d__e") == "x__dash__b__dot__c__slash__d__underscores__e"
    schema = {"properties": {"group": {"type": "string", "default": "g"},
                             "namespace": {"type": "string"}}}
    assert to_cel({"namespace": "ns", "extra": 1}, schema) == {"group": "g",
                                                               "__namespace__": "ns"}


def test_a_user_crd_with_a_broken_rule_is_an_error_not_a_crash() -> None:
    crd = {"kind": "CustomResourceDefinition", "spec": {
        "group": "example.com", "names": {"kind": "Widget"}, "versions": [{
            "name": "v1", "schema": {"openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": True,
                "x-kubernetes-validations": [{"rule": "self.spec.size( >"}]}}}]}}
    with pytest.raises(RuleError, match="does not compile"):
        Catalog([crd]).check({"apiVersion": "example.com/v1", "kind": "Widget",
                              "metadata": {"name": "w"}, "spec": {}})


def test_every_bundled_rule_compiles() -> None:
    catalog = default_catalog()
    assert {k for k in catalog.schemas.kinds() if catalog.rules(k) is not None} >= {
        ("networking.istio.io", "v1", "ServiceEntry"),
        ("gateway.networking.k8s.io", "v1", "HTTPRoute")}


def test_kubernetes_library_functions() -> None:
    from meshdsl.crdcheck.k8slib import FUNCTIONS, is_ip, is_url, validate
    assert is_url("https://a.example.com:8443/x") and is_url("/abs/path")
    assert not is_url("relative/path") and not is_url("http://a b") and not is_url("%zz")
    assert FUNCTIONS["getScheme"]("oci://registry/x") == "oci"
    assert FUNCTIONS["getHostname"]("https://[::1]:80/") == "::1"
    assert FUNCTIONS["getPort"]("https://a:8443/") == "8443"
    assert is_ip("10.0.0.1") and is_ip("::1") and not is_ip("a.example.com")
    assert validate("dns1123Label", "web-1") is None
    assert validate("dns1123Label", "Web_1") == ["must be a lowercase RFC 1123 label"]

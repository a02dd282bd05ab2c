"""Ambient-mode findings (MD130 to MD136): a minimal mesh that triggers each, and its fixed
twin (run by the table test of tests/unit/validate/test_rules.py), and the raw-route checks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from meshdsl import (
    Abort,
    Caller,
    Fault,
    Header,
    Match,
    Mesh,
    Method,
    Query,
    Retries,
    Subset,
    To,
    Uri,
    WithoutHeader,
)
from meshdsl.validate import Severity, validate


def _fault(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.namespace("shop", mode="ambient").service("r", port=80, versions=["v1"])
    r.route(to=r.v1, fault=Fault(abort=Abort(status=503)) if bad else None)
    return mesh


def _source_labels(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.namespace("shop", mode="ambient").service("r", port=80, versions=["v1", "v2"])
    r.route(match=Caller(labels={"app": "x"}) if bad else Header("x", exact="1"), to=r.v2)
    r.route(to=r.v1)
    return mesh


def _negative_header(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.namespace("shop", mode="ambient").service("r", port=80, versions=["v1", "v2"])
    r.route(match=WithoutHeader("x", exact="1") if bad else Header("x", exact="2"), to=r.v2)
    r.route(to=r.v1)
    return mesh


def _rate_limit(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.namespace("shop", mode="ambient" if bad else "sidecar").service("r", port=80)
    r.rate_limit(max_tokens=10)
    return mesh


def _peer_disable(bad: bool) -> Mesh:
    mesh = Mesh("t")
    shop = mesh.namespace("shop", mode="ambient")
    shop.service("r", port=80)
    shop.mtls("DISABLE" if bad else "PERMISSIVE")
    return mesh


def _free_subsets(bad: bool) -> Mesh:
    mesh = Mesh("t")
    shop = mesh.namespace("shop", mode="ambient")
    shop.service("r", port=80, versions=["v1"])
    shop.destination_rule("r-extra", host="r",
                          subsets=[Subset(name="canary" if bad else "v1")])
    return mesh


def _retry_on(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.namespace("shop", mode="ambient").service("r", port=80)
    r.route(to=r, retries=Retries(attempts=2, retry_on="5xx" if bad else "503"))
    return mesh


def _both_apis(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.namespace("shop", mode="ambient").service("r", port=80)
    r.route(to=r)
    if bad:
        mesh.routes("r-from-default", hosts=["r.shop.svc.cluster.local"]).route(to=r)
    return mesh


def _missing_parent(bad: bool) -> Mesh:
    mesh = Mesh("t")
    shop = mesh.namespace("shop", mode="ambient")
    r = shop.service("r", port=80)
    shop.routes("x", hosts=["nowhere" if bad else "r"]).route(to=r)
    return mesh


def _cross_mode_gateway(bad: bool) -> Mesh:
    mesh = Mesh("t")
    shop = mesh.namespace("shop", mode="ambient")
    r = shop.service("r", port=80)
    edge = mesh.namespace("edge", mode="sidecar" if bad else "ambient", waypoint=None)
    gw = edge.gateway("gw").http("r.example.com")
    gw.routes("r", namespace="shop", hosts=["r.example.com"]).route(to=r)
    return mesh


def _selector_authz(bad: bool) -> Mesh:
    mesh = Mesh("t")
    shop = mesh.namespace("shop", mode="ambient")
    r = shop.service("r", port=80)
    caller = shop.service("c", port=80)
    if bad:
        shop.authorization("by-tier", selector={"tier": "back"}).allow(caller)
    else:
        r.allow(caller)
    return mesh


def _l7_without_waypoint(bad: bool) -> Mesh:
    mesh = Mesh("t")
    shop = mesh.namespace("shop", mode="ambient", waypoint=None)
    r = shop.service("r", port=80)
    shop.authorization("all", action="DENY").rule(
        to=To(paths=["/admin"]) if bad else To(ports=[8080]))
    shop.service("other", port=80)
    del r
    return mesh


def _unlabelled(bad: bool) -> Mesh:
    mesh = Mesh("t", mode="ambient" if bad else "sidecar")
    mesh.service("r", port=80)
    return mesh


def _routes_without_waypoint(bad: bool) -> Mesh:
    mesh = Mesh("t")
    shop = mesh.namespace("shop", mode="ambient", waypoint=None if bad else "waypoint")
    r = shop.service("r", port=80, versions=["v1"])
    r.route(to=r.v1)
    return mesh


def _retries(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.namespace("shop", mode="ambient").service("r", port=80)
    r.route(to=r, retries=Retries(attempts=2) if bad else None)
    return mesh


def _precedence(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.namespace("shop", mode="ambient").service("r", port=80, versions=["v1", "v2"])
    first, second = Uri(prefix="/api"), Uri(prefix="/api/v2")
    for match, version in ((first, r.v1), (second, r.v2)) if bad else (
            (second, r.v2), (first, r.v1)):
        r.route(match=match, to=version)
    r.route(to=r.v1)
    return mesh


CASES: list[tuple[str, Callable[[bool], Mesh], Severity]] = [
    ("MD130", _fault, Severity.ERROR),
    ("MD130", _source_labels, Severity.ERROR),
    ("MD130", _negative_header, Severity.ERROR),
    ("MD130", _rate_limit, Severity.ERROR),
    ("MD130", _peer_disable, Severity.ERROR),
    ("MD130", _free_subsets, Severity.ERROR),
    ("MD130", _retry_on, Severity.ERROR),
    ("MD131", _both_apis, Severity.ERROR),
    ("MD132", _missing_parent, Severity.ERROR),
    ("MD132", _cross_mode_gateway, Severity.ERROR),
    ("MD133", _selector_authz, Severity.ERROR),
    ("MD133", _l7_without_waypoint, Severity.ERROR),
    ("MD134", _unlabelled, Severity.WARNING),
    ("MD135", _routes_without_waypoint, Severity.ERROR),
    ("MD136", _retries, Severity.INFO),
    ("MD137", _precedence, Severity.WARNING),
]


def test_a_finding_says_what_to_use_instead() -> None:
    messages = {f.message for f in validate(_rate_limit(True).build())}
    assert any("EnvoyFilters" in m and "ingress Gateway" in m for m in messages)
    messages = {f.message for f in validate(_peer_disable(True).build())}
    assert any("use PERMISSIVE" in m for m in messages)


def _raw(manifest: dict[str, object]) -> list[str]:
    mesh = Mesh("t")
    shop = mesh.namespace("shop", mode="ambient")
    shop.service("r", port=80, versions=["v1"])
    mesh.raw(manifest)
    return [f"{f.code} {f.message}" for f in validate(mesh.build())]


def _route(parent: str, backend: str) -> dict[str, object]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "x", "namespace": "shop"},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": parent}],
                     "rules": [{"backendRefs": [{"name": backend, "port": 80}]}]}}


def test_a_raw_route_must_name_existing_parents_and_backends() -> None:
    assert [f for f in _raw(_route("r", "r-v1")) if f.startswith("MD132")] == []
    found = _raw(_route("ghost", "r-v9"))
    assert any("parent Service shop/ghost does not exist" in f for f in found)
    assert any("backend Service shop/r-v9 does not exist" in f for f in found)


def test_a_raw_virtual_service_beside_the_compiled_httproute_is_reported() -> None:
    raw_vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
              "metadata": {"name": "legacy", "namespace": "shop"},
              "spec": {"hosts": ["r"], "http": [{"route": [{"destination": {"host": "r"}}]}]}}
    mesh = Mesh("t")
    r = mesh.namespace("shop", mode="ambient").service("r", port=80)
    r.route(to=r)
    mesh.raw(raw_vs)
    (finding,) = [f for f in validate(mesh.build()) if f.code == "MD131"]
    assert "shop/legacy" in finding.message and "shop/r" in finding.message


@pytest.mark.parametrize(("earlier", "later", "overlapping"), [
    (Uri(prefix="/a"), Uri(prefix="/b/c"), False),
    (Uri(exact="/a/b"), Uri(prefix="/a/b/c"), False),
    (Header("x", exact="1"), Header("x", exact="2") & Query("q", exact="1"), False),
    (Header("x", exact="1"), Header("y", exact="2") & Query("q", exact="1"), True),
    (Method("GET"), Method("POST") & Header("x", exact="1"), False),
    (Uri(regex="/a.*"), Uri(exact="/b"), True),
])
def test_only_overlapping_routes_are_reported(earlier: Match, later: Match,
                                              overlapping: bool) -> None:
    mesh = Mesh("t")
    r = mesh.namespace("shop", mode="ambient").service("r", port=80)
    r.route(match=earlier, to=r)
    r.route(match=later, to=r)
    found = [f for f in validate(mesh.build()) if f.code == "MD137"]
    assert bool(found) == overlapping, found


@pytest.mark.parametrize(("hosts", "at_gateway", "expected"), [
    (["r", "r.example.com"], True, []),  # the outside name is the Gateway's hostname
    (["r", "r.example.com"], False, [("MD132", Severity.WARNING)]),  # ignored on a Service
    (["r.example.com"], False, [("MD132", Severity.ERROR)]),  # no parent at all
    (["ghost", "r.example.com"], True, [("MD132", Severity.ERROR)]),  # a missing Service
])
def test_hosts_outside_the_mesh_are_hostnames_of_an_in_mesh_route(
        hosts: list[str], at_gateway: bool, expected: list[tuple[str, Severity]]) -> None:
    mesh = Mesh("t")
    shop = mesh.namespace("shop", mode="ambient")
    r = shop.service("r", port=80)
    gw = shop.gateway("gw").http("r.example.com")
    shop.routes("x", hosts=hosts, gateways=["mesh", gw] if at_gateway else []).route(to=r)
    found = [(f.code, f.severity) for f in validate(mesh.build())
             if f.code in ("MD107", "MD132")]
    assert found == expected

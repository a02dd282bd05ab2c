"""Bookinfo in ambient mode (examples/ambient): golden YAML, schema-valid objects, and what
the compiled objects mean — every reference resolves, versions are Services, weights land on
backendRefs, authorization attaches to what the waypoint serves."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from meshdsl.compile import compile_mesh, render
from meshdsl.compile.schema import SchemaIndex
from meshdsl.model.spec import MeshSpec
from meshdsl.validate import Severity, validate
from tests.conftest import EXAMPLES, SHARED, load_example

GATEWAY_API = "gateway.networking.k8s.io"
ROUTES = ("HTTPRoute", "GRPCRoute", "TCPRoute")


@pytest.fixture(scope="module")
def ambient() -> MeshSpec:
    return load_example("ambient")


@pytest.fixture(scope="module")
def compiled(ambient: MeshSpec) -> list[dict[str, Any]]:
    return compile_mesh(ambient)


@functools.cache
def schemas(channel: str) -> SchemaIndex:
    docs = list(yaml.safe_load_all((SHARED / "gateway-api" / f"{channel}-install.yaml")
                                   .read_text()))
    docs += yaml.safe_load_all((SHARED / "istio" / "crd-all.gen.yaml").read_text())
    return SchemaIndex(docs)


def by_kind(manifests: list[dict[str, Any]], *kinds: str) -> Iterator[dict[str, Any]]:
    return (m for m in manifests if m["kind"] in kinds)


def key(m: dict[str, Any]) -> tuple[str, str]:
    return m["metadata"].get("namespace", ""), m["metadata"]["name"]


def test_renders_the_golden_yaml(ambient: MeshSpec) -> None:
    assert render(ambient) == (EXAMPLES / "ambient" / "rendered.yaml").read_text()


def test_the_example_validates_without_errors(ambient: MeshSpec) -> None:
    findings = validate(ambient)
    assert [f for f in findings if f.severity is not Severity.INFO] == []
    assert {f.code for f in findings} == {"MD136"}  # the retry on reviews


def test_every_object_is_valid_against_the_crd_schemas(compiled: list[dict[str, Any]]) -> None:
    checked = 0
    core = [m for m in compiled if m["apiVersion"] in ("v1", "apps/v1")]
    for manifest in compiled:
        if manifest in core:
            continue
        assert schemas("experimental").errors(manifest) == [], key(manifest)
        standard = schemas("standard").errors(manifest)
        assert all(e.startswith("spec.rules[") and "'retry'" in e for e in standard), standard
        checked += 1
    assert checked == len(compiled) - len(core) > 15


def test_no_classic_routing_and_no_sidecar_injection_in_ambient(
        compiled: list[dict[str, Any]]) -> None:
    assert not list(by_kind(compiled, "VirtualService", "EnvoyFilter"))
    for ns in by_kind(compiled, "Namespace"):
        assert "istio-injection" not in ns["metadata"]["labels"]
        assert ns["metadata"]["labels"]["istio.io/dataplane-mode"] == "ambient"
    for dr in by_kind(compiled, "DestinationRule"):
        assert "subsets" not in dr["spec"]


def test_every_reference_resolves(compiled: list[dict[str, Any]]) -> None:
    services = {key(m): m for m in by_kind(compiled, "Service")}
    gateways = {key(m): m for m in by_kind(compiled, "Gateway")}
    grants = list(by_kind(compiled, "ReferenceGrant"))
    for ns in by_kind(compiled, "Namespace"):
        waypoint = ns["metadata"]["labels"].get("istio.io/use-waypoint")
        if waypoint is not None:
            assert gateways[(ns["metadata"]["name"], waypoint)]["spec"][
                "gatewayClassName"] == "istio-waypoint"
    for route in by_kind(compiled, *ROUTES):
        route_ns = route["metadata"]["namespace"]
        for parent in route["spec"]["parentRefs"]:
            target = (parent.get("namespace", route_ns), parent["name"])
            assert target in (services if parent["kind"] == "Service" else gateways), target
        for rule in route["spec"]["rules"]:
            for ref in rule.get("backendRefs", []):
                target = (ref.get("namespace", route_ns), ref["name"])
                assert target in services, target
                assert ref["port"] in [p["port"] for p in services[target]["spec"]["ports"]]
                if target[0] != route_ns:
                    assert any(g["metadata"]["namespace"] == target[0]
                               and {"group": GATEWAY_API, "kind": route["kind"],
                                    "namespace": route_ns} in g["spec"]["from"]
                               and {"group": "", "kind": "Service", "name": target[1]}
                               in g["spec"]["to"] for g in grants), (route, target)
    for policy in by_kind(compiled, "AuthorizationPolicy"):
        for ref in policy["spec"].get("targetRefs", []):
            pool = services if ref["kind"] == "Service" else gateways
            assert (policy["metadata"]["namespace"], ref["name"]) in pool


def test_versions_are_services_selecting_the_version(compiled: list[dict[str, Any]]) -> None:
    services = {key(m): m for m in by_kind(compiled, "Service")}
    for version in ("v1", "v2", "v3"):
        selector = services[("bookinfo", f"reviews-{version}")]["spec"]["selector"]
        assert selector == {"app": "reviews", "version": version}
    route = next(m for m in by_kind(compiled, "HTTPRoute") if key(m) == ("bookinfo", "reviews"))
    default = route["spec"]["rules"][-1]
    assert [(b["name"], b["weight"]) for b in default["backendRefs"]] == [
        ("reviews-v1", 90), ("reviews-v3", 10)]
    assert default["timeouts"] == {"request": "10s", "backendRequest": "2s"}


def test_a_canary_step_moves_the_backend_weights(ambient: MeshSpec) -> None:
    stepped = compile_mesh(ambient, weights={("bookinfo", "reviews"): {"v1": 50, "v2": 50}})
    route = next(m for m in stepped if m["kind"] == "HTTPRoute"
                 and key(m) == ("bookinfo", "reviews"))
    assert [(b["name"], b["weight"]) for b in route["spec"]["rules"][-1]["backendRefs"]] == [
        ("reviews-v1", 50), ("reviews-v2", 50)]
    assert route["spec"]["rules"][1]["backendRefs"] == [{"name": "reviews-v2", "port": 9080}]


def test_callers_cannot_skip_the_waypoint(compiled: list[dict[str, Any]]) -> None:
    policies = {key(m): m for m in by_kind(compiled, "AuthorizationPolicy")}
    guard = policies[("bookinfo", "waypoint-only")]["spec"]
    assert "selector" not in guard and "targetRefs" not in guard
    assert guard["rules"] == [{"from": [{"source": {
        "principals": ["cluster.local/ns/bookinfo/sa/waypoint"]}}]}]
    for policy in policies.values():
        assert "selector" not in policy["spec"]
    for svc in by_kind(compiled, "Service"):
        assert svc["metadata"]["labels"]["istio.io/ingress-use-waypoint"] == "true"


def test_output_is_deterministic(ambient: MeshSpec) -> None:
    assert render(ambient) == render(load_example("ambient"))

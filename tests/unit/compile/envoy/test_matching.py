from __future__ import annotations

from typing import Any

import pytest

from meshdsl.compile.envoy.matching import Source, applies, bound_gateways, route_match
from meshdsl.model import Authority, Caller, Header, Match, Method, Port, Query, Uri, WithoutHeader

EXACT_JASON = {"exact": "jason"}


@pytest.mark.parametrize(("match", "expected"), [
    (None, {"prefix": "/"}),
    (Uri(prefix="/api"), {"prefix": "/api"}),
    (Uri(exact="/login"), {"path": "/login"}),
    (Uri(regex="/v[0-9]+/.*"), {"safe_regex": {"regex": "/v[0-9]+/.*"}}),
    (Uri(prefix="/API", ignore_case=True), {"prefix": "/API", "case_sensitive": False}),
    (Header("end-user", exact="jason"),
     {"prefix": "/", "headers": [{"name": "end-user", "string_match": EXACT_JASON}]}),
    (Header("x-tier", prefix="gold"),
     {"prefix": "/", "headers": [{"name": "x-tier", "string_match": {"prefix": "gold"}}]}),
    (Header("x-id", regex="[a-f0-9]+"),
     {"prefix": "/", "headers": [{"name": "x-id",
                                  "string_match": {"safe_regex": {"regex": "[a-f0-9]+"}}}]}),
    (WithoutHeader("end-user", exact="jason"),
     {"prefix": "/", "headers": [{"name": "end-user", "string_match": EXACT_JASON,
                                  "invert_match": True}]}),
    (Method("post"),
     {"prefix": "/", "headers": [{"name": ":method", "string_match": {"exact": "POST"}}]}),
    (Authority(exact="api.example.com"),
     {"prefix": "/", "headers": [{"name": ":authority",
                                  "string_match": {"exact": "api.example.com"}}]}),
    (Query("debug", exact="1"),
     {"prefix": "/", "query_parameters": [{"name": "debug", "string_match": {"exact": "1"}}]}),
    (Uri(prefix="/r") & Header("b", exact="2") & Header("a", exact="1") & Method("GET"),
     {"prefix": "/r", "headers": [
         {"name": "a", "string_match": {"exact": "1"}},
         {"name": "b", "string_match": {"exact": "2"}},
         {"name": ":method", "string_match": {"exact": "GET"}}]}),
])
def test_route_match(match: Match | None, expected: dict[str, Any]) -> None:
    assert route_match(match) == expected


SIDECAR = Source("shop", {"app": "web", "version": "v1"}, frozenset({"mesh"}), 9080)
GATEWAY = Source("istio-system", {"istio": "ingressgateway"},
                 frozenset({"shop/front"}), 80)
MESH_ONLY = frozenset({"mesh"})


@pytest.mark.parametrize(("match", "source", "vs_gateways", "expected"), [
    (Uri(prefix="/"), SIDECAR, MESH_ONLY, True),
    (Uri(prefix="/"), GATEWAY, MESH_ONLY, False),
    (Uri(prefix="/"), GATEWAY, frozenset({"shop/front"}), True),
    (Caller(labels={"app": "web"}), SIDECAR, MESH_ONLY, True),
    (Caller(labels={"app": "other"}), SIDECAR, MESH_ONLY, False),
    (Caller(namespace="shop"), SIDECAR, MESH_ONLY, True),
    (Caller(namespace="elsewhere"), SIDECAR, MESH_ONLY, False),
    (Port(9080), SIDECAR, MESH_ONLY, True),
    (Port(8080), SIDECAR, MESH_ONLY, False),
    (Match(gateways=["front"]), GATEWAY, frozenset({"shop/front", "mesh"}), True),
    (Match(gateways=["mesh"]), GATEWAY, frozenset({"shop/front", "mesh"}), False),
])
def test_caller_conditions_are_decided_per_proxy(match: Match, source: Source,
                                                 vs_gateways: frozenset[str],
                                                 expected: bool) -> None:
    assert applies(match, source, vs_gateways, "shop") is expected


def test_bound_gateways_default_to_the_mesh() -> None:
    assert bound_gateways([], "shop") == {"mesh"}
    assert bound_gateways(["front", "edge/gw", "mesh"], "shop") == {"shop/front", "edge/gw",
                                                                   "mesh"}

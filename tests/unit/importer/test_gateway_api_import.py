"""Import of ambient namespaces written in the Gateway API (issue #15, point 6)."""

from __future__ import annotations

from pathlib import Path

import yaml

from meshdsl.compile import compile_mesh, render
from meshdsl.compile.compare import differences
from meshdsl.importer import import_documents, load_text, run_program
from tests.unit.importer.support import AMBIENT_SHOP, SHOP_WAYPOINT

RENDERED = Path(__file__).parents[3] / "examples" / "ambient" / "rendered.yaml"


def _import(text: str):  # type: ignore[no-untyped-def]
    return import_documents(load_text(text, "input.yaml"))


def test_bookinfo_ambient_reads_back_into_the_dsl() -> None:
    program = _import(RENDERED.read_text())
    src = program.source
    assert 'bookinfo = mesh.namespace("bookinfo", mode="ambient")' in src
    assert 'mesh.namespace("bookinfo-edge", mode="ambient", waypoint=None)' in src
    assert "to={reviews.v1: 90, reviews.v3: 10}" in src
    assert "mirror=reviews.v1" in src and "mirror_percent=12.5" in src
    assert 'bookinfo_edge.gateway("bookinfo-gateway")' in src
    assert 'stock.route(match=Uri(exact="/stock.Stock/Reserve"), to=stock.v2)' in src
    assert "mongodb.tcp_route(to=mongodb)" in src
    assert 'Version(\n            "v3", traffic_policy=' in src
    # authorization attached by targetRefs is the program's own
    assert 'reviews.allow(productpage, methods=["GET"])' in src
    assert 'ratings.allow(reviews, methods=["GET"], paths=["/ratings/*"])' in src
    assert 'bookinfo.authorization("no-admin", action="DENY")' in src
    # what the compiler adds by itself is not carried raw
    for kind in ("HTTPRoute", "GRPCRoute", "TCPRoute", "ReferenceGrant", "istio-waypoint",
                 "ingress-use-waypoint", "\"reviews-v1\"", "waypoint-only", "targetRefs",
                 "mesh.raw("):
        assert kind not in src, kind
    assert program.warnings == ()


def test_bookinfo_ambient_renders_back_equal() -> None:
    text = RENDERED.read_text()
    rendered = render(run_program(_import(text).source))
    assert rendered == text  # byte for byte, authorization included
    docs = list(yaml.safe_load_all(text))
    assert differences(docs, compile_mesh(run_program(_import(text).source))) == []


def test_v1beta1_routes_are_accepted() -> None:
    text = RENDERED.read_text().replace("gateway.networking.k8s.io/v1\n",
                                        "gateway.networking.k8s.io/v1beta1\n")
    assert "v1beta1\nkind: HTTPRoute" in text
    program = _import(text)
    assert "reviews.route(" in program.source and "HTTPRoute" not in program.source
    assert program.warnings == ()


_AMBIENT = AMBIENT_SHOP + SHOP_WAYPOINT + """\
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: web, port: 80}]
"""


def test_a_hand_written_ambient_namespace_imports_typed() -> None:
    program = _import(_AMBIENT)
    assert 'mesh.namespace("shop", mode="ambient")' in program.source
    assert 'web.route(match=Uri(prefix="/api"), to=web)' in program.source
    assert program.warnings == ()


def test_what_the_dsl_cannot_say_stays_raw_with_one_warning() -> None:
    text = _AMBIENT.replace("  - matches: [{path: {type: PathPrefix, value: /api}}]\n",
                            "  - matches: [{path: {type: PathPrefix, value: /api}}]\n"
                            "    sessionPersistence: {sessionName: s}\n")
    program = _import(text)
    assert "mesh.raw(" in program.source and "sessionPersistence" in program.source
    (warning,) = program.warnings
    assert (warning.resource, warning.message) == ("HTTPRoute shop/web", (
        "sessionPersistence has no DSL form; carried through unchanged (mesh.raw)"))
    assert warning.source is not None and warning.source.line == 19  # the route's line
    assert "web.route(" not in program.source


def test_analyze_checks_ambient_routes_at_their_yaml_line() -> None:
    from meshdsl.importer import analyze

    findings = analyze([RENDERED])
    lines = RENDERED.read_text().splitlines()
    assert [f.code for f in findings] == ["MD136"]  # as `meshctl validate` on the program
    line = findings[0].source.line  # type: ignore[union-attr]
    assert lines[line - 1:line + 3] == ["apiVersion: gateway.networking.k8s.io/v1",
                                        "kind: HTTPRoute", "metadata:", "  name: reviews"]


def test_objects_the_compiler_would_not_write_fall_back_to_raw() -> None:
    grant = """\
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-elsewhere, namespace: shop}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: elsewhere}]
  to: [{group: "", kind: Service, name: web}]
"""
    program = _import(_AMBIENT + grant)  # verified against the input, or it would raise
    assert "from-elsewhere" in program.source and "mesh.raw(" in program.source
    (warning,) = program.warnings  # that object alone: the rest stays typed
    assert warning.resource == "ReferenceGrant shop/from-elsewhere"
    assert warning.message == ("the program would not render it; carried through unchanged "
                               "(mesh.raw)")
    assert 'web.route(match=Uri(prefix="/api"), to=web)' in program.source


def test_sidecar_namespaces_keep_gateway_api_objects_raw() -> None:
    text = _AMBIENT.replace("istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint",
                            "istio-injection: enabled").replace(
        ', labels: {istio.io/ingress-use-waypoint: "true"}', "")
    program = _import(text)
    assert "mode=" not in program.source and "web.route(" not in program.source
    assert sorted(w.resource for w in program.warnings) == ["Gateway shop/waypoint",
                                                            "HTTPRoute shop/web"]


def test_to_ambient_keeps_the_namespaces_read_as_ambient() -> None:
    from meshdsl.importer.ambient import to_ambient

    converted = to_ambient(_import(RENDERED.read_text()).result.spec)
    assert 'mesh.namespace("bookinfo-edge", mode="ambient", waypoint=None)' in converted.source
    waypoints = [m["metadata"]["namespace"] for m in converted.manifests
                 if m["kind"] == "Gateway" and m["spec"]["gatewayClassName"] == "istio-waypoint"]
    assert waypoints == ["bookinfo"]

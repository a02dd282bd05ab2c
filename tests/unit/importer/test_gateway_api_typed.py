"""What used to stay raw in an ambient import, now read back typed (issue #15, point 6):
AuthorizationPolicies with ``targetRefs`` (a Service, the waypoint, an ingress Gateway),
routes with ``hostnames`` beside Service parents, and a Gateway's https-redirect route.

Each case is a program: compiled, imported, and the imported program must say the same
thing in the DSL's words (no warning, nothing raw) and render byte for byte the same."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from meshdsl import Mesh, To
from meshdsl.compile import render
from meshdsl.importer import import_documents, load_text, run_program, verify
from tests.unit.importer.support import AMBIENT_SHOP, SHOP_WAYPOINT, ambient_shop


def _mesh(extra: Callable[[Mesh], None]) -> Mesh:
    mesh = ambient_shop(shapes=False)
    extra(mesh)
    return mesh


def _service_policy(mesh: Mesh) -> None:
    web = mesh.namespace("shop").service("web", port=80)
    web.allow(mesh.namespace("shop").service("api", port=8080), methods=["GET"])


def _waypoint_policy(mesh: Mesh) -> None:
    mesh.namespace("shop").authorization("no-admin", action="DENY").rule(
        to=To(paths=["/admin*"]))


def _gateway_policy(mesh: Mesh) -> None:
    internal = mesh.namespace("edge").gateway("internal").http("internal.example.com")
    internal.authorization(action="DENY").rule(to=To(paths=["/admin*"]))


def _hostnames_at_a_gateway(mesh: Mesh) -> None:
    shop = mesh.namespace("shop")
    shop.routes("web", hosts=["web", "web.example.com"], gateways=["mesh", "edge/front"]
                ).route(to=shop.service("web", port=80))


def _hostnames_in_mesh_only(mesh: Mesh) -> None:
    shop = mesh.namespace("shop")
    shop.routes("web", hosts=["web", "web.example.com"]).route(
        to=shop.service("web", port=80))


def _https_redirect(mesh: Mesh) -> None:
    mesh.namespace("edge").gateway("secure").http("shop.example.com", https_redirect=True)


_GW = "  - group: gateway.networking.k8s.io\n    kind: Gateway\n    name: "
CASES = [  # (declare, what the YAML says, how the imported program says it)
    (_service_policy, '  targetRefs:\n  - group: ""\n    kind: Service\n    name: web\n',
     'web.allow(api, methods=["GET"])'),
    (_waypoint_policy, f"  targetRefs:\n{_GW}waypoint\n",
     'no_admin = shop.authorization("no-admin", action="DENY")'),
    (_gateway_policy, f"  targetRefs:\n{_GW}internal\n",
     'internal_authz = internal.authorization(action="DENY")'),
    (_hostnames_at_a_gateway, "    name: web\n  - group: gateway.networking.k8s.io\n    "
     "kind: Gateway\n    name: front\n    namespace: edge\n  hostnames:\n  - web.example.com",
     'hosts=["web", "web.example.com"], gateways=["mesh", front])'),
    (_hostnames_in_mesh_only, "    name: web\n  hostnames:\n  - web.example.com\n",
     'shop.routes("web", hosts=["web", "web.example.com"])'),
    (_https_redirect, "  name: secure-https-redirect\n",
     'secure.http("shop.example.com", https_redirect=True)'),
]


@pytest.mark.parametrize(("declare", "written", "line"), CASES,
                         ids=[c[0].__name__[1:] for c in CASES])
def test_imports_typed_and_renders_back_byte_for_byte(declare: Callable[[Mesh], None],
                                                      written: str, line: str) -> None:
    text = render(_mesh(declare).build())
    assert written in text
    program = import_documents(load_text(text, "in.yaml"))
    assert line in program.source
    assert program.warnings == () and "mesh.raw(" not in program.source
    assert render(run_program(program.source)) == text


_SHOP = AMBIENT_SHOP + SHOP_WAYPOINT + """\
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: waypoint-only, namespace: shop}
spec:
  action: ALLOW
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/waypoint]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-readers, namespace: shop}
spec:
  targetRefs: [{group: "", kind: Service, name: web}]
  rules: [{from: [{source: {namespaces: [shop]}}], to: [{operation: {methods: [GET]}}]}]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: deny-debug, namespace: shop}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: waypoint}]
  action: DENY
  rules: [{to: [{operation: {paths: [/debug*]}}]}]
"""


def test_hand_written_policies_with_target_refs_import_typed() -> None:
    program = import_documents(load_text(_SHOP, "shop.yaml"))
    assert 'web_readers = web.authorization("web-readers")' in program.source
    assert 'web_readers.allow(namespaces=["shop"], methods=["GET"])' in program.source
    assert 'deny_debug = shop.authorization("deny-debug", action="DENY")' in program.source
    assert program.warnings == () and "mesh.raw(" not in program.source
    assert verify(program.source, [d.manifest for d in load_text(_SHOP, "shop.yaml")]) == []

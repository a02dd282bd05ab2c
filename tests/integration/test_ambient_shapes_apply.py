"""The Gateway API shapes an ambient import now reads typed, as the compiler writes them,
through a real kube-apiserver 1.20.2 with Istio's and the Gateway API's CRDs: a policy
attached to an ingress Gateway by ``targetRefs``, a route with Service and Gateway
parents and ``hostnames``, the https redirect on two listeners. Each is stored as sent
(server-side apply, as ``kubectl apply --server-side`` would), and the program imported
from the objects renders them again, typed."""

from __future__ import annotations

import uuid

import pytest

from meshdsl import Mesh
from meshdsl.compile import compile_mesh
from meshdsl.importer import Document, import_documents, verify
from reconciler.core.diff import mismatches
from reconciler.targets.kube import KubeTarget
from reconciler.testing.apiserver import LocalApiServer
from tests.integration.test_ambient_apply import live
from tests.unit.importer.support import ambient_shop

pytestmark = pytest.mark.integration


def _mesh(suffix: str) -> Mesh:
    return ambient_shop("shapes", suffix)


def test_the_shapes_are_stored_as_sent_and_import_typed(apiserver: LocalApiServer) -> None:
    desired = compile_mesh(_mesh(uuid.uuid4().hex[:6]).build())
    shapes = {(m["kind"], m["metadata"]["name"]): m for m in desired}
    assert shapes[("AuthorizationPolicy", "front")]["spec"]["targetRefs"][0]["kind"] == "Gateway"
    assert len(shapes[("HTTPRoute", "front-https-redirect")]["spec"]["parentRefs"]) == 2
    assert shapes[("HTTPRoute", "web")]["spec"]["hostnames"] == ["web.example.com"]
    with KubeTarget.from_kubeconfig(str(apiserver.kubeconfig)) as target:
        for manifest in desired:  # in apply order: Namespaces first
            target.apply(manifest, force=False)
        stored = list(live(target, desired).values())
    for sent, got in zip(desired, stored, strict=True):
        assert mismatches(sent, got) == [], sent["metadata"]
    program = import_documents([Document(m, "compiled", 0) for m in desired])
    assert 'front.authorization(action="DENY")' in program.source
    assert "https_redirect=True" in program.source
    assert 'hosts=["web", "web.example.com"], gateways=["mesh", front])' in program.source
    assert "mesh.raw(" not in program.source and program.warnings == ()
    assert verify(program.source, desired) == []

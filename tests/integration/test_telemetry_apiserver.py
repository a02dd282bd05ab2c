"""``mesh.telemetry(...)`` objects are accepted and stored by the real API server (with
Istio's CRDs), field for field."""

from __future__ import annotations

import uuid

import pytest

from meshdsl import Mesh, Tracing
from meshdsl.compile import compile_mesh
from meshdsl.compile.manifest import ResourceKey
from reconciler.targets.kube import KubeTarget
from reconciler.testing.apiserver import LocalApiServer

pytestmark = pytest.mark.integration


def test_telemetry_objects_are_stored(apiserver: LocalApiServer) -> None:
    ns = f"tel-{uuid.uuid4().hex[:6]}"
    mesh = Mesh("tel", namespace=ns)
    scope = mesh.namespace(ns)
    scope.telemetry(tracing=Tracing(sampling=12.5), access_logging=True)
    web = scope.service("web", versions=["v1"])
    web.telemetry(tracing=Tracing(provider="zipkin", sampling=100))
    manifests = compile_mesh(mesh.build())
    telemetry = [m for m in manifests if m["kind"] == "Telemetry"]
    assert len(telemetry) == 2
    with KubeTarget.from_kubeconfig(str(apiserver.kubeconfig)) as target:
        for manifest in [m for m in manifests if m["kind"] == "Namespace"] + telemetry:
            target.apply(manifest, force=True)
        for manifest in telemetry:
            got = target.get(ResourceKey.of(manifest))
            assert got is not None
            assert got["spec"] == manifest["spec"]

"""Workloads as the DSL now writes them (labels, annotations, a shared ServiceAccount, pull
policy, resources, probes, scratch volumes) are accepted by a real kube-apiserver and
stored as sent; Bookinfo's workloads imported from YAML apply the same way."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from meshdsl import Mesh, Probe
from meshdsl.compile import compile_mesh
from meshdsl.compile.manifest import Manifest, ResourceKey
from meshdsl.importer import import_files, run_program
from reconciler.core.diff import mismatches
from reconciler.runtime.apply import Options, apply
from reconciler.targets.kube import KubeTarget

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).parents[1] / "unit" / "importer" / "workloads"


def stored_as_sent(target: KubeTarget, desired: list[Manifest], mesh: str) -> None:
    result = apply(target, desired, mesh=mesh)
    assert result.summary()["created"] == len(desired)
    for m in desired:
        live = target.get(ResourceKey.of(m))
        assert live is not None, ResourceKey.of(m)
        assert mismatches(m, live) == [], ResourceKey.of(m)
    again = apply(target, desired, mesh=mesh, options=Options(prune=True))
    assert again.write_calls == 0


def test_a_fully_described_workload_is_stored_as_sent(target: KubeTarget) -> None:
    ns = f"wl-{uuid.uuid4().hex[:6]}"
    mesh = Mesh(ns)
    scope = mesh.namespace(ns)
    shop = scope.service("shop", port=8080, versions=["v1", "v2"], service_account="shop-sa",
                         labels={"team": "web"}, annotations={"example.com/owner": "web"},
                         account_labels={"account": "shop"}, service_type="ClusterIP")
    for version in ("v1", "v2"):
        shop.deploy(version, image=f"example/shop:{version}", replicas=2,
                    image_pull_policy="IfNotPresent", labels={"app": "shop"},
                    annotations={"example.com/rev": "1"},
                    pod_annotations={"sidecar.istio.io/logLevel": "debug"},
                    resources={"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}},
                    readiness=Probe(port=8080, path="/healthz", period=5),
                    liveness=Probe(port=8080, initial_delay=10), scratch={"tmp": "/tmp"},
                    env={"LOG_DIR": "/tmp/logs"})
    desired = compile_mesh(mesh.build())
    assert sorted(m["kind"] for m in desired if m["kind"] != "DestinationRule") == [
        "Deployment", "Deployment", "Namespace", "Service", "ServiceAccount"]
    stored_as_sent(target, desired, ns)


def test_imported_bookinfo_workloads_apply_as_typed_dsl(target: KubeTarget) -> None:
    ns = f"bi-{uuid.uuid4().hex[:6]}"
    program = import_files([CORPUS / "bookinfo-workloads.yaml"], name=ns, namespace=ns)
    assert program.result.spec.raw == []
    desired = compile_mesh(run_program(program.source))
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    assert len(desired) == 14
    stored_as_sent(target, [namespace, *desired], ns)

"""Workloads as the DSL now writes them (labels, annotations, a shared ServiceAccount, pull
policy, resources, probes, scratch volumes, files from Secrets and ConfigMaps, env from
them and from the pod, a grace period, containers beside the app) and the machines behind
an external host (WorkloadEntries a ServiceEntry selects) are accepted by a real
kube-apiserver with Istio's CRDs and stored as sent, and applying again writes nothing
(the server's defaults, like a volume's defaultMode, are not drift); the sample workloads
imported from YAML apply the same way."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from meshdsl import Container, FileMount, Mesh, Probe, ValueFrom
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


def test_files_env_from_and_containers_beside_the_app_are_stored_as_sent(
        target: KubeTarget) -> None:
    ns = f"pod-{uuid.uuid4().hex[:6]}"
    mesh = Mesh(ns)
    db = mesh.namespace(ns).service("db", port=3306, versions=["v1"], service_account="db")
    db.deploy("v1", image="example/mysql:8", container_port=[3306, 33060], grace_period=0,
              env={"MYSQL_ROOT_PASSWORD": ValueFrom(secret="db-credentials", key="root"),
                   "POD_IP": ValueFrom(field="status.podIP"),
                   "MODE": ValueFrom(config_map="db-settings", key="mode", optional=True),
                   "DATA": "/var/lib/mysql"},
              scratch={"data": "/var/lib/mysql"},
              files=[FileMount(path="/etc/tls", secret="db-tls", volume="tls",
                               optional=True, default_mode=0o400, read_only=True),
                     FileMount(path="/etc/mysql/conf.d", config_map="db-settings")],
              containers=[Container(name="exporter", image="example/mysqld-exporter:1",
                                    ports=[9104], env={"DATA_SOURCE": "localhost:3306"},
                                    mounts={"tls": "/tls"})])
    desired = compile_mesh(mesh.build())
    pod = next(m for m in desired if m["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["db", "exporter"]
    stored_as_sent(target, desired, ns)


def test_workload_entries_selected_by_a_service_entry_are_stored_as_sent(
        target: KubeTarget) -> None:
    ns = f"vm-{uuid.uuid4().hex[:6]}"
    mesh = Mesh(ns)
    vm = mesh.namespace(ns)
    vm.external(f"mysqldb.{ns}.svc.cluster.local", ports={3306: "TCP"},
                  resolution="STATIC", location="MESH_INTERNAL", name="mysqldb",
                  workload_selector={"app": "mysqldb"})
    vm.workload_entry("mysqldb-1", address="10.0.0.7", labels={"app": "mysqldb"},
                        ports={"tcp": 3306}, service_account="mysqldb", network="vm-net",
                        locality="us-east1/us-east1-b", weight=2)
    vm.workload_entry("mysqldb-2", address="10.0.0.8", labels={"app": "mysqldb"})
    desired = compile_mesh(mesh.build())
    assert sorted(m["kind"] for m in desired) == [
        "Namespace", "ServiceEntry", "WorkloadEntry", "WorkloadEntry"]
    stored_as_sent(target, desired, ns)


@pytest.mark.parametrize("sample", sorted(p.name for p in CORPUS.glob("*.yaml")
                                          if p.name != "bookinfo-workloads.yaml"))
def test_imported_sample_workloads_apply_as_sent(target: KubeTarget, sample: str) -> None:
    """The typed part of every sample of the workload corpus, as the generated program
    compiles it (the raw objects are the input's own, not the DSL's output)."""
    ns = f"s-{uuid.uuid4().hex[:6]}"
    program = import_files([CORPUS / sample], name=ns, namespace=ns)
    spec = run_program(program.source)
    assert len(spec.raw) < len(program.result.manifests)
    desired = compile_mesh(spec.model_copy(update={"raw": []}))
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    stored_as_sent(target, [namespace, *desired], ns)

"""External hosts (ServiceEntries) and the machines behind them (WorkloadEntries) in the
DSL: built, validated, compiled, checked against the CRDs, imported back."""

from __future__ import annotations

import textwrap

from meshdsl import ExternalEndpoint, ExternalPort, Mesh
from meshdsl.compile import compile_mesh
from meshdsl.crdcheck import check
from meshdsl.importer import import_documents, load_text, run_program
from meshdsl.validate import validate


def _mesh(declared: bool) -> Mesh:
    mesh = Mesh("egress")
    if declared:
        mesh.external("api.example.com", ports={443: "HTTPS"}, resolution="DNS")
    mesh.routes("api", hosts=["api.example.com"]).route(to="api.example.com", timeout="5s")
    return mesh


def test_a_route_to_an_external_host_validates_only_when_it_is_declared() -> None:
    assert [f.code for f in validate(_mesh(False).build())] == ["MD102"]
    assert validate(_mesh(True).build()) == []


def test_external_hosts_compile_to_schema_valid_service_entries() -> None:
    mesh = Mesh("egress")
    ns = mesh.namespace("shop")
    ns.external("db.internal.corp", ports=[ExternalPort(number=5432, name="tcp-pg",
                                                         protocol="TCP")],
                resolution="STATIC", location="MESH_INTERNAL", export_to=["."],
                endpoints=[ExternalEndpoint(address="10.0.0.7", labels={"role": "primary"})])
    [entry] = [m for m in compile_mesh(mesh.build()) if m["kind"] == "ServiceEntry"]
    assert entry["metadata"]["name"] == "db-internal-corp"
    assert entry["spec"] == {
        "hosts": ["db.internal.corp"],
        "ports": [{"number": 5432, "name": "tcp-pg", "protocol": "TCP"}],
        "location": "MESH_INTERNAL", "resolution": "STATIC",
        "endpoints": [{"address": "10.0.0.7", "labels": {"role": "primary"}}],
        "exportTo": ["."]}
    assert check([entry]) == []


YAML = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payments, namespace: shop}
spec:
  hosts: [payments.vendor.io, "*.payments.vendor.io"]
  ports:
  - {number: 443, name: https, protocol: HTTPS}
  - {number: 80, name: http-plain, protocol: HTTP}
  resolution: DNS
  exportTo: ["."]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: search-example-com, namespace: shop}
spec:
  hosts: [search.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
"""


def test_service_entries_import_as_typed_dsl_and_render_back() -> None:
    program = import_documents(load_text(textwrap.dedent(YAML), "se.yaml"))
    assert program.result.spec.raw == []
    assert 'shop.external("search.example.com", ports={443: "TLS"}, resolution="DNS")' in \
        program.source
    assert 'name="payments"' in program.source and "ExternalPort(" in program.source
    spec = run_program(program.source)
    assert [se.hosts for se in spec.service_entries] == [
        ["payments.vendor.io", "*.payments.vendor.io"], ["search.example.com"]]


def _vm_mesh(*, resolution: str = "STATIC") -> Mesh:
    """A database on two VMs: a ServiceEntry selecting WorkloadEntries by label."""
    mesh = Mesh("vms")
    vm = mesh.namespace("vm")
    vm.external("mysqldb.vm.svc.cluster.local", ports=[ExternalPort(
        number=3306, name="tcp", protocol="TCP")], resolution=resolution,  # type: ignore[arg-type]
        location="MESH_INTERNAL", name="mysqldb", workload_selector={"app": "mysqldb"})
    vm.workload_entry("mysqldb-1", address="10.0.0.7", labels={"app": "mysqldb"},
                      ports={"tcp": 3306}, service_account="mysqldb", network="vm-net",
                      locality="us-east1/us-east1-b", weight=2)
    vm.workload_entry("mysqldb-2", address="10.0.0.8", labels={"app": "mysqldb"})
    return mesh


def test_workload_entries_compile_to_schema_valid_objects_a_selector_finds() -> None:
    manifests = compile_mesh(_vm_mesh().build())
    entries = [m for m in manifests if m["kind"] == "WorkloadEntry"]
    assert [(m["apiVersion"], m["metadata"]["namespace"], m["metadata"]["name"])
            for m in entries] == [("networking.istio.io/v1", "vm", "mysqldb-1"),
                                  ("networking.istio.io/v1", "vm", "mysqldb-2")]
    assert entries[0]["spec"] == {
        "address": "10.0.0.7", "ports": {"tcp": 3306}, "labels": {"app": "mysqldb"},
        "network": "vm-net", "locality": "us-east1/us-east1-b", "weight": 2,
        "serviceAccount": "mysqldb"}
    [entry] = [m for m in manifests if m["kind"] == "ServiceEntry"]
    assert entry["spec"]["workloadSelector"] == {"labels": {"app": "mysqldb"}}
    assert check(manifests) == []
    assert validate(_vm_mesh().build()) == []


def test_the_crd_check_refuses_what_istio_refuses_of_them() -> None:
    mesh = Mesh("vms")
    mesh.workload_entry("nowhere", labels={"app": "db"})  # neither address nor network
    mesh.workload_entry("uds", address="unix:///var/run/db.sock", ports={"tcp": 3306})
    mesh.external("db.example.com", resolution="STATIC", workload_selector={"app": "db"},
                  endpoints=[ExternalEndpoint(address="10.0.0.9")])
    messages = sorted(v.message for v in check(compile_mesh(mesh.build())))
    assert messages == ["Address is required", "UDS may not include ports",
                        "only one of WorkloadSelector or Endpoints can be set"]


WORKLOAD_ENTRIES = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mysqldb, namespace: vm}
spec:
  hosts: [mysqldb.vm.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 3306, name: tcp, protocol: TCP}]
  resolution: STATIC
  workloadSelector:
    labels: {app: mysqldb}
---
apiVersion: networking.istio.io/v1beta1
kind: WorkloadEntry
metadata: {name: mysqldb-1, namespace: vm}
spec:
  address: 10.0.0.7
  labels: {app: mysqldb, class: vm}
  serviceAccount: mysqldb
  ports: {tcp: 3306}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: odd, namespace: vm}
spec:
  address: 10.0.0.8
  labels: {app: mysqldb}
  healthCheck: {tcp: 3306}
"""


def test_workload_entries_import_typed_and_render_back() -> None:
    program = import_documents(load_text(WORKLOAD_ENTRIES, "we.yaml"))
    result = program.result
    assert [m["metadata"]["name"] for m in result.spec.raw] == ["odd"]
    [warning] = result.warnings
    assert warning.path == "spec.healthCheck" and warning.source is not None
    odd_field = WORKLOAD_ENTRIES.splitlines().index("  healthCheck: {tcp: 3306}") + 1
    assert warning.source.line == odd_field
    assert 'workload_selector={"app": "mysqldb"}' in program.source
    assert 'vm.workload_entry(\n    "mysqldb-1",' in program.source
    spec = run_program(program.source)
    [entry] = spec.workload_entries
    assert (entry.address, entry.labels, entry.ports, entry.service_account) == (
        "10.0.0.7", {"app": "mysqldb", "class": "vm"}, {"tcp": 3306}, "mysqldb")
    assert spec.service_entries[0].workload_selector is not None
    assert validate(spec) == []

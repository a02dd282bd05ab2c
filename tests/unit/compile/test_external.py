"""External hosts (ServiceEntries) in the DSL: built, validated, compiled, imported back."""

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

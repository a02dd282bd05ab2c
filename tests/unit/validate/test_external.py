"""What a ServiceEntry's workload selector finds (MD117) and which endpoint addresses Istio
can use (MD118), beyond the one bad/good pair per code in test_rules."""

from __future__ import annotations

import pytest

from meshdsl import ExternalEndpoint, Mesh
from meshdsl.validate import validate
from meshdsl.validate.external import address_kind


@pytest.mark.parametrize(("address", "kind"), [
    ("10.0.0.7", "ip"), ("2001:db8::7", "ip"), ("db-1.vm.example.com", "dns"),
    ("db-1.vm.example.com.", "dns"), ("DB.Example.com", "dns"), ("db", "dns"),
    ("unix:///var/run/db.sock", "unix"), ("10.0.0.7:3306", None), ("*.example.com", None),
    ("http://db.example.com", None), ("db_1.example.com", None),
])
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(address) == kind


def _selected(**where: object) -> list[str]:
    """Codes for a ServiceEntry in ``vm`` selecting ``{app: db}``, plus ``where``'s object."""
    mesh = Mesh("t")
    vm = mesh.namespace("vm")
    vm.external("db.vm.internal", ports=[3306], resolution="STATIC",
                location="MESH_INTERNAL", workload_selector={"app": "db"})
    if "raw" in where:
        mesh.raw(where["raw"])  # type: ignore[arg-type]
    if "service_in" in where:
        scope = mesh.namespace(str(where["service_in"]))
        scope.service("db", port=3306, versions=["v1"]).deploy("v1", image="mysql:8")
    return [f.code for f in validate(mesh.build())]


@pytest.mark.parametrize(("where", "codes"), [
    ({}, ["MD117"]),
    ({"service_in": "vm"}, []),  # the service's pods carry app: db
    ({"service_in": "other"}, ["MD117"]),  # a selector looks in its own namespace only
    ({"raw": {"apiVersion": "apps/v1", "kind": "StatefulSet",
              "metadata": {"name": "db", "namespace": "vm"},
              "spec": {"template": {"metadata": {"labels": {"app": "db"}}}}}}, []),
    ({"raw": {"apiVersion": "networking.istio.io/v1", "kind": "WorkloadGroup",
              "metadata": {"name": "db", "namespace": "vm"},
              "spec": {"metadata": {"labels": {"app": "db", "zone": "a"}}}}}, []),
    ({"raw": {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "db", "namespace": "vm", "labels": {"app": "cache"}}}}, ["MD117"]),
])
def test_a_selector_counts_the_pods_and_machines_of_its_namespace(
        where: dict[str, object], codes: list[str]) -> None:
    assert _selected(**where) == codes


def test_dns_names_are_fine_where_envoy_resolves_them() -> None:
    mesh = Mesh("t")
    mesh.external("db.vm.internal", ports=[3306], resolution="DNS",
                  location="MESH_INTERNAL", workload_selector={"app": "db"})
    mesh.workload_entry("db-1", address="db-1.vm.internal", labels={"app": "db"})
    mesh.external("api.example.com", ports=[443], resolution="STATIC", endpoints=[
        ExternalEndpoint(address="api.example.com")])
    findings = validate(mesh.build())
    assert [(f.code, f.path) for f in findings] == [
        ("MD118", "ServiceEntry default/api-example-com endpoints[0].address")]
    assert "resolution='DNS'" in findings[0].message

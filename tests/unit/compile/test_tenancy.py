"""Tenancy in the program: the declared fence, and validation findings at the user's line."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from meshdsl import Mesh, Tenancy
from meshdsl.compile.tenancy import declaration
from meshdsl.validate import validate


def _scenario() -> Mesh:
    mesh = Mesh("shop", namespace="shop")
    mesh.service("web", port=80, versions=["v1"])
    mesh.raw({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments"}})
    mesh.raw({"apiVersion": "v1", "kind": "Service",
              "metadata": {"name": "kube-dns", "namespace": "kube-system"}})
    mesh.raw({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "meshdsl-control-default", "namespace": "meshdsl-system"},
              "data": {"control.json": "{"}})
    mesh.raw({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
              "metadata": {"name": "x"}})
    return mesh


def test_default_fence_is_the_namespaces_the_program_opens() -> None:
    mesh = _scenario()
    assert declaration(mesh.build()) == {"namespaces": ["shop"], "clusterKinds": [],
                                         "adopt": []}


def test_findings_name_the_users_line() -> None:
    findings = {(f.code, f.path): f for f in validate(_scenario().build())}
    assert findings[("MD601", "raw Namespace/payments")].severity.value == "error"
    assert findings[("MD601", "raw Service/kube-system/kube-dns")]
    assert findings[("MD604", "raw ConfigMap/meshdsl-system/meshdsl-control-default")]
    assert findings[("MD602", "raw ClusterRole/x")]
    for finding in findings.values():
        assert finding.source is not None and finding.source.file == __file__
        assert finding.source.line > 0


def test_declared_namespaces_and_reserved_ones_warn() -> None:
    mesh = Mesh("shop", namespace="shop",
                tenancy=Tenancy(namespaces=["shop", "kube-system"],
                                cluster_kinds=["ClusterRole"],
                                adopt=["Service/shop/legacy"]))
    mesh.raw({"apiVersion": "v1", "kind": "Service",
              "metadata": {"name": "kube-dns", "namespace": "kube-system"}}, adopt=True)
    mesh.raw({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
              "metadata": {"name": "x"}})
    spec = mesh.build()
    codes = {(f.code, f.severity.value) for f in validate(spec)}
    assert codes == {("MD603", "warning")}
    assert declaration(spec)["adopt"] == ["Service/kube-system/kube-dns", "Service/shop/legacy"]


def test_tenancy_is_strict() -> None:
    with pytest.raises(ValidationError):
        Tenancy(namespace=["shop"])  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="Kind/namespace/name"):
        Tenancy(adopt=["kube-dns"])

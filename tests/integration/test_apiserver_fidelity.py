"""The test API server stores what a real 1.20+ server stores.

Built with Go >= 1.18, the vendored OpenAPI type validator of kube-apiserver 1.20.2 took every
empty string in a custom resource for null and refused it (``Invalid value: "null"``).
``scripts/install-components`` patches that (REAL-COMPONENTS.md recipe 4b); these tests fail
on an unpatched binary. The server also serves Gateway API's CRDs beside Istio's.
"""

from __future__ import annotations

from typing import Any

import pytest

from meshdsl.compile.manifest import ResourceKey
from reconciler.targets.kube import KubeTarget
from reconciler.testing.apiserver import LocalApiServer
from tests.integration.conftest import unique

pytestmark = pytest.mark.integration


def _in_new_namespace(target: KubeTarget, api_version: str, kind: str, name: str,
                      spec: dict[str, Any]) -> dict[str, Any]:
    """A ``kind`` named ``name`` with ``spec``, in a namespace of its own (created here)."""
    namespace = unique("fidelity")
    target.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                 force=True)
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _stored(target: KubeTarget, manifest: dict[str, Any]) -> dict[str, Any]:
    meta = manifest["metadata"]
    target.apply(manifest, force=True)
    got = target.get(ResourceKey.of(manifest))
    assert got is not None, f"{manifest['kind']}/{meta['name']} was not stored"
    return got


def test_virtualservice_with_empty_strings_is_stored(target: KubeTarget) -> None:
    vs = _in_new_namespace(target, "networking.istio.io/v1", "VirtualService", "reviews", {
        "hosts": ["reviews"],
        "http": [{
            "headers": {"request": {"set": {"x-debug": ""}}},
            "route": [{"destination": {"host": "reviews", "subset": ""}}],
        }],
    })
    got = _stored(target, vs)
    assert got["spec"] == vs["spec"]


def test_httproute_with_service_parent_and_empty_group_is_stored(target: KubeTarget) -> None:
    route = _in_new_namespace(target, "gateway.networking.k8s.io/v1", "HTTPRoute", "reviews", {
        "parentRefs": [{"group": "", "kind": "Service", "name": "reviews", "port": 9080}],
        "rules": [{
            "backendRefs": [
                {"group": "", "kind": "Service", "name": "reviews-v1", "port": 9080,
                 "weight": 90},
                {"group": "", "kind": "Service", "name": "reviews-v2", "port": 9080,
                 "weight": 10},
            ],
        }],
    })
    got = _stored(target, route)
    assert got["spec"]["parentRefs"] == route["spec"]["parentRefs"]
    assert [ref["group"] for ref in got["spec"]["rules"][0]["backendRefs"]] == ["", ""]
    assert [ref["weight"] for ref in got["spec"]["rules"][0]["backendRefs"]] == [90, 10]


def test_gateway_api_kinds_are_served(apiserver: LocalApiServer) -> None:
    names = {item["metadata"]["name"] for item in apiserver.get_json(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]}
    for crd in ("gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io",
                "grpcroutes.gateway.networking.k8s.io", "referencegrants.gateway.networking.k8s.io",
                "virtualservices.networking.istio.io"):
        assert crd in names


def test_a_wrong_type_is_still_rejected(target: KubeTarget) -> None:
    """The patch only stops "" being taken for null: type checking itself still works."""
    from reconciler.targets.kube import KubeError

    bad = _in_new_namespace(target, "networking.istio.io/v1", "VirtualService", "bad", {
        "hosts": ["r"], "http": [{"route": [{"destination": {"host": "r"}, "weight": "ten"}]}]})
    with pytest.raises(KubeError, match="integer"):
        target.apply(bad, force=True)

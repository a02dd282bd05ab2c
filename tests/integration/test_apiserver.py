"""The local kube-apiserver serves Istio's CRDs and validates against their schemas."""

from __future__ import annotations

import copy
import subprocess
from typing import Any

import pytest
from kubernetes.dynamic.exceptions import DynamicApiError

from reconciler.testing.apiserver import FIELD_MANAGER, LocalApiServer
from tests.integration.conftest import unique

pytestmark = pytest.mark.integration

VS_API = "networking.istio.io/v1"


def _virtual_service(name: str, weight: Any = 90) -> dict[str, Any]:
    return {
        "apiVersion": VS_API,
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "reviews"}},
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {
                    "name": "canary",
                    "route": [
                        {"destination": {"host": "reviews", "subset": "v1"}, "weight": weight},
                        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 10},
                    ],
                }
            ],
        },
    }


def test_istio_crds_are_established(apiserver: LocalApiServer) -> None:
    crds = apiserver.get_json("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    names = {item["metadata"]["name"] for item in crds["items"]}
    assert "virtualservices.networking.istio.io" in names
    assert "destinationrules.networking.istio.io" in names
    assert len([n for n in names if n.endswith(".istio.io")]) == 15


def test_virtualservices_v1_are_served(apiserver: LocalApiServer) -> None:
    dyn = apiserver.dynamic_client()
    resource = dyn.resources.get(api_version=VS_API, kind="VirtualService")
    assert resource.namespaced
    listing = dyn.get(resource, namespace="default")
    assert listing.kind == "VirtualServiceList"
    assert isinstance(listing.items, list)


def test_weight_of_wrong_type_is_rejected_with_422(apiserver: LocalApiServer) -> None:
    dyn = apiserver.dynamic_client()
    resource = dyn.resources.get(api_version=VS_API, kind="VirtualService")
    with pytest.raises(DynamicApiError) as excinfo:
        dyn.create(resource, body=_virtual_service(unique("bad-weight"), weight="ten"))
    assert excinfo.value.status == 422
    assert "must be of type integer" in str(excinfo.value.body)


def test_server_side_apply_reads_back_equal(apiserver: LocalApiServer) -> None:
    dyn = apiserver.dynamic_client()
    resource = dyn.resources.get(api_version=VS_API, kind="VirtualService")
    desired = _virtual_service(unique("reviews"))

    dyn.server_side_apply(
        resource, body=copy.deepcopy(desired), field_manager=FIELD_MANAGER, force_conflicts=True
    )
    got = dyn.get(resource, name=desired["metadata"]["name"], namespace="default").to_dict()

    # An unknown field would be pruned silently by a 1.20 server: compare what came back.
    assert got["spec"] == desired["spec"]
    assert got["metadata"]["labels"] == desired["metadata"]["labels"]
    managers = {(m["manager"], m["operation"]) for m in got["metadata"]["managedFields"]}
    assert (FIELD_MANAGER, "Apply") in managers

    # Re-applying the same intent is a no-op (same resourceVersion).
    again = dyn.server_side_apply(
        resource, body=copy.deepcopy(desired), field_manager=FIELD_MANAGER, force_conflicts=True
    )
    assert again.metadata.resourceVersion == got["metadata"]["resourceVersion"]


def test_matching_kubectl_works_with_the_kubeconfig(apiserver: LocalApiServer) -> None:
    result = subprocess.run(
        apiserver.kubectl_argv("get", "crd", "-o", "name"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "customresourcedefinition.apiextensions.k8s.io/virtualservices.networking.istio.io" in (
        result.stdout.splitlines()
    )

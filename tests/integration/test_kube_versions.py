"""The kube target names objects by key and reads them in the version the server prefers.

Against the real kube-apiserver with Istio's and Gateway API's CRDs: ``networking.istio.io``
serves ``v1`` first, but ``EnvoyFilter`` only in ``v1alpha3``; a VirtualService written as
``v1beta1`` reads back as ``v1`` — and the apply engine still sees it unchanged.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from meshdsl.compile.manifest import NAMESPACE, GroupKind, Manifest, ResourceKey
from reconciler.runtime.apply import apply, diff
from reconciler.targets.kube import KubeTarget, NotFound
from reconciler.testing.apiserver import LocalApiServer

pytestmark = pytest.mark.integration

NET = "networking.istio.io"


def namespace(target: KubeTarget) -> str:
    name = f"versions-{uuid.uuid4().hex[:6]}"
    target.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                 force=True)
    return name


def virtual_service(ns: str, version: str = "v1beta1") -> Manifest:
    return {"apiVersion": f"{NET}/{version}", "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"hosts": ["web"], "http": [{"route": [{"destination": {"host": "web"}}]}]}}


def test_an_object_reads_back_in_the_preferred_version(target: KubeTarget) -> None:
    ns = namespace(target)
    target.apply(virtual_service(ns), force=True)
    got = target.get(ResourceKey(NET, "VirtualService", ns, "web"))
    assert got is not None and got["apiVersion"] == f"{NET}/v1"
    assert got["spec"]["hosts"] == ["web"]
    items = target.list(GroupKind(NET, "VirtualService"), ns, metadata_only=True)
    assert [(i["apiVersion"], i["kind"], i["metadata"]["name"]) for i in items] == [
        (f"{NET}/v1", "VirtualService", "web")]
    assert target.get(NAMESPACE.key("", ns)) is not None          # the core group: v1
    assert target.namespaced(GroupKind(NET, "VirtualService"))
    assert not target.namespaced(NAMESPACE)


def test_a_kind_the_preferred_version_lacks_is_found_in_the_next(target: KubeTarget) -> None:
    ns = namespace(target)
    envoy_filter = {"apiVersion": f"{NET}/v1alpha3", "kind": "EnvoyFilter",
                    "metadata": {"name": "ef", "namespace": ns},
                    "spec": {"configPatches": []}}
    target.apply(envoy_filter, force=True)
    key = ResourceKey(NET, "EnvoyFilter", ns, "ef")
    got = target.get(key)
    assert got is not None and got["apiVersion"] == f"{NET}/v1alpha3"
    assert [i["apiVersion"] for i in target.list(key.group_kind, ns)] == [f"{NET}/v1alpha3"]
    target.delete(key)
    assert target.get(key) is None
    target.delete(key)  # absent is success


def test_a_kind_nobody_serves_is_a_one_line_not_found(target: KubeTarget) -> None:
    for kind in (GroupKind(NET, "Nonesuch"), GroupKind("nothing.example.com", "Thing")):
        with pytest.raises(NotFound) as caught:
            target.list(kind, "default")
        message = str(caught.value)
        assert "\n" not in message and f"does not serve kind {kind}" in message, message
    with pytest.raises(NotFound, match="are Istio's CRDs installed"):
        target.get(ResourceKey(NET, "Nonesuch", "default", "x"))


def _crd(group: str) -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"widgets.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                         "openAPIV3Schema": {"type": "object",
                                             "x-kubernetes-preserve-unknown-fields": True}}}]}}


def test_a_group_installed_after_discovery_is_found(target: KubeTarget) -> None:
    group = f"g{uuid.uuid4().hex[:8]}.example.com"
    widget = GroupKind(group, "Widget")
    with pytest.raises(NotFound):
        target.list(widget, "default")  # the group list is read and cached without it
    crd = ResourceKey("apiextensions.k8s.io", "CustomResourceDefinition", "",
                      f"widgets.{group}")
    target.apply(_crd(group), force=True)
    try:
        deadline, listed = time.monotonic() + 30, None
        while listed is None:
            try:
                listed = target.list(widget, "default")
            except NotFound:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # until the API server serves the new group
        assert listed == []
    finally:
        target.delete(crd)


def test_reapplying_what_reads_back_in_another_version_writes_nothing(
        target: KubeTarget, apiserver: LocalApiServer) -> None:
    """Declared ``v1beta1``, read as ``v1``. Another manager also owning a field (with the
    same value) keeps the metadata proof from settling it, so the fields are compared —
    and the version they were read in is no difference."""
    ns = mesh = f"versions-{uuid.uuid4().hex[:6]}"
    desired = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
               virtual_service(ns)]
    assert apply(target, desired, mesh=mesh).write_calls > 0
    assert apply(target, desired, mesh=mesh).write_calls == 0

    with KubeTarget.from_kubeconfig(str(apiserver.kubeconfig), field_manager="other") as other:
        other.apply({"apiVersion": f"{NET}/v1", "kind": "VirtualService",
                     "metadata": {"name": "web", "namespace": ns},
                     "spec": {"hosts": ["web"]}}, force=False)
    result = apply(target, desired, mesh=mesh)
    assert result.write_calls == 0, result.plan.steps
    assert result.summary()["unchanged"] == 2 and result.plan.drift == ()


def test_a_diff_shows_the_change_not_the_version_it_was_read_in(target: KubeTarget) -> None:
    ns = mesh = f"versions-{uuid.uuid4().hex[:6]}"
    desired = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
               virtual_service(ns)]
    apply(target, desired, mesh=mesh)
    desired[1]["spec"]["hosts"] = ["web", "web.example.com"]
    _, diffs = diff(target, desired, mesh=mesh)
    changed = [line for d in diffs for line in d.lines
               if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == ["+  - web.example.com"], changed

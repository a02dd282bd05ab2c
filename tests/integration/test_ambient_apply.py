"""Bookinfo compiled for ambient mode, applied to a real kube-apiserver 1.20.2 serving Istio's
and the Gateway API's (standard channel) CRDs by server-side apply, and read back.

Each run moves the example to namespaces of its own (the server is shared by the session).
Every object must be stored as sent. The one route with retries is the exception the test
pins down: the standard channel has no HTTPRoute ``retry`` field and server-side apply
refuses it (the reason for MD136); without it, that route too is stored as sent. (The
unit tests check it against the experimental channel's schema offline.)
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from meshdsl.compile import compile_mesh
from meshdsl.compile.manifest import MESH_LABEL, Manifest, ResourceKey
from reconciler.core.diff import mismatches
from reconciler.runtime.apply import apply
from reconciler.targets.kube import KubeError, KubeTarget
from reconciler.testing.apiserver import LocalApiServer
from tests.conftest import load_example

pytestmark = pytest.mark.integration


def _renamed(value: Any, rename: dict[str, str], key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _renamed(v, rename, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, rename, key) for v in value]
    if key == "namespace" and value in rename:
        return rename[value]
    if isinstance(value, str) and value.startswith("cluster.local/ns/"):
        ns = value.split("/")[2]
        return value.replace(f"/ns/{ns}/", f"/ns/{rename.get(ns, ns)}/")
    return value


def ambient_bookinfo(suffix: str, weights: dict[str, int] | None = None
                     ) -> tuple[str, list[Manifest]]:
    compiled = compile_mesh(load_example("ambient"),
                            weights={("bookinfo", "reviews"): weights} if weights else None)
    rename = {"bookinfo": f"amb-{suffix}", "bookinfo-edge": f"amb-edge-{suffix}"}
    mesh = f"ambient-{suffix}"
    out = []
    for manifest in copy.deepcopy(compiled):
        manifest = _renamed(manifest, rename)
        meta = manifest["metadata"]
        if manifest["kind"] == "Namespace":
            meta["name"] = rename[meta["name"]]
        meta["labels"][MESH_LABEL] = mesh
        out.append(manifest)
    return mesh, out


def live(target: KubeTarget, desired: list[Manifest]) -> dict[ResourceKey, Manifest]:
    out = {}
    for m in desired:
        obj = target.get(ResourceKey.of(m))
        assert obj is not None, ResourceKey.of(m)
        out[ResourceKey.of(m)] = obj
    return out


def _retrying(manifest: Manifest) -> bool:
    return manifest["kind"] == "HTTPRoute" and any("retry" in r for r in manifest["spec"]["rules"])


def _without_retry(manifest: Manifest) -> Manifest:
    out = copy.deepcopy(manifest)
    for rule in out["spec"]["rules"]:
        rule.pop("retry", None)
    return out


def test_every_ambient_object_is_stored_as_compiled(apiserver: LocalApiServer) -> None:
    mesh, compiled = ambient_bookinfo(uuid.uuid4().hex[:6])
    kinds = {m["kind"] for m in compiled}
    assert {"HTTPRoute", "GRPCRoute", "TCPRoute", "Gateway", "ReferenceGrant",
            "AuthorizationPolicy", "DestinationRule"} <= kinds
    (retrying,) = [m for m in compiled if _retrying(m)]
    desired = [m for m in compiled if m is not retrying]
    with KubeTarget.from_kubeconfig(str(apiserver.kubeconfig)) as target:
        result = apply(target, desired, mesh=mesh)
        assert result.summary()["created"] == len(desired) > 40
        assert result.warnings == []
        with pytest.raises(KubeError, match=r"\.retry: field not declared in schema"):
            target.apply(retrying, force=False)
        trimmed = _without_retry(retrying)
        target.apply(trimmed, force=False)
        desired.append(trimmed)
        stored = live(target, desired)
    for m in desired:
        assert mismatches(m, stored[ResourceKey.of(m)]) == [], ResourceKey.of(m)
    # group "" survives (the go-openapi empty-string fix), as Istio needs it
    route = stored[next(ResourceKey.of(m) for m in desired if m["kind"] == "HTTPRoute"
                        and m["metadata"]["name"] == "reviews")]
    assert route["spec"]["parentRefs"][0]["group"] == ""


def test_a_canary_step_is_one_route_update(apiserver: LocalApiServer) -> None:
    suffix = uuid.uuid4().hex[:6]
    mesh, desired = ambient_bookinfo(suffix)
    desired = [_without_retry(m) if _retrying(m) else m for m in desired]
    with KubeTarget.from_kubeconfig(str(apiserver.kubeconfig)) as target:
        apply(target, desired, mesh=mesh)
        _, stepped = ambient_bookinfo(suffix, weights={"v1": 50, "v2": 50})
        stepped = [_without_retry(m) if _retrying(m) else m for m in stepped]
        target.writes.clear()
        apply(target, stepped, mesh=mesh)
        assert list(target.writes) == [("apply", f"HTTPRoute/amb-{suffix}/reviews")]
        route = target.get(ResourceKey("gateway.networking.k8s.io", "HTTPRoute",
                                       f"amb-{suffix}", "reviews"))
    assert route is not None
    assert [(b["name"], b["weight"]) for b in route["spec"]["rules"][-1]["backendRefs"]] == [
        ("reviews-v1", 50), ("reviews-v2", 50)]

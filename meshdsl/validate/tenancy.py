"""Tenancy: every object inside the namespaces and cluster-scoped kinds the mesh declares
(:class:`~meshdsl.model.tenancy.Tenancy`), none of the reconciler's own state, and a
warning for the namespaces only the reconciler's flags can open (kube-system, the
reconciler's and Istio's root namespace). The reconciler checks the same again before any
write (``reconciler.core.tenancy``); here the user learns it at their line.
"""

from __future__ import annotations

from collections.abc import Iterator

from meshdsl.compile.tenancy import declaration, placed
from meshdsl.model.spec import MeshSpec
from meshdsl.model.tenancy import KUBE_NAMESPACES, SYSTEM_NAMESPACE, is_state_object
from meshdsl.validate.findings import Finding, error, warning


def check(mesh: MeshSpec) -> Iterator[Finding]:
    fence = declaration(mesh)
    allowed = set(fence["namespaces"])
    kinds = set(fence["clusterKinds"])
    reserved = {*KUBE_NAMESPACES, SYSTEM_NAMESPACE, mesh.root_namespace}
    for obj in placed(mesh):
        if is_state_object(obj.kind, obj.name):
            yield error("MD604", obj.what, f"{obj.kind} {obj.name!r} is named like the "
                        "reconciler's own state (meshdsl-*); a program can never declare "
                        "it — rename it", obj.source)
            continue
        namespace = obj.namespace or (obj.name if obj.kind == "Namespace" else "")
        if not obj.namespace and obj.kind != "Namespace" and obj.kind not in kinds:
            yield error("MD602", obj.what, f"cluster-scoped {obj.kind} is not allowed for "
                        f"this mesh; add it to Tenancy(cluster_kinds=[...]) if it must "
                        "create one", obj.source)
            continue
        if not namespace:
            continue
        if namespace not in allowed:
            yield error("MD601", obj.what, f"namespace {namespace!r} is outside this mesh's "
                        f"tenancy (allowed: {', '.join(sorted(allowed)) or 'none'}); open it "
                        "with mesh.namespace(...) or list it in Tenancy(namespaces=[...])",
                        obj.source)
        elif namespace in reserved:
            yield warning("MD603", obj.what, f"namespace {namespace!r} is reserved: the "
                          "reconciler refuses it unless started with --allow-namespace "
                          f"{namespace}", obj.source)

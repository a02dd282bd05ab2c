"""The tenancy a program declares, resolved: what ``meshctl validate`` checks and what the
reconciler enforces again before any write (``reconciler.core.tenancy``).

``declaration(spec)`` is plain JSON-able data (it travels from the sandboxed program to the
reconciler): the namespaces the mesh may write (declared, or else the ones it opens), the
cluster-scoped kinds it may create, and the objects it may adopt. ``placed(spec)`` lists
every object with its namespace and the user's file:line, for findings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from meshdsl.model.base import SourceLocation
from meshdsl.model.spec import MeshSpec
from meshdsl.model.tenancy import manifest_ref

__all__ = ["Placed", "declaration", "opened_namespaces", "placed"]


class Placed(NamedTuple):
    """One declared object: what it is, where it goes, where the program said so (a
    tuple: validation places each of a mesh's 30,000 objects)."""

    what: str                    # e.g. "Service shop/reviews" or "raw Deployment/kube-system/x"
    kind: str
    namespace: str               # "" for a cluster-scoped object
    name: str
    source: SourceLocation | None
    raw: bool = False


def _dsl_objects(spec: MeshSpec) -> list[tuple[str, Any]]:
    """Each kind of namespaced object the DSL declares, with its objects."""
    return [
        ("Service", spec.services),
        ("VirtualService", spec.virtual_services), ("DestinationRule", spec.destination_rules),
        ("Gateway", spec.gateways), ("PeerAuthentication", spec.peer_authentications),
        ("AuthorizationPolicy", spec.authorization_policies),
        ("EnvoyFilter", spec.rate_limits), ("ServiceEntry", spec.service_entries),
        ("WorkloadEntry", spec.workload_entries),
    ]


def placed(spec: MeshSpec) -> Iterator[Placed]:
    for ns in spec.namespaces:
        if ns.create:
            yield Placed(f"Namespace {ns.name}", "Namespace", "", ns.name, ns.source)
    for kind, items in _dsl_objects(spec):
        for item in items:
            yield Placed(f"{kind} {item.namespace}/{item.name}", kind, item.namespace,
                         item.name, item.source)
    sources = list(spec.raw_sources) + [None] * (len(spec.raw) - len(spec.raw_sources))
    for manifest, source in zip(spec.raw, sources, strict=False):
        meta: dict[str, Any] = dict(manifest.get("metadata") or {})  # type: ignore[call-overload]
        yield Placed(f"raw {manifest_ref(manifest)}", str(manifest.get("kind", "")),
                     str(meta.get("namespace") or ""), str(meta.get("name", "")), source,
                     raw=True)


def opened_namespaces(spec: MeshSpec) -> list[str]:
    """The namespaces the program itself opens: ``Mesh(namespace=...)``,
    ``mesh.namespace(...)`` and every namespace a DSL object lives in — never one only a
    ``mesh.raw`` manifest names."""
    found = {spec.default_namespace, *(ns.name for ns in spec.namespaces)}
    found |= {item.namespace for _, items in _dsl_objects(spec) for item in items
              if item.namespace}
    return sorted(found)


def declaration(spec: MeshSpec) -> dict[str, list[str]]:
    """``{"namespaces", "clusterKinds", "adopt"}``: the program's fence, defaults resolved."""
    tenancy = spec.tenancy
    namespaces = (sorted(set(tenancy.namespaces)) if tenancy is not None
                  and tenancy.namespaces is not None else opened_namespaces(spec))
    adopt = set(tenancy.adopt) if tenancy is not None else set()
    flags = list(spec.raw_adopt) + [False] * (len(spec.raw) - len(spec.raw_adopt))
    adopt |= {manifest_ref(m) for m, flag in zip(spec.raw, flags, strict=False) if flag}
    return {"namespaces": namespaces,
            "clusterKinds": sorted(set(tenancy.cluster_kinds)) if tenancy else [],
            "adopt": sorted(adopt)}

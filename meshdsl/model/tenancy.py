"""What a mesh may write on a shared cluster: its namespaces, its cluster-scoped kinds and
the existing objects it explicitly takes over.

A program from Git is untrusted input, so the reconciler writes only inside the fence the
program declares here *and* the one its own flags allow (``reconciler.core.tenancy``). By
default the fence is as small as the program: the namespaces it opens (``Mesh(namespace=)``
and ``mesh.namespace(...)``), and no cluster-scoped object but the Namespaces it opens.

``adopt`` names existing objects the mesh may take over although it did not create them
(``Kind/namespace/name``, or ``Kind/name`` when cluster-scoped); without it an object that
exists and is not ours is refused before any write. ``mesh.raw(..., adopt=True)`` adds one.

>>> Tenancy(namespaces=["shop", "shop-canary"], cluster_kinds=["ClusterRole"])
Tenancy(namespaces=['shop', 'shop-canary'], cluster_kinds=['ClusterRole'], adopt=[])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from meshdsl.model.base import Declared

__all__ = ["KUBE_NAMESPACES", "STATE_KINDS", "STATE_PREFIX", "SYSTEM_NAMESPACE", "Tenancy",
           "is_state_object", "manifest_ref", "object_ref", "parse_ref"]

# Namespaces no mesh writes unless the reconciler (not the program) allows it: Kubernetes'
# own, the reconciler's (its state) and the Istio root namespace (mesh-wide effect; passed
# separately, it is a setting of the mesh).
KUBE_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
SYSTEM_NAMESPACE = "meshdsl-system"
# The reconciler's own state: ConfigMaps (inventory, status, control, outputs, rollouts)
# and Leases named meshdsl-*. No program may declare one, whatever the flags.
STATE_KINDS = ("ConfigMap", "Lease")
STATE_PREFIX = "meshdsl-"


def is_state_object(kind: str, name: str) -> bool:
    return kind in STATE_KINDS and name.startswith(STATE_PREFIX)


def object_ref(kind: str, namespace: str, name: str) -> str:
    """``Kind/namespace/name`` (``Kind/name`` for a cluster-scoped object)."""
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def parse_ref(ref: str) -> tuple[str, str, str]:
    """(kind, namespace, name) of ``Kind/namespace/name`` or ``Kind/name``."""
    parts = ref.split("/")
    if len(parts) == 2 and all(parts):
        return parts[0], "", parts[1]
    if len(parts) == 3 and all(parts):
        return parts[0], parts[1], parts[2]
    raise ValueError(f"{ref!r} is not Kind/namespace/name (or Kind/name for a "
                     "cluster-scoped object)")


def manifest_ref(manifest: Mapping[str, Any]) -> str:
    meta = manifest.get("metadata") or {}
    return object_ref(str(manifest.get("kind", "")), str(meta.get("namespace") or ""),
                      str(meta.get("name", "")))


class Tenancy(Declared):
    """The fence of one mesh. ``namespaces=None``: the namespaces the program opens."""

    namespaces: list[str] | None = None
    cluster_kinds: list[str] = Field(default_factory=list)
    adopt: list[str] = Field(default_factory=list)

    @field_validator("adopt")
    @classmethod
    def _refs(cls, refs: list[str]) -> list[str]:
        for ref in refs:
            parse_ref(ref)
        return refs

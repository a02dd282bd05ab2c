"""The fence a mesh writes inside, checked on the desired set before any write.

The program declares its fence (:func:`meshdsl.compile.tenancy.declaration`); the
reconciler narrows it with its own settings, which the program cannot change:

- a namespaced object must be in one of the declared namespaces;
- a cluster-scoped object must be a Namespace the mesh declares, or of a declared kind;
- ``kube-system``, ``kube-public``, ``kube-node-lease``, the reconciler's own namespace and
  the Istio root namespace are refused unless the reconciler was started allowing them
  (``--allow-namespace``), even when the program lists them;
- the reconciler's own state (ConfigMaps and Leases named ``meshdsl-*``) is never
  declarable, whatever the flags.

Pure: data in, violations out; :func:`check` raises :class:`TenancyError` naming each one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshdsl.compile.manifest import Manifest, ResourceKey
from meshdsl.model.tenancy import KUBE_NAMESPACES, SYSTEM_NAMESPACE, is_state_object
from reconciler.core.errors import CoreError

__all__ = ["ISTIO_ROOT", "Policy", "TenancyError", "check", "violations"]

ISTIO_ROOT = "istio-system"


class TenancyError(CoreError):
    """Desired objects outside the mesh's fence: refused before any write."""

    def __init__(self, mesh: str, lines: Sequence[str]) -> None:
        self.lines = list(lines)
        super().__init__(f"mesh {mesh!r} declares {len(self.lines)} object(s) outside its "
                         "tenancy; nothing was written:\n" + "\n".join(self.lines))


@dataclass(frozen=True)
class Policy:
    namespaces: frozenset[str]
    cluster_kinds: frozenset[str] = frozenset()
    reserved: frozenset[str] = frozenset((*KUBE_NAMESPACES, SYSTEM_NAMESPACE, ISTIO_ROOT))
    allowed: frozenset[str] = frozenset()      # reserved namespaces the reconciler allows

    @classmethod
    def of(cls, declared: Mapping[str, Any], *, system_namespace: str = SYSTEM_NAMESPACE,
           root_namespace: str = ISTIO_ROOT, allow: Iterable[str] = ()) -> Policy:
        """The program's declaration (``namespaces``, ``clusterKinds``) under the
        reconciler's settings."""
        return cls(namespaces=frozenset(str(n) for n in declared.get("namespaces") or ()),
                   cluster_kinds=frozenset(str(k) for k in declared.get("clusterKinds") or ()),
                   reserved=frozenset((*KUBE_NAMESPACES, SYSTEM_NAMESPACE, system_namespace,
                                       root_namespace)),
                   allowed=frozenset(allow))

    def may_write(self, namespace: str) -> bool:
        return namespace in self.namespaces and (namespace not in self.reserved
                                                 or namespace in self.allowed)

    def why_not(self, key: ResourceKey) -> str | None:
        """``None`` when the mesh may write ``key``; else the reason."""
        if is_state_object(key.kind, key.name):
            return "is named like the reconciler's own state (meshdsl-*); never declarable"
        if key.namespace:
            namespace = key.namespace
        elif key.kind == "Namespace" and not key.group:
            namespace = key.name
        else:
            if key.kind in self.cluster_kinds:
                return None
            return (f"is cluster-scoped and {key.kind} is not in the mesh's "
                    "Tenancy(cluster_kinds=[...])")
        if namespace in self.reserved and namespace not in self.allowed:
            return (f"is in reserved namespace {namespace!r}; only the reconciler's "
                    f"--allow-namespace {namespace} opens it, never the program")
        if namespace not in self.namespaces:
            return (f"is in namespace {namespace!r}, outside the mesh's tenancy (allowed: "
                    f"{', '.join(sorted(self.namespaces)) or 'none'})")
        return None


def violations(keys: Iterable[ResourceKey], policy: Policy) -> list[str]:
    out = []
    for key in sorted(set(keys)):
        reason = policy.why_not(key)
        if reason is not None:
            out.append(f"{key} {reason}")
    return out


def check(mesh: str, desired: Collection[Manifest], policy: Policy | None) -> None:
    """Raise :class:`TenancyError` unless every desired object is inside the fence."""
    if policy is None:
        return
    found = violations((ResourceKey.of(m) for m in desired), policy)
    if found:
        raise TenancyError(mesh, found)

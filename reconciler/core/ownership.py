"""Is this live object ours? Two tests, both required — and who owns it when it is not.

An object is ours when it carries our ownership labels for this mesh *and this reconciler*
(``app.kubernetes.io/managed-by=meshdsl``, ``meshdsl.io/mesh=<mesh>``,
``meshdsl.io/reconciler=<name>``) **and** it is in the mesh's inventory
(:mod:`reconciler.core.inventory`). Labels alone can be copied onto anything; the
inventory alone once let a declared object that another team created be recorded and then
pruned. With both, an object someone else created is never written over and never deleted:

- a declared object that exists and is not ours is a *refusal* before any write, naming
  who owns it (its field managers and labels) — unless the program or the command line
  explicitly adopts it (``Tenancy(adopt=[...])``, ``mesh.raw(..., adopt=True)``,
  ``--adopt KIND/NS/NAME``), like Helm's ownership annotations, never by default;
- prune deletes only objects that pass both tests; an inventory entry whose object lost our
  labels is reported (and forgotten), never deleted.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meshdsl.compile.manifest import (
    MANAGED_BY,
    MANAGER,
    MESH_LABEL,
    OWNER_LABEL,
    Manifest,
    ResourceKey,
)
from meshdsl.model.tenancy import object_ref
from reconciler.core.errors import CoreError

__all__ = ["DEFAULT_OWNER", "OWNER_LABEL", "NotOwnedError", "Refusal", "adopts",
           "describe_owner", "is_ours", "owner_labels", "with_owner"]

DEFAULT_OWNER = "default"


def owner_labels(mesh: str, owner: str) -> dict[str, str]:
    return {MANAGED_BY: MANAGER, MESH_LABEL: mesh, OWNER_LABEL: owner}


def is_ours(manifest: Mapping[str, Any], mesh: str, owner: str) -> bool:
    """Does the live object carry all of our ownership labels? (The label half of the test.)"""
    labels = (manifest.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(MANAGED_BY) == MANAGER and labels.get(MESH_LABEL) == mesh
                and labels.get(OWNER_LABEL) == owner)


def with_owner(manifest: Manifest, mesh: str, owner: str) -> Manifest:
    """``manifest`` carrying our ownership labels (the same dict when it already does)."""
    wanted = owner_labels(mesh, owner)
    meta = manifest.get("metadata") or {}
    labels = meta.get("labels") or {}
    if all(labels.get(k) == v for k, v in wanted.items()):
        return manifest
    return {**manifest, "metadata": {**meta, "labels": {**labels, **wanted}}}


def describe_owner(live: Mapping[str, Any]) -> str:
    """Who a live object belongs to, as far as it says: field managers and owner labels."""
    meta = live.get("metadata") or {}
    managers = sorted({str(e.get("manager", "?")) for e in meta.get("managedFields") or []
                       if isinstance(e, Mapping)})
    labels = meta.get("labels") or {}
    shown = [f"{k}={labels[k]}" for k in (MANAGED_BY, MESH_LABEL, OWNER_LABEL,
                                          "app.kubernetes.io/instance",
                                          "helm.sh/chart") if k in labels]
    parts = []
    if managers:
        parts.append(f"field managers {', '.join(managers)}")
    if shown:
        parts.append(f"labels {', '.join(shown)}")
    return "; ".join(parts) or "no field managers or owner labels"


def adopts(refs: Collection[str], key: ResourceKey) -> bool:
    """Is ``key`` named in ``refs`` (``Kind/namespace/name`` or ``Kind/name``)?"""
    return object_ref(key.kind, key.namespace, key.name) in refs


@dataclass(frozen=True)
class Refusal:
    key: ResourceKey
    owner: str
    recorded: bool        # in the inventory, but without our labels

    def __str__(self) -> str:
        ref = object_ref(self.key.kind, self.key.namespace, self.key.name)
        why = ("is in the inventory but no longer carries this mesh's labels" if self.recorded
               else "exists and was not created by this mesh")
        return f"{self.key} {why} (owner: {self.owner}); adopt it explicitly with " \
               f"--adopt {ref} or Tenancy(adopt=[{ref!r}]) if this mesh should take it over"


class NotOwnedError(CoreError):
    """Declared objects exist and are not ours: refused before any write."""

    def __init__(self, mesh: str, refusals: Iterable[Refusal]) -> None:
        self.refusals = sorted(refusals, key=lambda r: r.key)
        self.lines = [str(r) for r in self.refusals]
        super().__init__(f"mesh {mesh!r} declares {len(self.lines)} object(s) it does not "
                         "own; nothing was written:\n" + "\n".join(self.lines))

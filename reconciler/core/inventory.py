"""Which live objects belong to a mesh: the inventory record kept in the cluster.

Labels alone cannot answer "is this ours?": anyone can copy a manifest together with its
labels. The inventory alone cannot either: recording a declared object someone else
created would make it ours to prune. So, like Flux's inventory, meshdsl records every
object it applied in a ConfigMap (``meshdsl-inventory-<mesh>`` in ``meshdsl-system``), and
*an object is ours when it is in that record and carries our labels*
(:mod:`reconciler.core.ownership`):

- an object in the inventory with our labels is ours (pruned when the program stops
  declaring it);
- an object in the inventory whose labels someone removed is *disowned*: reported, never
  pruned, never written without an explicit adoption;
- an object that carries our labels but is not in the inventory (hand-copied, or created by
  another tool) is a *stray*: reported, never pruned, never overwritten without consent;
- with no inventory at all (first run, or the record was deleted) nothing is ours to prune.

The record is plain text, one object per line, in Flux's id format
``<namespace>_<name>_<group>_<kind> <version>`` (``_`` cannot occur in any of those parts),
sorted so that the same set always gives the same bytes and an unchanged set costs no write.
A ConfigMap holds up to 1 MiB: about 15,000 entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from meshdsl.compile.manifest import MANAGED_BY, MANAGER, MESH_LABEL, Manifest, ResourceKey
from reconciler.core.errors import InventoryError
from reconciler.core.ownership import DEFAULT_OWNER, is_ours

__all__ = [
    "FORMAT",
    "INVENTORY_NAMESPACE",
    "Entry",
    "Inventory",
    "Ownership",
    "inventory_key",
    "inventory_name",
    "is_labelled",
    "ownership",
]

INVENTORY_NAMESPACE = "meshdsl-system"
FORMAT = "meshdsl.io/inventory-v1"
_ENTRIES = "entries"
_FORMAT = "format"
_MESH = "mesh"


def inventory_name(mesh: str) -> str:
    return f"meshdsl-inventory-{mesh}"


def inventory_key(mesh: str, namespace: str = INVENTORY_NAMESPACE) -> ResourceKey:
    return ResourceKey("", "ConfigMap", namespace, inventory_name(mesh))


def _api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


@dataclass(frozen=True, order=True)
class Entry:
    """One object of the inventory: its identity and the API version it was applied with."""

    key: ResourceKey
    version: str

    @property
    def api_version(self) -> str:
        return _api_version(self.key.group, self.version)

    @classmethod
    def of(cls, manifest: Manifest) -> Entry:
        version = str(manifest.get("apiVersion", "")).rsplit("/", 1)[-1]
        return cls(ResourceKey.of(manifest), version)

    def line(self) -> str:
        k = self.key
        return f"{k.namespace}_{k.name}_{k.group}_{k.kind} {self.version}"

    @classmethod
    def parse(cls, line: str) -> Entry:
        ident, _, version = line.strip().partition(" ")
        parts = ident.split("_")
        if len(parts) != 4 or not version or not parts[1] or not parts[3]:
            raise InventoryError(f"malformed inventory line {line!r}; expected "
                                 "'<namespace>_<name>_<group>_<kind> <version>'")
        namespace, name, group, kind = parts
        return cls(ResourceKey(group, kind, namespace, name), version)


@dataclass(frozen=True)
class Inventory:
    """The set of objects a mesh owns, as recorded in the cluster."""

    mesh: str
    entries: frozenset[Entry]

    @classmethod
    def of(cls, mesh: str, manifests: Iterable[Manifest]) -> Inventory:
        return cls(mesh, frozenset(Entry.of(m) for m in manifests))

    @cached_property
    def keys(self) -> frozenset[ResourceKey]:
        return frozenset(e.key for e in self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self.keys

    def __len__(self) -> int:
        return len(self.entries)

    def api_versions(self) -> dict[ResourceKey, str]:
        return {e.key: e.api_version for e in self.entries}

    def union(self, other: Inventory) -> Inventory:
        """Both sets; an object in both keeps ``other``'s (newer) API version."""
        newer = {e.key: e for e in other.entries}
        kept = {e for e in self.entries if e.key not in newer}
        return Inventory(self.mesh, frozenset(kept | set(newer.values())))

    def to_manifest(self, namespace: str = INVENTORY_NAMESPACE) -> Manifest:
        """The ConfigMap that records this inventory (deterministic bytes)."""
        lines = sorted(e.line() for e in self.entries)
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": inventory_name(self.mesh),
                "namespace": namespace,
                "labels": {MANAGED_BY: MANAGER, MESH_LABEL: self.mesh},
            },
            "data": {
                _FORMAT: FORMAT,
                _MESH: self.mesh,
                _ENTRIES: "".join(f"{line}\n" for line in lines),
            },
        }

    @classmethod
    def from_manifest(cls, configmap: Mapping[str, Any], mesh: str) -> Inventory:
        """Read a recorded inventory; a record of another format or mesh is an error."""
        data = configmap.get("data") or {}
        where = f"ConfigMap {configmap.get('metadata', {}).get('name', '?')}"
        if data.get(_FORMAT) != FORMAT:
            raise InventoryError(f"{where} is not a meshdsl inventory (format "
                                 f"{data.get(_FORMAT)!r}, expected {FORMAT!r})")
        if data.get(_MESH) != mesh:
            raise InventoryError(f"{where} records mesh {data.get(_MESH)!r}, not {mesh!r}")
        text = str(data.get(_ENTRIES) or "")
        entries = frozenset(Entry.parse(line) for line in text.splitlines() if line.strip())
        return cls(mesh, entries)


def is_labelled(manifest: Mapping[str, Any], mesh: str) -> bool:
    """Does the object carry meshdsl's ownership labels for ``mesh``?"""
    labels = (manifest.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(MANAGED_BY) == MANAGER and labels.get(MESH_LABEL) == mesh)


@dataclass(frozen=True)
class Ownership:
    """How the live objects relate to a mesh.

    ``owned``: in the inventory, live and labelled ours — ours to update and to prune.
    ``unlabelled``: in the inventory and live but stripped of our labels — *not* ours any
    more (reported, never pruned). ``gone``: in the inventory but no longer live (deleted by
    someone else). ``strays``: carry our labels, not in the inventory — never pruned.
    """

    owned: frozenset[ResourceKey]
    unlabelled: frozenset[ResourceKey]
    gone: frozenset[ResourceKey]
    strays: frozenset[ResourceKey]


def ownership(inventory: Inventory | None, live: Mapping[ResourceKey, Manifest],
              mesh: str, owner: str = DEFAULT_OWNER) -> Ownership:
    recorded = inventory.keys if inventory is not None else frozenset()
    present = frozenset(k for k in recorded if k in live)
    unlabelled = frozenset(k for k in present if not is_ours(live[k], mesh, owner))
    return Ownership(
        owned=present - unlabelled,
        unlabelled=unlabelled,
        gone=recorded - present,
        strays=frozenset(k for k, obj in live.items()
                         if k not in recorded and is_ours(obj, mesh, owner)),
    )

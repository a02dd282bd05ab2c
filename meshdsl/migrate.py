"""What moving sidecar namespaces to ambient mode would change, and what blocks it.

A migration is computed, never applied: the same program compiled twice — as written and
with the namespaces switched to ``mode="ambient"`` — and the two object sets compared by
:class:`ResourceKey` (removed, added, changed), plus the validator's findings that only
the moved program has. An error among those is a blocker (a fault injection, an
EnvoyFilter rate limit, a selector-based policy…), with the fix the finding names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshdsl.compile import compile_mesh
from meshdsl.compile.manifest import Manifest, ResourceKey
from meshdsl.model.dataplane import DEFAULT_WAYPOINT, NamespaceMode
from meshdsl.model.spec import MeshSpec
from meshdsl.validate import Finding, Severity, validate


class MigrationError(ValueError):
    """The namespaces asked for cannot be moved (unknown, or already ambient)."""


@dataclass(frozen=True)
class Migration:
    namespaces: tuple[str, ...]
    removed: tuple[ResourceKey, ...]
    added: tuple[ResourceKey, ...]
    changed: tuple[ResourceKey, ...]
    findings: tuple[Finding, ...]  # only the moved program has these

    @property
    def blockers(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def ready(self) -> bool:
        return not self.blockers

    def as_dict(self) -> dict[str, object]:
        return {"namespaces": list(self.namespaces), "ready": self.ready,
                "removed": [label(k) for k in self.removed],
                "added": [label(k) for k in self.added],
                "changed": [label(k) for k in self.changed],
                "findings": [f.as_dict() for f in self.findings]}


def sidecar_namespaces(mesh: MeshSpec) -> list[str]:
    """Namespaces that hold services or are declared and still run sidecars."""
    names = {n.name for n in mesh.namespaces} | {s.namespace for s in mesh.services}
    return sorted(n for n in names if not mesh.data_plane.is_ambient(n))


def to_ambient(mesh: MeshSpec, namespaces: Sequence[str], *,
               waypoint: str | None = DEFAULT_WAYPOINT) -> MeshSpec:
    """The same mesh with ``namespaces`` in ambient mode (sidecar injection label dropped)."""
    known = set(sidecar_namespaces(mesh))
    for ns in namespaces:
        if ns not in known:
            state = "already ambient" if mesh.data_plane.is_ambient(ns) else "not in this mesh"
            raise MigrationError(f"namespace {ns!r} is {state}; sidecar namespaces: "
                                 f"{', '.join(sorted(known)) or 'none'}")
    dp = mesh.data_plane
    modes = {**dp.namespaces, **{ns: NamespaceMode(mode="ambient", waypoint=waypoint)
                                 for ns in namespaces}}
    moved = set(namespaces)
    specs = [n.model_copy(update={"labels": {k: v for k, v in n.labels.items()
                                             if k != "istio-injection"}})
             if n.name in moved else n for n in mesh.namespaces]
    moved_dp = dp.model_copy(update={"namespaces": modes})
    return mesh.model_copy(update={"data_plane": moved_dp, "namespaces": specs,
                                   "canaries": moved_dp.judged(mesh.canaries)})


def label(key: ResourceKey) -> str:
    """``Kind/namespace/name``, with the API group when it is not the core one (two kinds
    called Gateway differ only by it)."""
    return f"{key}" if key.group in ("", "apps") else f"{key} ({key.group})"


def _index(manifests: list[Manifest]) -> dict[ResourceKey, Manifest]:
    return {ResourceKey.of(m): m for m in manifests}


def plan(mesh: MeshSpec, namespaces: Sequence[str] = ()) -> Migration:
    """The migration of ``namespaces`` (default: every sidecar namespace) to ambient."""
    chosen = list(namespaces) or sidecar_namespaces(mesh)
    moved = to_ambient(mesh, chosen)
    before, after = _index(compile_mesh(mesh)), _index(compile_mesh(moved))
    existing = set(validate(mesh))
    return Migration(
        namespaces=tuple(chosen),
        removed=tuple(sorted(set(before) - set(after))),
        added=tuple(sorted(set(after) - set(before))),
        changed=tuple(sorted(k for k in set(before) & set(after) if before[k] != after[k])),
        findings=tuple(f for f in validate(moved) if f not in existing))

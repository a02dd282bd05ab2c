"""What merging a change would do to the declared mesh: two compiled revisions compared.

``meshctl plan`` answers a reviewer's question — *what does this pull request change?* —
without a cluster. Unlike :mod:`.plan` (desired vs live, with server defaults and other
field managers to ignore) both sides here are our own compiled output, so the comparison
is exact: every field added, removed or changed, as a path and its two values.

Objects pair by :class:`~meshdsl.compile.manifest.ResourceKey`. Lists compare element by
element when both sides have the same length (a changed weight is one line, not the whole
route list), and whole otherwise. VirtualService routes are also read as *traffic*: per
route (its name, or ``http[i]``), the weight each destination gets, before and after.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from meshdsl.compile.manifest import KIND_ORDER, Manifest, ResourceKey
from reconciler.core import diff

__all__ = ["Change", "FieldChange", "ObjectChange", "WeightShift", "compare_outputs",
           "field_changes", "route_weights", "show", "weight_shifts"]

_VIRTUAL_SERVICE = "VirtualService"


class Change(StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    REMOVED = "removed"


def show(value: Any) -> str:
    """A field value on one line (``(absent)`` for a missing one)."""
    return "(absent)" if value is diff.MISSING else json.dumps(
        value, sort_keys=True, separators=(", ", ": "), default=str)


@dataclass(frozen=True)
class FieldChange:
    """One field: ``before``/``after`` are :data:`~reconciler.core.diff.MISSING` when absent."""

    path: str
    before: Any
    after: Any

    def __str__(self) -> str:
        return f"{self.path}: {show(self.before)} -> {show(self.after)}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        if self.before is not diff.MISSING:
            out["before"] = self.before
        if self.after is not diff.MISSING:
            out["after"] = self.after
        return out


@dataclass(frozen=True)
class ObjectChange:
    change: Change
    key: ResourceKey
    fields: tuple[FieldChange, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"change": self.change.value, "object": str(self.key), "kind": self.key.kind,
                "namespace": self.key.namespace, "name": self.key.name,
                "fields": [f.to_json() for f in self.fields]}


@dataclass(frozen=True)
class WeightShift:
    """The split of one route before and after (an empty side: the route is new or gone)."""

    virtual_service: ResourceKey
    route: str
    before: Mapping[str, int]
    after: Mapping[str, int]

    def __str__(self) -> str:
        def show(weights: Mapping[str, int]) -> str:
            return ", ".join(f"{d} {w}%" for d, w in weights.items()) or "(no route)"
        return (f"{self.virtual_service.namespace}/{self.virtual_service.name} {self.route}: "
                f"{show(self.before)} -> {show(self.after)}")

    def to_json(self) -> dict[str, Any]:
        return {"virtual_service": str(self.virtual_service), "route": self.route,
                "before": dict(self.before), "after": dict(self.after)}


def _walk(before: Any, after: Any, path: diff.FieldPath) -> Iterator[FieldChange]:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted(set(before) | set(after), key=str):
            yield from _walk(before.get(key, diff.MISSING), after.get(key, diff.MISSING),
                             (*path, str(key)))
    elif (isinstance(before, list) and isinstance(after, list)
          and len(before) == len(after)):
        for index, (b, a) in enumerate(zip(before, after, strict=True)):
            yield from _walk_index(b, a, path, index)
    elif (before is diff.MISSING or after is diff.MISSING
          or not diff.scalar_equal(before, after)):
        yield FieldChange(diff.dotted(path), before, after)


def _walk_index(before: Any, after: Any, path: diff.FieldPath, index: int
                ) -> Iterator[FieldChange]:
    for change in _walk(before, after, ()):
        suffix = change.path
        yield FieldChange(f"{diff.dotted(path)}[{index}]{suffix}", change.before, change.after)


def field_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldChange]:
    """Every leaf that differs between two manifests (server metadata and the hash
    annotation ignored), in a stable order."""
    return list(_walk(diff.normalize(before), diff.normalize(after), ()))


def _label(destination: Mapping[str, Any]) -> str:
    host = str(destination.get("host", "?")).split(".", 1)[0]
    subset = destination.get("subset")
    port = (destination.get("port") or {}).get("number")
    return host + (f"/{subset}" if subset else "") + (f":{port}" if port else "")


def route_weights(virtual_service: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per HTTP route (its name, else ``http[i]``), destination → weight (%)."""
    out: dict[str, dict[str, int]] = {}
    routes = (virtual_service.get("spec") or {}).get("http") or []
    for index, route in enumerate(routes):
        if not isinstance(route, Mapping):
            continue
        name = str(route.get("name") or f"http[{index}]")
        targets = [r for r in route.get("route") or [] if isinstance(r, Mapping)]
        weights: dict[str, int] = {}
        for target in targets:
            label = _label(target.get("destination") or {})
            default = 100 if len(targets) == 1 else 0
            weights[label] = weights.get(label, 0) + int(target.get("weight", default))
        out[name] = weights
    return out


def weight_shifts(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
                  ) -> list[WeightShift]:
    """Routes whose split differs between two versions of one VirtualService."""
    source = after if after is not None else before
    if source is None:
        return []
    key = ResourceKey.of(dict(source))
    old = route_weights(before) if before is not None else {}
    new = route_weights(after) if after is not None else {}
    shifts = []
    for name in [*old, *(n for n in new if n not in old)]:
        if old.get(name, {}) != new.get(name, {}):
            shifts.append(WeightShift(key, name, old.get(name, {}), new.get(name, {})))
    return shifts


def _order(key: ResourceKey) -> tuple[int, ResourceKey]:
    return KIND_ORDER.get(key.kind, 50), key


def _index(manifests: Sequence[Manifest]) -> dict[ResourceKey, Manifest]:
    return {ResourceKey.of(m): m for m in manifests}


def compare_outputs(base: Sequence[Manifest], head: Sequence[Manifest]
                    ) -> tuple[list[ObjectChange], list[WeightShift]]:
    """Objects added, changed and removed from ``base`` to ``head`` (in apply order), and
    the traffic shifts of their VirtualServices."""
    old, new = _index(base), _index(head)
    changes: list[ObjectChange] = []
    shifts: list[WeightShift] = []
    for key in sorted(old.keys() | new.keys(), key=_order):
        before, after = old.get(key), new.get(key)
        if before is None:
            changes.append(ObjectChange(Change.ADDED, key))
        elif after is None:
            changes.append(ObjectChange(Change.REMOVED, key))
        else:
            fields = field_changes(before, after)
            if fields:
                changes.append(ObjectChange(Change.CHANGED, key, tuple(fields)))
        if key.kind == _VIRTUAL_SERVICE:
            shifts += weight_shifts(before, after)
    return changes, shifts

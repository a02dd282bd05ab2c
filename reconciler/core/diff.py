"""What differs between a desired manifest and its live object — without false alarms.

A live object is never equal to what we sent: the server adds fields it owns
(``resourceVersion``, ``uid``, ``managedFields``, ``status``…) and defaults (a Service port's
``protocol: TCP``, a Deployment's ``strategy``…). So the comparison is a *subset* check:
every field we set must have the same value live; fields we did not set are the server's.

A subset check alone cannot see a field we *stopped* setting (it is simply absent from the
desired side). So each applied object carries ``meshdsl.io/desired-hash``, a hash of the
manifest we applied: a different hash means the program changed; the same hash with a
failing subset check means someone else changed the object (drift). Fields another field
manager *added* under ``spec`` are found in ``metadata.managedFields``; a server-side apply
cannot remove those (they are not ours), so healing removes them with a JSON patch.

For people, :func:`unified` renders a coloured-ready unified diff of two objects as YAML,
after :func:`normalize` dropped the server-owned fields.
"""

from __future__ import annotations

import base64
import copy
import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import yaml

from meshdsl.compile.manifest import DESIRED_HASH, LAST_APPLIED, SERVER_METADATA, Manifest

__all__ = [
    "DESIRED_HASH",
    "MISSING",
    "Comparison",
    "FieldPath",
    "Mismatch",
    "ObjectState",
    "applied_hash",
    "as_stored",
    "compare",
    "desired_hash",
    "dotted",
    "empty",
    "foreign_fields",
    "mismatches",
    "normalize",
    "outermost",
    "pointer",
    "scalar_equal",
    "stamped",
    "unified",
    "value_at",
]

# annotations that only add noise to a human diff
NOISY_ANNOTATIONS = (DESIRED_HASH, LAST_APPLIED)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


def desired_hash(manifest: Mapping[str, Any]) -> str:
    """A stable hash of a manifest (ignoring its own hash annotation)."""
    body = dict(manifest)
    meta = dict(body.get("metadata") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k != DESIRED_HASH}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    body["metadata"] = meta
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def stamped(manifest: Mapping[str, Any]) -> Manifest:
    """A copy of ``manifest`` carrying its :data:`DESIRED_HASH` annotation."""
    out = dict(manifest)
    meta = dict(out.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}),
                           DESIRED_HASH: desired_hash(manifest)}
    out["metadata"] = meta
    return out


def applied_hash(live: Mapping[str, Any]) -> str | None:
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(DESIRED_HASH)
    return str(value) if value is not None else None


@dataclass(frozen=True)
class Mismatch:
    """A field we set whose live value differs (``got`` is :data:`MISSING` when absent)."""

    path: str
    want: Any
    got: Any

    def __str__(self) -> str:
        got = "absent" if self.got is MISSING else json.dumps(self.got, default=str)
        return f"{self.path}: want {json.dumps(self.want, default=str)}, live {got}"


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if _PLAIN_KEY.match(key) else f"{path}[{json.dumps(key)}]"


def empty(value: Any) -> bool:
    """None, ``""``, ``{}`` or ``[]`` — what the server may drop instead of storing (Go's
    ``omitempty`` drops an empty string: a Deployment's ``serviceAccountName: ""``)."""
    return value is None or (not value and isinstance(value, str | dict | list))


def as_stored(desired: Mapping[str, Any]) -> Mapping[str, Any]:
    """What the server keeps of what we send, where that is not the same fields: a
    Secret's write-only ``stringData`` is stored base64-encoded in ``data`` (and wins over
    a ``data`` key of the same name), and ``apiVersion`` is no field: a target reads an
    object in the version it prefers, which need not be the one it was written in (a
    ``ReferenceGrant`` applied as ``v1beta1`` reads back as ``v1``)."""
    out = {k: v for k, v in desired.items() if k != "apiVersion"}
    plain = out.pop("stringData", None) if desired.get("kind") == "Secret" else None
    if isinstance(plain, Mapping):
        data = dict(out.get("data") or {})
        data.update({key: base64.b64encode(str(value).encode()).decode()
                     for key, value in plain.items()})
        out["data"] = data
    return out


def scalar_equal(want: Any, got: Any) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return type(want) is type(got) and want == got
    return bool(want == got)


def _subset(want: Any, got: Any, path: str, out: list[Mismatch]) -> None:
    if isinstance(want, Mapping):
        if not isinstance(got, Mapping):
            out.append(Mismatch(path, want, got))
            return
        for key, value in want.items():
            if key not in got:
                # the server drops empty maps/lists and nulls; absent is what we asked for
                if not empty(value):
                    out.append(Mismatch(_child(path, key), value, MISSING))
                continue
            if value is None:
                out.append(Mismatch(_child(path, key), None, got[key]))
                continue
            _subset(value, got[key], _child(path, key), out)
    elif isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            out.append(Mismatch(path, want, got))
            return
        for index, (w, g) in enumerate(zip(want, got, strict=True)):
            _subset(w, g, f"{path}[{index}]", out)
    elif not scalar_equal(want, got):
        out.append(Mismatch(path, want, got))


def _contains(want: Any, got: Any) -> bool:
    """The fast yes/no form of :func:`_subset`, for JSON-decoded dicts and lists."""
    kind = type(want)
    if kind is dict:
        if type(got) is not dict:
            return False
        for key, value in want.items():
            if key not in got:
                if not empty(value):
                    return False
            elif value is None or not _contains(value, got[key]):
                return False
        return True
    if kind is list:
        return (type(got) is list and len(got) == len(want)
                and all(_contains(w, g) for w, g in zip(want, got, strict=True)))
    if kind is not str and isinstance(want, Mapping | list):  # other Mapping types
        found: list[Mismatch] = []
        _subset(want, got, "", found)
        return not found
    return scalar_equal(want, got)


def mismatches(desired: Mapping[str, Any], live: Mapping[str, Any]) -> list[Mismatch]:
    """Fields of ``desired`` whose live value differs; extra live fields are ignored.

    Lists must have the same length and match element by element (a list we set is ours
    as a whole); maps only need to contain what we set. ``desired`` is read
    :func:`as_stored`.
    """
    desired = as_stored(desired)
    if _contains(desired, live):  # the common case, without building paths
        return []
    out: list[Mismatch] = []
    _subset(desired, live, "", out)
    return out


def _field_paths(fields: Mapping[str, Any], prefix: tuple[str, ...]
                 ) -> Iterator[tuple[str, ...]]:
    """Leaf paths of a ``fieldsV1`` tree; a list element (``k:``/``v:``/``i:``) ends a path
    at its list, since lists we set are compared whole."""
    leaf = True
    for name, sub in fields.items():
        if name == ".":
            continue
        if not name.startswith("f:"):
            yield prefix
            return
        leaf = False
        yield from _field_paths(sub or {}, (*prefix, name[2:]))
    if leaf:
        yield prefix


def _declared(desired: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = desired
    for part in path:
        if isinstance(node, list):
            return True
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


FieldPath = tuple[str, ...]


def dotted(path: FieldPath) -> str:
    """``("spec", "exportTo")`` as ``.spec.exportTo`` (for people)."""
    out = ""
    for part in path:
        out = _child(out, part)
    return out


def pointer(path: FieldPath) -> str:
    """``("spec", "exportTo")`` as the JSON pointer ``/spec/exportTo`` (RFC 6901)."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in path)


def value_at(obj: Mapping[str, Any], path: FieldPath) -> Any:
    node: Any = obj
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return MISSING
        node = node[part]
    return node


def foreign_fields(live: Mapping[str, Any], desired: Mapping[str, Any], *,
                   manager: str) -> dict[str, list[FieldPath]]:
    """Fields under ``spec`` that another field manager set and we do not declare.

    Such additions survive a server-side apply (it only removes fields *we* stopped
    setting), so they are drift of their own, reported by manager name.
    """
    found: dict[str, set[FieldPath]] = {}
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        who = str(entry.get("manager", "?"))
        if who == manager:
            continue
        spec = (entry.get("fieldsV1") or {}).get("f:spec")
        if not isinstance(spec, Mapping):
            continue
        for path in _field_paths(spec, ("spec",)):
            if not _declared(desired, path) and value_at(live, path) is not MISSING:
                found.setdefault(who, set()).add(path)
    return {who: sorted(paths) for who, paths in sorted(found.items())}


def outermost(paths: Iterable[FieldPath]) -> list[FieldPath]:
    """Drop paths inside others (removing ``.spec.tls`` removes ``.spec.tls.mode``)."""
    ordered = sorted(set(paths))
    out: list[FieldPath] = []
    for path in ordered:
        if not any(path[:len(p)] == p for p in out):
            out.append(path)
    return out


class ObjectState(StrEnum):
    NEW = "new"                # not live
    SAME = "same"              # live matches what we last applied, and that is still desired
    CHANGED = "changed"        # the program changed since the last apply
    DRIFTED = "drifted"        # unchanged program, but someone changed the live object


@dataclass(frozen=True)
class Comparison:
    state: ObjectState
    mismatches: tuple[Mismatch, ...] = ()
    foreign: dict[str, list[FieldPath]] = field(default_factory=dict)


def compare(desired: Mapping[str, Any], live: Mapping[str, Any] | None, *,
            manager: str) -> Comparison:
    """Classify one object, field by field; ``desired`` is :func:`stamped`. (When
    :func:`reconciler.core.proof.settled` holds, this is not needed: it is the same.)"""
    if live is None:
        return Comparison(ObjectState.NEW)
    want = applied_hash(desired)
    foreign = foreign_fields(live, desired, manager=manager)
    if want is None or applied_hash(live) != want:
        return Comparison(ObjectState.CHANGED, foreign=foreign)
    found = tuple(mismatches(desired, live))
    if found or foreign:
        return Comparison(ObjectState.DRIFTED, found, foreign)
    return Comparison(ObjectState.SAME)


def normalize(obj: Mapping[str, Any] | None) -> Manifest:
    """A copy for people to read: no server-owned metadata, no status, no hash annotation."""
    if obj is None:
        return {}
    out: dict[str, Any] = copy.deepcopy(dict(obj))
    out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for key in SERVER_METADATA:
            meta.pop(key, None)
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                       if k not in NOISY_ANNOTATIONS}
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
    return out


def _yaml_lines(obj: Mapping[str, Any]) -> list[str]:
    if not obj:
        return []
    text = yaml.safe_dump(dict(obj), sort_keys=True, default_flow_style=False,
                          allow_unicode=True, width=1000)
    return text.splitlines()


def unified(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, *,
            name: str, context: int = 3) -> list[str]:
    """``kubectl diff``-style unified diff lines (``---``/``+++``/``@@``/``+``/``-``).

    Both sides go through :func:`normalize`; an empty list means no visible difference.
    """
    return list(difflib.unified_diff(
        _yaml_lines(normalize(before)), _yaml_lines(normalize(after)),
        fromfile=f"live/{name}", tofile=f"desired/{name}", n=context, lineterm=""))

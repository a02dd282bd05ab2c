"""Which input objects a generated program does not reproduce, and which to carry raw.

Reading an ambient namespace back (``gateway_api``) is an inverse of the compiler, so it
can be wrong about an object the compiler would write differently, or not at all. Rather
than give up on the whole import, the caller renders the program and compares it with
the input object by object (:func:`mismatches`); :func:`culprits` names the input objects
to carry through ``mesh.raw`` instead, each with the reason, and the caller imports again
until the program renders the input exactly. An object the program renders differently,
or not at all, is its own culprit. An object the program renders although the input does
not have it was written by the compiler from others: the routes named like it (a
TCPRoute ``<route>-1``, a Gateway's ``<gateway>-https-redirect``), the routes of the
namespace a ``from-<namespace>`` ReferenceGrant admits, the policies beside a
``<waypoint>-only``, or the objects that name the Service or DestinationRule it is.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from meshdsl.compile.compare import normalize
from meshdsl.compile.manifest import Manifest
from meshdsl.importer.fields import most_precise, tree_diff
from meshdsl.importer.manifests import dotted, resource
from meshdsl.importer.to_model import ImportResult
from meshdsl.importer.yamlsource import Document
from meshdsl.model.dataplane import DataPlane

Key = tuple[str, str, str, str]  # apiVersion (a group for Istio and Gateway API), kind, ns, name
_ROUTES = ("HTTPRoute", "GRPCRoute", "TCPRoute")
_UNASKED = "the program would render it, the input does not have it"


@dataclass(frozen=True)
class Mismatch:
    """One object of the input the program does not reproduce (``extra``: one it renders
    that the input does not have)."""

    key: Key
    reason: str
    extra: bool = False


def key_of(manifest: Manifest) -> Key:
    m = normalize(manifest)
    meta = m["metadata"]
    return (str(m.get("apiVersion")), str(m.get("kind")), str(meta.get("namespace") or ""),
            str(meta.get("name")))


def _by_key(manifests: Sequence[Manifest]) -> dict[Key, list[Manifest]]:
    out: dict[Key, list[Manifest]] = {}
    for m in manifests:
        out.setdefault(key_of(m), []).append(normalize(m))
    return out


def _difference(want: Manifest, got: Manifest) -> str:
    problems = most_precise(tree_diff(want, got))
    if not problems:
        return "the program would not reproduce it"
    path, reason = problems[0]
    return f"the program would not reproduce {dotted(path) or 'it'} ({reason})"


def mismatches(expected: Sequence[Manifest], rendered: Sequence[Manifest]) -> list[Mismatch]:
    """The objects where ``rendered`` differs from ``expected`` (both with namespaces
    filled in); [] when every object is reproduced exactly, and nothing more."""
    want, got = _by_key(expected), _by_key(rendered)
    out = []
    for key, wanted in want.items():
        left = list(got.get(key, []))
        unmatched = []
        for m in wanted:
            if m in left:
                left.remove(m)
            else:
                unmatched.append(m)
        for m in unmatched:
            reason = _difference(m, left.pop(0)) if left else "the program would not render it"
            out.append(Mismatch(key, reason))
        out += [Mismatch(key, "the program would render it twice", extra=True) for _ in left]
    out += [Mismatch(key, _UNASKED, extra=True) for key, items in got.items()
            if key not in want for _ in items]
    return out


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def _names_service(m: Manifest, name: str, namespace: str) -> bool:
    """Whether ``m`` names the Service ``name`` of ``namespace`` anywhere in its spec (a
    parent, backend, target or host)."""
    ns = str(m["metadata"].get("namespace", ""))
    here = {name, f"{name}.{namespace}"} | {f"{name}.{namespace}.svc{rest}" for rest in (
        "", ".cluster.local")}
    return any(s in here and (ns == namespace or "." in s) for s in _strings(m.get("spec")))


def _writes(m: Manifest, key: Key) -> bool:
    """Whether the compiler writes the object ``key`` from the input object ``m``."""
    _, kind, ns, name = key
    m_kind, m_ns = m.get("kind"), str(m["metadata"].get("namespace", ""))
    m_name = str(m["metadata"].get("name"))
    if kind in _ROUTES:
        return m_ns == ns and (
            (m_kind in _ROUTES and m_name == re.sub(r"-[0-9]+$", "", name))
            or (m_kind == "Gateway" and name == f"{m_name}-https-redirect"))
    if kind == "ReferenceGrant":
        return m_kind in _ROUTES and name == f"from-{m_ns}" and ns in set(
            _strings(m.get("spec")))
    if kind == "AuthorizationPolicy":
        return m_kind == kind and m_ns == ns and name.endswith("-only")
    if kind == "Service":
        return m_kind != "Service" and _names_service(m, name, ns)
    if kind == "DestinationRule":
        return m_kind == kind and m_ns == ns and name.startswith(f"{m_name}-")
    return False


def _ref(key: Key) -> str:
    _, kind, ns, name = key
    return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"


def culprits(found: Sequence[Mismatch], inputs: Sequence[Manifest],
             raw: Collection[int]) -> dict[int, str]:
    """Input objects (by index in ``inputs``, namespaces filled in) to carry raw so that
    the program stops differing, with why; none already in ``raw``."""
    keys = [key_of(m) for m in inputs]
    out: dict[int, str] = {}
    for miss in found:
        if not miss.extra:
            blamed = [(i, miss.reason) for i, k in enumerate(keys) if k == miss.key]
        else:
            why = (f"the program would also render {_ref(miss.key)}, which the input does "
                   "not have" if miss.reason == _UNASKED else f"{_ref(miss.key)}: {miss.reason}")
            blamed = [(i, why) for i, m in enumerate(inputs) if _writes(m, miss.key)]
        for i, why in blamed:
            if i not in raw:
                out.setdefault(i, why)
    return out


def describe(found: Sequence[Mismatch]) -> str:
    """What the program does not reproduce, for a message (the first three)."""
    parts = [f"{_ref(m.key)}: {m.reason}" for m in found[:3]]
    return "; ".join(parts) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")


class Rounds:
    """The objects carried raw, round after round of importing and comparing.

    An object that was reproduced in the previous round and no longer is depends on
    those carried raw since (a Gateway admits routes from other namespaces only while
    such a route is typed, ``<waypoint>-only`` exists only beside typed policies): its
    reason says so."""

    def __init__(self, inputs: Sequence[Manifest]) -> None:
        self.inputs = inputs
        self.keys = [key_of(m) for m in inputs]
        self.missed: set[Key] = set()
        self.carried: set[int] = set()

    def next(self, found: Sequence[Mismatch], raw: Mapping[int, str]) -> dict[int, str] | None:
        """What to carry raw in the next round (``raw``: in this one), or None when no
        object is left to blame."""
        since = sorted(set(raw) - self.carried)
        blamed = culprits(found, self.inputs, raw)
        if since and self.missed:
            cause = " and ".join(_ref(self.keys[i]) for i in since[:3])
            cause += f" and {len(since) - 3} more" if len(since) > 3 else ""
            verb = "is" if len(since) == 1 else "are"
            blamed = {i: why if self.keys[i] in self.missed else
                      f"{why}, once {cause} {verb} carried raw" for i, why in blamed.items()}
        self.missed = {m.key for m in found}
        self.carried = set(raw)
        return {**raw, **blamed} if blamed else None


def carried_raw(result: ImportResult, documents: Sequence[Document],
                inputs: Sequence[Manifest], raw: Mapping[int, str], data_plane: DataPlane
                ) -> ImportResult:
    """``result``, the import of the documents not in ``raw``, completed: the ambient
    namespaces declared, each document of ``raw`` carried through ``mesh.raw`` with one
    warning saying why, and all of ``inputs`` (the cleaned documents) to be rendered."""
    warnings, notes, manifests = [], [], []
    for i, why in sorted(raw.items()):
        res = resource(documents[i], result.namespace)
        warnings.append(res.warning((), f"{why}; carried through unchanged (mesh.raw)"))
        notes.append(f"{res.ref}: {why}")
        manifests.append(inputs[i])
    spec = result.spec.model_copy(update={"data_plane": data_plane,
                                          "raw": [*result.spec.raw, *manifests]})
    return replace(result, spec=spec, manifests=tuple(inputs),
                   warnings=(*result.warnings, *warnings), notes=(*result.notes, *notes))

"""Semantic equality of manifests: what "compiles to the same YAML" means.

Two manifests are the same when their kind, API group, name, namespace and content match
after removing meshdsl's ownership labels and the fields equal to the API server's
defaults (:mod:`meshdsl.compile.defaults`), so a live object equals what was applied. Istio API versions of one group share one
schema (v1alpha3, v1beta1 and v1 are the same structure), so only the group is compared.
A manifest without a namespace takes the one of the context it is applied in, so it
matches any namespace.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from meshdsl.compile.defaults import without_defaults
from meshdsl.compile.manifest import MANAGED_BY, MESH_LABEL, Manifest

_ISTIO_GROUPS = ("networking.istio.io", "security.istio.io", "telemetry.istio.io",
                 "gateway.networking.k8s.io")  # served versions of one stored object


def normalize(manifest: Manifest) -> Manifest:
    """A copy without ownership labels and without the fields equal to the API server's
    defaults (``meshdsl.compile.defaults``), with Istio API versions reduced to their
    group."""
    out: dict[str, Any] = without_defaults(dict(manifest))
    api = str(out.get("apiVersion", ""))
    group = api.rsplit("/", 1)[0]
    if group in _ISTIO_GROUPS:
        out["apiVersion"] = group
    meta = out.get("metadata") or {}
    out["metadata"] = meta
    labels = {k: v for k, v in (meta.get("labels") or {}).items()
              if k not in (MANAGED_BY, MESH_LABEL)}
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    return out


def _identity(m: Manifest) -> tuple[str, str, str]:
    return (str(m.get("apiVersion")), str(m.get("kind")), str(m["metadata"].get("name")))


def differences(expected: Iterable[Manifest], actual: Iterable[Manifest]) -> list[str]:
    """Human-readable differences; an empty list means semantically equal."""
    exp = [normalize(m) for m in expected]
    act = [normalize(m) for m in actual]
    problems: list[str] = []
    unmatched = list(act)
    for want in exp:
        ns = want["metadata"].get("namespace")
        candidates = [m for m in unmatched if _identity(m) == _identity(want)
                      and (ns is None or m["metadata"].get("namespace") == ns)]
        if not candidates:
            problems.append(f"missing: {want['kind']}/{want['metadata'].get('name')}")
            continue
        got = candidates[0]
        unmatched.remove(got)
        got_cmp = copy.deepcopy(got)
        if ns is None:
            got_cmp["metadata"].pop("namespace", None)
        if got_cmp != want:
            problems.append(f"differs: {want['kind']}/{want['metadata'].get('name')}\n"
                            f"  expected: {want}\n  actual:   {got_cmp}")
    problems += [f"unexpected: {m['kind']}/{m['metadata'].get('name')}" for m in unmatched]
    return problems

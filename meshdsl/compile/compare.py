"""Semantic equality of manifests: what "compiles to the same YAML" means.

Two manifests are the same when their kind, API group, name, namespace and content match
after removing meshdsl's ownership labels. Istio API versions of one group share one
schema (v1alpha3, v1beta1 and v1 are the same structure), so only the group is compared.
A manifest without a namespace takes the one of the context it is applied in, so it
matches any namespace.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from meshdsl.compile.manifest import MANAGED_BY, MESH_LABEL, Manifest

_ISTIO_GROUPS = ("networking.istio.io", "security.istio.io", "telemetry.istio.io",
                 "gateway.networking.k8s.io")  # served versions of one stored object


def _field_refs(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``fieldRef`` of every env variable of a Deployment's containers."""
    spec = deployment.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    pod = template.get("spec") if isinstance(template, dict) else None
    containers = pod.get("containers") if isinstance(pod, dict) else None
    out = []
    for container in containers if isinstance(containers, list) else []:
        env = container.get("env") if isinstance(container, dict) else None
        for var in env if isinstance(env, list) else []:
            source = var.get("valueFrom") if isinstance(var, dict) else None
            ref = source.get("fieldRef") if isinstance(source, dict) else None
            if isinstance(ref, dict):
                out.append(ref)
    return out


def normalize(manifest: Manifest) -> Manifest:
    """A copy without ownership labels, with Istio API versions reduced to their group and
    the server's defaults that we emit explicitly filled in."""
    out: dict[str, Any] = copy.deepcopy(dict(manifest))
    api = str(out.get("apiVersion", ""))
    group = api.rsplit("/", 1)[0]
    if group in _ISTIO_GROUPS:
        out["apiVersion"] = group
    if out.get("kind") == "Service" and api == "v1":
        for port in (out.get("spec") or {}).get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")  # the API server's default
    if out.get("kind") == "Deployment":
        for ref in _field_refs(out):
            ref.setdefault("apiVersion", "v1")  # the API server's default
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

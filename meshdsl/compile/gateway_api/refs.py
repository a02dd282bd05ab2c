"""How the classic model's names become Gateway API references.

A route's parent is the Service it routes for (in-mesh, ``group: ""``) or the Gateway it
is bound to (ingress); a destination is a ``backendRef`` to a Service — to
``<service>-<version>`` when the destination names a version, because HTTPRoute has no
subsets and Istio's ambient mode routes versions through one Service per version.
Durations are rewritten into the Gateway API's narrower syntax (GEP-2257: whole numbers of
h, m, s or ms), so ``1.5s`` becomes ``1500ms``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from meshdsl.model.routing import Destination
from meshdsl.model.spec import MeshSpec

GROUP = "gateway.networking.k8s.io"
API = f"{GROUP}/v1"
SECURITY = "security.istio.io/v1"
NETWORKING = "networking.istio.io/v1"

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|us|µs|ns)")
_MS = {"h": 3_600_000.0, "m": 60_000.0, "s": 1000.0, "ms": 1.0, "us": 1e-3, "µs": 1e-3,
       "ns": 1e-6}
_GEP_2257 = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")


def version_service(service: str, version: str) -> str:
    """The Service that selects one version: ``reviews-v1``."""
    return f"{service}-{version}"


def millis(text: str) -> int | None:
    """Whole milliseconds of a duration (rounded up), None when malformed."""
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return int(-(-sum(float(n) * _MS[u] for n, u in parts) // 1))


def duration(text: str) -> str:
    """A duration the Gateway API accepts: unchanged when it already is one, else whole
    milliseconds (rounded up, so a timeout never becomes shorter)."""
    total = None if _GEP_2257.match(text) else millis(text)
    if total is None:
        return text  # already fine, or malformed: the validator reports that (MD109)
    return f"{total}ms" if total < 100_000 else f"{-(-total // 1000)}s"


@dataclass(frozen=True)
class Backend:
    """A destination resolved against the mesh: the Service object it names."""

    namespace: str
    name: str
    port: int | None
    known: bool

    def ref(self, route_namespace: str, weight: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.namespace != route_namespace:
            out["namespace"] = self.namespace
        if self.port is not None:
            out["port"] = self.port
        if weight is not None:
            out["weight"] = weight
        return out


def backend(mesh: MeshSpec, dest: Destination, namespace: str) -> Backend:
    ns, name = mesh.resolve_host(dest.host, namespace)
    svc = mesh.service(ns, name) if ns else None
    port = dest.port
    if port is None and svc is not None and svc.ports:
        port = svc.ports[0].number
    target = name if dest.subset is None else version_service(name, dest.subset)
    return Backend(namespace=ns or namespace, name=target, port=port, known=svc is not None)


def service_parent(name: str, namespace: str, route_namespace: str,
                   port: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"group": "", "kind": "Service", "name": name}
    if namespace != route_namespace:
        out["namespace"] = namespace
    if port is not None:
        out["port"] = port
    return out


def gateway_parent(ref: str, route_namespace: str) -> dict[str, Any]:
    """An Istio-style gateway reference (``name`` or ``namespace/name``) as a parentRef."""
    ns, _, name = ref.rpartition("/")
    out: dict[str, Any] = {"group": GROUP, "kind": "Gateway", "name": name}
    if ns and ns != route_namespace:
        out["namespace"] = ns
    return out


def obj(api: str, kind: str, name: str, namespace: str | None, labels: dict[str, str],
        spec: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}

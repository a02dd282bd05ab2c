"""Where in the program each compiled object was declared.

A compiled object is named after the model object it comes from (a VirtualService after
its ``Routes``, a Deployment after its service and version), so (kind, namespace, name)
leads back to the user's line; inside a VirtualService the route's own line is closer
to the problem than the service's, so a path under ``spec.http[i]`` points there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from meshdsl.model.base import Declared, SourceLocation
from meshdsl.model.spec import MeshSpec

Key = tuple[str, str, str]


@dataclass(frozen=True)
class Located:
    """An object's line, and the lines of its HTTP/TCP routes when it is a VirtualService."""

    source: SourceLocation | None
    routes: dict[str, Sequence[SourceLocation | None]] = field(default_factory=dict)

    def at(self, path: tuple[str | int, ...]) -> SourceLocation | None:
        if len(path) >= 3 and path[0] == "spec" and isinstance(path[2], int):
            lines = self.routes.get(str(path[1]), ())
            if path[2] < len(lines) and lines[path[2]] is not None:
                return lines[path[2]]
        return self.source


def locate(spec: MeshSpec) -> dict[Key, Located]:
    """(kind, namespace, name) of every typed object the program compiles to -> its lines."""
    out: dict[Key, Located] = {}
    for ns in spec.namespaces:
        out[("Namespace", "", ns.name)] = Located(ns.source)
    for svc in spec.services:
        out[("Service", svc.namespace, svc.name)] = Located(svc.source)
        if svc.service_account:
            out[("ServiceAccount", svc.namespace, svc.account)] = Located(svc.source)
        for wl in svc.workloads:
            out[("Deployment", svc.namespace, f"{svc.name}-{wl.version}")] = \
                Located(wl.source or svc.source)
    for vs in spec.virtual_services:
        out[("VirtualService", vs.namespace, vs.name)] = Located(
            vs.source, {"http": [r.source for r in vs.http],
                        "tcp": [r.source for r in vs.tcp]})
    simple: list[tuple[str, Sequence[Declared]]] = [
        ("DestinationRule", spec.destination_rules), ("Gateway", spec.gateways),
        ("PeerAuthentication", spec.peer_authentications),
        ("AuthorizationPolicy", spec.authorization_policies),
        ("EnvoyFilter", spec.rate_limits), ("ServiceEntry", spec.service_entries),
        ("WorkloadEntry", spec.workload_entries)]
    for kind, objects in simple:
        for obj in objects:
            out[(kind, getattr(obj, "namespace", ""), getattr(obj, "name", ""))] = \
                Located(obj.source)
    return out

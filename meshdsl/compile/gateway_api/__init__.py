"""Compile the ambient namespaces of a mesh to the Gateway API and Istio's ambient objects.

``compile_mesh`` (``meshdsl.compile``) hands the ambient part here and compiles the rest
as before, so a mesh without ambient namespaces is byte-for-byte what it always was:

- :func:`classic_part` — the mesh without what lives in ambient namespaces;
- :func:`compile_ambient` — for those namespaces: Namespaces with the ambient labels,
  Services (one more per version), Deployments, DestinationRules without subsets, the
  waypoint Gateway, HTTPRoute/GRPCRoute/TCPRoute instead of VirtualServices (canary
  weights from ``weights`` land on backendRefs), ingress Gateways of class ``istio``,
  ReferenceGrants for routes that cross namespaces, AuthorizationPolicies with
  ``targetRefs`` and the policy that keeps callers from skipping the waypoint.

An object belongs to the namespace it is declared in. What the Gateway API cannot say
(faults, negative header matches, EnvoyFilter rate limits…) is left out here and
reported as an error by ``meshdsl.validate.ambient`` first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshdsl.compile import istio, kube
from meshdsl.compile.gateway_api import ingress, routes, security, workloads
from meshdsl.model.spec import MeshSpec

Manifest = dict[str, Any]
Weights = Mapping[tuple[str, str], Mapping[str, int]]

__all__ = ["classic_part", "compile_ambient"]


def classic_part(mesh: MeshSpec) -> MeshSpec:
    """The mesh without the objects of its ambient namespaces (raw manifests stay)."""
    dp = mesh.data_plane

    def keep(items: list[Any]) -> list[Any]:
        return [x for x in items if not dp.is_ambient(x.namespace)]

    return mesh.model_copy(update={
        "namespaces": [n for n in mesh.namespaces if not dp.is_ambient(n.name)],
        "services": keep(mesh.services), "virtual_services": keep(mesh.virtual_services),
        "destination_rules": keep(mesh.destination_rules), "gateways": keep(mesh.gateways),
        "peer_authentications": keep(mesh.peer_authentications),
        "authorization_policies": keep(mesh.authorization_policies),
        "rate_limits": keep(mesh.rate_limits),
    })


def _waypoints(mesh: MeshSpec) -> list[tuple[str, str]]:
    """(namespace, waypoint) of every ambient namespace that is declared or holds services."""
    dp = mesh.data_plane
    names = {n.name for n in mesh.namespaces} | {s.namespace for s in mesh.services}
    found = [(ns, dp.waypoint_of(ns)) for ns in sorted(names) if dp.is_ambient(ns)]
    return [(ns, wp) for ns, wp in found if wp is not None]


def compile_ambient(mesh: MeshSpec, owned: dict[str, str], *,
                    weights: Weights | None = None) -> list[Manifest]:
    """The manifests of the ambient namespaces (unsorted; the caller orders them)."""
    from meshdsl.compile import with_weights  # the package imports this module lazily

    dp = mesh.data_plane
    out: list[Manifest] = []
    out += [workloads.namespace(mesh, ns, owned) for ns in mesh.namespaces
            if dp.is_ambient(ns.name) and ns.create]
    for svc in (s for s in mesh.services if dp.is_ambient(s.namespace)):
        out += workloads.services(mesh, svc, owned)
        if svc.service_account and svc.workloads:
            out.append(kube.service_account(svc, owned))
        out += [kube.deployment(svc, wl, owned) for wl in svc.workloads]
    out += [workloads.waypoint(ns, wp, owned) for ns, wp in _waypoints(mesh)]
    for dr in (d for d in mesh.destination_rules if dp.is_ambient(d.namespace)):
        out += workloads.destination_rules(mesh, dr, owned)
    for gw in (g for g in mesh.gateways if dp.is_ambient(g.namespace)):
        out += ingress.gateway(mesh, gw, owned)
    routed = [vs for vs in mesh.virtual_services if dp.is_ambient(vs.namespace)]
    if weights:
        routed = [with_weights(vs, mesh, weights) for vs in routed]
    for vs in routed:
        out += routes.routes(mesh, vs, owned)
    out += routes.reference_grants(mesh, routed, owned)
    out += [istio.peer_authentication(pa, owned) for pa in mesh.peer_authentications
            if dp.is_ambient(pa.namespace)]
    policies = [ap for ap in mesh.authorization_policies if dp.is_ambient(ap.namespace)]
    out += [security.authorization_policy(mesh, ap, owned) for ap in policies]
    out += [security.waypoint_only(mesh, ns, wp, owned)
            for ns in sorted({ap.namespace for ap in policies})
            if security.guarded(mesh, ns) and (wp := dp.waypoint_of(ns)) is not None]
    return out

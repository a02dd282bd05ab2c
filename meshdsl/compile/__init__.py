"""Compile a :class:`~meshdsl.model.spec.MeshSpec` into manifests: pure and deterministic.

``compile_mesh`` is the single entry point. ``weights`` lets the delivery machinery say
where a canary stands: for each (namespace, service) the subset weights that replace the
service's catch-all route, so one writer (Git revision + rollout state) sets the weights.
"""

from __future__ import annotations

from collections.abc import Mapping

from meshdsl.compile import external, istio, kube
from meshdsl.compile.manifest import (
    GroupKind,
    Manifest,
    ResourceKey,
    file_name,
    order_key,
    ownership_labels,
    sort_manifests,
    to_yaml,
)
from meshdsl.model.routing import Destination, HttpRoute, VirtualService
from meshdsl.model.spec import MeshSpec

Weights = Mapping[tuple[str, str], Mapping[str, int]]

__all__ = ["GroupKind", "Manifest", "ResourceKey", "Weights", "canary_route", "compile_mesh",
           "file_name", "order_key", "render", "sort_manifests", "to_yaml", "with_weights"]


def canary_route(vs: VirtualService, mesh: MeshSpec) -> tuple[int, tuple[str, str]] | None:
    """Where a canary of this VirtualService acts: the index of its last catch-all route and
    the (namespace, service) all that route's destinations are — or None.

    The one definition of "the route a rollout owns", shared by :func:`with_weights` and
    the delivery stages (header route, mirror) in ``reconciler.delivery.routes``."""
    for index in range(len(vs.http) - 1, -1, -1):
        route = vs.http[index]
        if not route.is_catch_all() or not route.to:
            continue
        ns, name = mesh.resolve_host(route.to[0].host, vs.namespace)
        if any(mesh.resolve_host(d.host, vs.namespace) != (ns, name) for d in route.to):
            return None
        return index, (ns, name)
    return None


def with_weights(vs: VirtualService, mesh: MeshSpec, weights: Weights) -> VirtualService:
    """Replace the destinations of the last catch-all route of a canaried service.

    Shared by every compiler (Istio here, Envoy in ``meshdsl.compile.envoy``) so a canary
    step means the same split on a cluster and in the local mesh."""
    found = canary_route(vs, mesh)
    split = None if found is None else weights.get(found[1])
    if found is None or split is None:
        return vs
    index = found[0]
    route = vs.http[index]
    template = route.to[0]
    new_to = [Destination(host=template.host, subset=subset, port=template.port,
                          weight=weight) for subset, weight in split.items()]
    routes: list[HttpRoute] = list(vs.http)
    routes[index] = route.model_copy(update={"to": new_to})
    return vs.model_copy(update={"http": routes})


def compile_mesh(mesh: MeshSpec, *, weights: Weights | None = None) -> list[Manifest]:
    """Every manifest of the mesh, in apply order."""
    owned = ownership_labels(mesh.name)
    out: list[Manifest] = []
    whole = mesh  # callers' principals are looked up in every namespace
    if mesh.data_plane.any_ambient:  # ambient namespaces compile to the Gateway API
        from meshdsl.compile import gateway_api
        out += gateway_api.compile_ambient(mesh, owned, weights=weights)
        mesh = gateway_api.classic_part(mesh)
    out += [kube.namespace(ns, owned) for ns in mesh.namespaces if ns.create]
    for svc in mesh.services:
        if svc.emits_kube_service():
            out.append(kube.service(svc, owned))
        if svc.service_account and svc.workloads:
            out.append(kube.service_account(svc, owned))
        out += [kube.deployment(svc, wl, owned) for wl in svc.workloads]
    out += [external.service_entry(se, owned) for se in mesh.service_entries]
    out += [external.workload_entry(we, owned) for we in mesh.workload_entries]
    out += [istio.destination_rule(dr, owned) for dr in mesh.destination_rules]
    out += [istio.gateway(gw, owned) for gw in mesh.gateways]
    for vs in mesh.virtual_services:
        if weights:
            vs = with_weights(vs, mesh, weights)
        out.append(istio.virtual_service(vs, owned))
    out += [istio.peer_authentication(pa, owned) for pa in mesh.peer_authentications]
    out += [istio.authorization_policy(ap, whole, owned) for ap in mesh.authorization_policies]
    out += [istio.local_rate_limit(rl, owned) for rl in mesh.rate_limits]
    out += [istio.telemetry(t, owned) for t in mesh.telemetry]
    out += [dict(raw) for raw in mesh.raw]
    return sort_manifests(out)


def render(mesh: MeshSpec, *, weights: Weights | None = None) -> str:
    """The mesh as one YAML stream."""
    return to_yaml(compile_mesh(mesh, weights=weights))



"""Compile a :class:`~meshdsl.model.spec.MeshSpec` into manifests: pure and deterministic.

``compile_mesh`` is the single entry point. ``weights`` lets the delivery machinery say
where a canary stands: for each (namespace, service) the subset weights that replace the
service's catch-all route, so one writer (Git revision + rollout state) sets the weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import partial
from operator import itemgetter

from meshdsl.compile import external, istio, kube, yamltext
from meshdsl.compile.manifest import (
    KIND_ORDER,
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
           "file_name", "manifests", "order_key", "pending", "render", "render_to",
           "sort_manifests", "to_yaml", "with_weights"]


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


Pending = tuple[tuple[int, str, str, str], Callable[[], Manifest]]


def _key(kind: str, namespace: str, name: str) -> tuple[int, str, str, str]:
    """:func:`order_key` of the manifest that will be compiled, known before compiling."""
    return (KIND_ORDER.get(kind, 50), kind, namespace, name)


def _as_is(manifest: Manifest) -> Manifest:
    return manifest


def _routed(vs: VirtualService, mesh: MeshSpec, weights: Weights | None,
            owned: dict[str, str]) -> Manifest:
    return istio.virtual_service(with_weights(vs, mesh, weights) if weights else vs, owned)


def pending(mesh: MeshSpec, *, weights: Weights | None = None) -> list[Pending]:
    """Every manifest of the mesh as (its order key, how to compile it), in apply order.

    The order depends only on each object's kind, namespace and name, so it is decided
    before anything is compiled; :func:`manifests` then compiles one at a time."""
    owned = ownership_labels(mesh.name)
    out: list[Pending] = []
    whole = mesh  # callers' principals are looked up in every namespace
    if mesh.data_plane.any_ambient:  # ambient namespaces compile to the Gateway API
        from meshdsl.compile import gateway_api
        out += [(order_key(m), partial(_as_is, m))
                for m in gateway_api.compile_ambient(mesh, owned, weights=weights)]
        mesh = gateway_api.classic_part(mesh)
    out += [(_key("Namespace", "", ns.name), partial(kube.namespace, ns, owned))
            for ns in mesh.namespaces if ns.create]
    for svc in mesh.services:
        if svc.emits_kube_service():
            out.append((_key("Service", svc.namespace, svc.name),
                        partial(kube.service, svc, owned)))
        if svc.service_account and svc.workloads:
            out.append((_key("ServiceAccount", svc.namespace, svc.account),
                        partial(kube.service_account, svc, owned)))
        out += [(_key("Deployment", svc.namespace, f"{svc.name}-{wl.version}"),
                 partial(kube.deployment, svc, wl, owned)) for wl in svc.workloads]
    out += [(_key("ServiceEntry", se.namespace, se.name),
             partial(external.service_entry, se, owned)) for se in mesh.service_entries]
    out += [(_key("WorkloadEntry", we.namespace, we.name),
             partial(external.workload_entry, we, owned)) for we in mesh.workload_entries]
    out += [(_key("DestinationRule", dr.namespace, dr.name),
             partial(istio.destination_rule, dr, owned)) for dr in mesh.destination_rules]
    out += [(_key("Gateway", gw.namespace, gw.name), partial(istio.gateway, gw, owned))
            for gw in mesh.gateways]
    out += [(_key("VirtualService", vs.namespace, vs.name),
             partial(_routed, vs, mesh, weights, owned)) for vs in mesh.virtual_services]
    out += [(_key("PeerAuthentication", pa.namespace, pa.name),
             partial(istio.peer_authentication, pa, owned))
            for pa in mesh.peer_authentications]
    out += [(_key("AuthorizationPolicy", ap.namespace, ap.name),
             partial(istio.authorization_policy, ap, whole, owned))
            for ap in mesh.authorization_policies]
    out += [(_key("EnvoyFilter", rl.namespace, rl.name),
             partial(istio.local_rate_limit, rl, owned)) for rl in mesh.rate_limits]
    out += [(_key("Telemetry", t.namespace, t.name), partial(istio.telemetry, t, owned))
            for t in mesh.telemetry]
    out += [(order_key(raw), partial(dict, raw)) for raw in mesh.raw]
    out.sort(key=itemgetter(0))  # stable: equal keys keep declaration order
    return out


def manifests(mesh: MeshSpec, *, weights: Weights | None = None) -> Iterator[Manifest]:
    """Every manifest of the mesh, in apply order, each compiled when it is reached."""
    for _, make in pending(mesh, weights=weights):
        yield make()


def compile_mesh(mesh: MeshSpec, *, weights: Weights | None = None) -> list[Manifest]:
    """Every manifest of the mesh, in apply order."""
    return list(manifests(mesh, weights=weights))


def render(mesh: MeshSpec, *, weights: Weights | None = None) -> str:
    """The mesh as one YAML stream."""
    return to_yaml(compile_mesh(mesh, weights=weights))


def render_to(mesh: MeshSpec, write: Callable[[str], object], *,
              weights: Weights | None = None) -> int:
    """The YAML stream of :func:`render` handed to ``write`` (a file's) one object at a
    time: neither the manifests nor the text of a large mesh are ever held whole.
    Returns the number of objects."""
    return yamltext.write_all(manifests(mesh, weights=weights), write)

"""A VirtualService of an ambient namespace as Gateway API routes.

``http`` routes become one HTTPRoute (a GRPCRoute when every Service it routes for speaks
gRPC only), each classic route one rule in the same order; ``tcp`` routes become TCPRoutes.
Parents are the Services named by the hosts (in-mesh, served by the waypoint) plus the
Gateways the VirtualService is bound to. A backend in another namespace needs that
namespace's permission: :func:`reference_grants` writes one ReferenceGrant per (backend
namespace, route namespace) naming exactly the Services used.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from meshdsl.compile.gateway_api import filters, matches
from meshdsl.compile.gateway_api.refs import (
    API,
    GROUP,
    Backend,
    backend,
    gateway_parent,
    obj,
    service_parent,
)
from meshdsl.model.routing import HttpRoute, VirtualService
from meshdsl.model.spec import MeshSpec

Manifest = dict[str, Any]


def in_mesh(vs: VirtualService) -> bool:
    return not vs.gateways or "mesh" in vs.gateways


def parent_services(mesh: MeshSpec, vs: VirtualService) -> list[tuple[str, str]]:
    """(namespace, name) of each host of an in-mesh VirtualService, in host order."""
    if not in_mesh(vs):
        return []
    out: list[tuple[str, str]] = []
    for host in vs.hosts:
        key = mesh.resolve_host(host, vs.namespace)
        if key[0] and key not in out:
            out.append(key)
    return out


def parent_refs(mesh: MeshSpec, vs: VirtualService) -> list[dict[str, Any]]:
    refs = [service_parent(name, ns, vs.namespace) for ns, name in parent_services(mesh, vs)]
    refs += [gateway_parent(g, vs.namespace) for g in vs.gateways if g != "mesh"]
    return refs


def is_grpc(mesh: MeshSpec, vs: VirtualService) -> bool:
    """True when the route only serves Services whose every port is gRPC."""
    if vs.gateways and vs.gateways != ["mesh"]:
        return False
    services = [mesh.service(ns, name) for ns, name in parent_services(mesh, vs)]
    return bool(services) and all(
        svc is not None and svc.ports and all(
            (p.protocol or p.name).lower().split("-")[0] == "grpc" for p in svc.ports)
        for svc in services)


def hostnames(mesh: MeshSpec, vs: VirtualService) -> list[str]:
    """The route's ``hostnames``: every host of an ingress-only route but ``*``; of an
    in-mesh route, the hosts that name no Service (``shop.example.com``), which select the
    Host header on its Gateway parents (Istio ignores hostnames on Service parents)."""
    if in_mesh(vs):
        return [h for h in vs.hosts if h != "*" and not mesh.resolve_host(h, vs.namespace)[0]]
    return [h for h in vs.hosts if h != "*"]


def _rule(mesh: MeshSpec, vs: VirtualService, route: HttpRoute, grpc: bool) -> dict[str, Any]:
    ns = vs.namespace
    rule: dict[str, Any] = {}
    if route.name:
        rule["name"] = route.name
    found = [m for m in (matches.grpc_match(m) if grpc else matches.http_match(m)
                         for m in route.match) if m]
    if found:
        rule["matches"] = found
    mirror = None if route.mirror is None else backend(mesh, route.mirror, ns)
    found_filters = filters.http_filters(route, namespace=ns, mirror=mirror, grpc=grpc)
    if found_filters:
        rule["filters"] = found_filters
    if route.to:
        rule["backendRefs"] = [backend(mesh, d, ns).ref(ns, d.weight) for d in route.to]
    if not grpc:
        timeouts = filters.timeouts(route)
        if timeouts:
            rule["timeouts"] = timeouts
        retry = filters.retry(route)
        if retry is not None:
            rule["retry"] = retry
    return rule


def http_route(mesh: MeshSpec, vs: VirtualService, labels: dict[str, str]) -> Manifest:
    grpc = is_grpc(mesh, vs)
    spec: dict[str, Any] = {"parentRefs": parent_refs(mesh, vs)}
    names = hostnames(mesh, vs)
    if names:
        spec["hostnames"] = names
    spec["rules"] = [_rule(mesh, vs, r, grpc) for r in vs.http]
    return obj(API, "GRPCRoute" if grpc else "HTTPRoute", vs.name, vs.namespace, labels, spec)


def tcp_routes(mesh: MeshSpec, vs: VirtualService, labels: dict[str, str]) -> list[Manifest]:
    out = []
    for index, route in enumerate(vs.tcp):
        ports: list[int | None] = [m.port for m in route.match if m.port is not None]
        parents = [service_parent(name, ns, vs.namespace, port)
                   for ns, name in parent_services(mesh, vs)
                   for port in (ports or [None])]
        parents += [gateway_parent(g, vs.namespace) for g in vs.gateways if g != "mesh"]
        backends = [backend(mesh, d, vs.namespace).ref(vs.namespace, d.weight) for d in route.to]
        name = vs.name if index == 0 else f"{vs.name}-{index}"
        out.append(obj(API, "TCPRoute", name, vs.namespace, labels,
                       {"parentRefs": parents, "rules": [{"backendRefs": backends}]}))
    return out


def routes(mesh: MeshSpec, vs: VirtualService, labels: dict[str, str]) -> list[Manifest]:
    out = [http_route(mesh, vs, labels)] if vs.http else []
    return out + tcp_routes(mesh, vs, labels)


def backends(mesh: MeshSpec, vs: VirtualService) -> Iterable[tuple[str, Backend]]:
    """(route kind, backend) of every backendRef and mirror of a VirtualService."""
    kind = "GRPCRoute" if is_grpc(mesh, vs) else "HTTPRoute"
    for route in vs.http:
        for dest in [*route.to, *([route.mirror] if route.mirror is not None else [])]:
            yield kind, backend(mesh, dest, vs.namespace)
    for tcp in vs.tcp:
        for dest in tcp.to:
            yield "TCPRoute", backend(mesh, dest, vs.namespace)


def reference_grants(mesh: MeshSpec, routed: Iterable[VirtualService],
                     labels: dict[str, str]) -> list[Manifest]:
    """One ReferenceGrant per (backend namespace, route namespace) crossing."""
    kinds: dict[tuple[str, str], set[str]] = defaultdict(set)
    names: dict[tuple[str, str], set[str]] = defaultdict(set)
    for vs in routed:
        for kind, target in backends(mesh, vs):
            if target.namespace != vs.namespace:
                key = (target.namespace, vs.namespace)
                kinds[key].add(kind)
                names[key].add(target.name)
    out = []
    for (target_ns, from_ns) in sorted(kinds):
        spec = {"from": [{"group": GROUP, "kind": k, "namespace": from_ns}
                         for k in sorted(kinds[(target_ns, from_ns)])],
                "to": [{"group": "", "kind": "Service", "name": n}
                       for n in sorted(names[(target_ns, from_ns)])]}
        out.append(obj(f"{GROUP}/v1beta1", "ReferenceGrant", f"from-{from_ns}", target_ns,
                       labels, spec))
    return out

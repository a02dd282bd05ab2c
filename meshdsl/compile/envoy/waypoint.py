"""An ambient namespace's waypoint: the one Envoy that applies L7 policy to its services.

In Istio's ambient mode the workloads run no sidecar; a waypoint (a Gateway of class
``istio-waypoint``) receives every request for the services of its namespace from the
callers' ztunnels and applies the HTTPRoutes and L7 AuthorizationPolicies there. Locally
the waypoint has one listener per (service, port, subset) it serves
(:func:`~meshdsl.compile.envoy.placement.waypoint_targets`), where Istio multiplexes them
on HBONE's port 15008. Each listener

* requires mutual TLS from the caller's proxy (HBONE is mTLS only; a placement without a
  CA is plaintext everywhere) and passes the caller's SPIFFE ID on in
  ``x-forwarded-client-cert``;
* enforces the AuthorizationPolicies attached to it with ``targetRefs`` semantics
  (:func:`~meshdsl.compile.gateway_api.security.target_ref`, which also writes the
  cluster's objects): a service's policy is on its Service, a namespace-wide one on the
  waypoint. A subset listener stands for the version's Service (``reviews-v2``), which
  only the namespace-wide policies target. EnvoyFilter rate limits are not applied
  (waypoints ignore EnvoyFilters);
* routes with the service's VirtualService — what ``compile_ambient`` turns into its
  HTTPRoute: matches, weights (canary weights included), timeouts, retries, mirrors,
  rewrites, header edits; a TCP port gets the TCP route; a subset listener sends every
  request to its subset.

The waypoint reaches the workloads through its own ``inbound-vip|...`` clusters, with the
DestinationRule's policy, over mTLS as the waypoint's identity, to their L4 proxies
(:mod:`.ztunnel`), which admit only the waypoint when the namespace has authorization.
Requests its ``inbound-vip`` clusters count are ``istio_requests_total{reporter=
"waypoint"}`` through the metrics bridge (``reconciler.metrics.recording_rules``).
"""

from __future__ import annotations

from meshdsl.compile.envoy import clusters, listeners, names, rbac, routes
from meshdsl.compile.envoy.clusters import Caller
from meshdsl.compile.envoy.matching import MESH, Source
from meshdsl.compile.envoy.placement import Address, WaypointTarget, service_ports
from meshdsl.compile.envoy.protos import EnvoyCompileError, Resource
from meshdsl.compile.envoy.proxy import (
    ProxyConfig,
    ProxyKind,
    dedupe_notes,
    finish,
    mesh_clusters,
    missing_clusters,
)
from meshdsl.compile.envoy.topology import PlacedWaypoint, Topology
from meshdsl.compile.gateway_api.security import target_ref
from meshdsl.model.security import AuthorizationPolicy
from meshdsl.model.service import ServiceSpec


def governing(topo: Topology, waypoint: PlacedWaypoint, svc: ServiceSpec,
              subset: str) -> list[AuthorizationPolicy]:
    """The policies attached to what one listener serves: the waypoint's, and the
    Service's own for the whole service."""
    out = []
    for ap in topo.spec.authorization_policies:
        ref = target_ref(topo.spec, ap) if ap.namespace == waypoint.key.namespace else None
        if ref is None:
            continue
        if (ref["kind"], ref["name"]) == ("Gateway", waypoint.key.name) or (
                (ref["kind"], ref["name"]) == ("Service", svc.name) and not subset):
            out.append(ap)
    return out


def _listener(topo: Topology, waypoint: PlacedWaypoint, target: WaypointTarget,
              local_port: int, caller: Caller, ctx: routes.RouteContext
              ) -> tuple[Resource, Resource | None]:
    name, number, subset = target
    svc = topo.spec.service(waypoint.key.namespace, name)
    port = next((p for p in service_ports(svc) if p.number == number), None) if svc else None
    if svc is None or port is None or topo.waypoint_of(svc) is not waypoint:
        raise EnvoyCompileError(
            f"the placement gives waypoint {waypoint.key.proxy_id} a listener for "
            f"{waypoint.key.namespace}/{name}:{number}, which it does not serve; allocate "
            "listeners for placement.waypoint_targets(spec) only")
    listener_name = names.waypoint_cluster(number, subset, svc.fqdn)
    vs, notes = topo.mesh_routes(svc) if not subset else (None, [])
    ctx.notes.extend(notes)
    table: Resource | None = None
    if port.is_http:
        compiled = routes.http_routes(ctx, vs) if vs else [routes.default_route(listener_name)]
        table = routes.route_table(listener_name, [routes.virtual_host(
            f"{svc.fqdn}:{number}", ["*"], compiled)])
        own_ports = {number} | ({port.target_port} if port.target_port else set())
        http_filters = rbac.policy_filters(governing(topo, waypoint, svc, subset), topo.spec,
                                           own_ports=own_ports, listener_port=local_port,
                                           notes=ctx.notes)
        http_filters += listeners.edge_filters()
        secure = listeners.http_manager(listener_name, http_filters, client_certs=True)
        plain = listeners.http_manager(listener_name, http_filters)
    else:
        split = (routes.tcp_split(ctx, vs) if vs else None) or [(listener_name, 1)]
        secure = plain = listeners.tcp_proxy(listener_name, split)
        if governing(topo, waypoint, svc, subset):
            ctx.notes.append(f"{svc.fqdn}:{number} is TCP: its authorization policies are "
                             "not enforced locally")
    chains, inspect = listeners.inbound_chains("STRICT", secure, plain, own=caller.cert,
                                               ca_cert=caller.ca_cert)
    return listeners.listener(listener_name, Address(local_port), chains,
                              direction="INBOUND", inspect_tls=inspect), table


def build(topo: Topology, waypoint: PlacedWaypoint) -> ProxyConfig:
    """The whole config of one waypoint."""
    notes: list[str] = []
    proxy_id = waypoint.key.proxy_id
    cert = topo.identity(waypoint.principal, f"waypoint {proxy_id}") if topo.pki else None
    caller = Caller(proxy_id, cert, topo.placement.ca_cert)
    served = [s for s in topo.spec.services if topo.waypoint_of(s) is waypoint]
    serves = frozenset((s.namespace, s.name) for s in served)
    all_listeners: list[Resource] = []
    tables: list[Resource] = []
    missing: set[str] = set()
    for target, local_port in sorted(waypoint.placement.listeners.items()):
        source = Source(waypoint.key.namespace, {}, frozenset({MESH}), target[1])
        ctx = routes.RouteContext(topo, source, notes, serves=serves)
        listener, table = _listener(topo, waypoint, target, local_port, caller, ctx)
        all_listeners.append(listener)
        tables += [table] if table is not None else []
        missing |= ctx.missing
    own = [clusters.direct(topo, svc, port, subset, caller, notes,
                           name=names.waypoint_cluster(port.number, subset, svc.fqdn))
           for svc in served for port in service_ports(svc)
           for subset in [None, *(s.name for s in topo.subsets(svc))]]
    others = mesh_clusters(topo, caller, notes,
                           services=[s for s in topo.spec.services
                                     if (s.namespace, s.name) not in serves])
    return ProxyConfig(id=proxy_id, kind=ProxyKind.WAYPOINT, listeners=finish(all_listeners),
                       clusters=finish([*own, *others, *missing_clusters(missing)]),
                       routes=finish(tables), notes=dedupe_notes(notes),
                       principal=waypoint.principal, waypoint=waypoint.key)

"""One workload's sidecar: outbound listeners for the services it calls, and the inbound
listener in front of its app.

Outbound, each service port the placement gives this sidecar a loopback port for gets a
listener whose route table is the service's VirtualService as this workload sees it (or a
plain route to every endpoint when there is none; and for a service an ambient waypoint
serves, a plain route to that waypoint, which applies the routes). Inbound, one listener carries mTLS per
the effective PeerAuthentication, the RBAC filters of the AuthorizationPolicies that
select the workload, its local rate limits, and forwards to the app through
``inbound|<port>|<version>|<fqdn>``.
"""

from __future__ import annotations

from meshdsl.compile.envoy import clusters, listeners, names, rbac, routes, tls
from meshdsl.compile.envoy.clusters import Caller
from meshdsl.compile.envoy.matching import MESH, Source
from meshdsl.compile.envoy.placement import Address, service_ports
from meshdsl.compile.envoy.protos import EnvoyCompileError, Resource
from meshdsl.compile.envoy.proxy import ProxyConfig, ProxyKind, assemble
from meshdsl.compile.envoy.topology import PlacedWorkload, Topology, selects
from meshdsl.model.service import ServicePort


def _outbound(topo: Topology, me: PlacedWorkload, ns: str, name: str, number: int,
              local_port: int, ctx_notes: list[str],
              missing: set[str]) -> tuple[Resource, Resource | None]:
    svc = topo.spec.service(ns, name)
    port = next((p for p in service_ports(svc) if p.number == number), None) if svc else None
    if svc is None or port is None:
        raise EnvoyCompileError(
            f"the placement gives {me.key.proxy_id} an outbound port for {ns}/{name}:{number}, "
            "which is not a service port of the mesh; allocate ports for "
            "placement.outbound_keys(spec) only")
    listener_name = names.outbound_listener(port.number, svc.fqdn)
    ctx = routes.RouteContext(topo, Source(me.key.namespace, me.labels, frozenset({MESH}),
                                           port.number), ctx_notes)
    vs, notes = topo.mesh_routes(svc)
    if topo.waypoint_of(svc) is not None:
        vs, notes = None, []  # its waypoint routes; the sidecar sends it every request
    ctx_notes += notes
    default = names.outbound_cluster(port.number, None, svc.fqdn)
    address = Address(local_port, topo.placement.listen_host)
    table: Resource | None = None
    if port.is_http:
        compiled = routes.http_routes(ctx, vs) if vs else [routes.default_route(default)]
        vhost = routes.virtual_host(f"{svc.fqdn}:{port.number}", ["*"], compiled)
        table = routes.route_table(listener_name, [vhost])
        chain = {"filters": [listeners.http_manager(listener_name, listeners.edge_filters())]}
    else:
        split = (routes.tcp_split(ctx, vs) if vs else None) or [(default, 1)]
        chain = {"filters": [listeners.tcp_proxy(listener_name, split)]}
    missing |= ctx.missing
    return listeners.listener(listener_name, address, [chain], direction="OUTBOUND"), table


def _inbound(topo: Topology, me: PlacedWorkload, caller: Caller,
             notes: list[str]) -> tuple[Resource, Resource | None, Resource]:
    svc, version = me.service, me.key.version
    ports: list[ServicePort] = service_ports(svc)
    own_ports = {p.number for p in ports} | {p.target_port for p in ports if p.target_port}
    name = names.inbound_cluster(ports[0].number, version, svc.fqdn)
    mode = tls.peer_mode(topo.spec, svc.namespace, me.labels, sorted(own_ports))
    if not topo.pki and mode == "STRICT":
        notes.append("mTLS mode STRICT is not enforced: the placement has no CA")
    listen = me.placement.inbound
    table: Resource | None = None
    if any(p.is_http for p in ports):
        http_filters = rbac.filters(topo.spec, svc.namespace, me.labels, own_ports=own_ports,
                                    listener_port=listen.port, notes=notes)
        http_filters += [listeners.rate_limit(rl) for rl in topo.spec.rate_limits
                         if rl.namespace in (svc.namespace, topo.spec.root_namespace)
                         and selects(rl.selector, me.labels)]
        http_filters.append(listeners.router())
        secure = listeners.http_manager(name, http_filters, client_certs=True)
        plain = listeners.http_manager(name, http_filters)
        route = {"name": "default", "match": {"prefix": "/"},
                 "route": {"cluster": name, "timeout": "0s"}}
        table = routes.route_table(name, [routes.virtual_host("inbound", ["*"], [route])])
    else:
        secure = plain = listeners.tcp_proxy(name, [(name, 1)])
        if rbac.applicable(topo.spec, svc.namespace, me.labels):
            notes.append("authorization policies are not enforced on a TCP-only workload "
                         "locally")
    chains, inspect = listeners.inbound_chains(mode, secure, plain, own=caller.cert,
                                               ca_cert=caller.ca_cert)
    listener = listeners.listener(name, listen, chains, direction="INBOUND",
                                  inspect_tls=inspect)
    return listener, table, clusters.inbound(svc, version, ports[0], me.placement.app)


def build(topo: Topology, me: PlacedWorkload) -> ProxyConfig:
    """The whole config of one sidecar."""
    notes: list[str] = []
    cert = topo.identity(me.principal, f"sidecar {me.key.proxy_id}") if topo.pki else None
    caller = Caller(me.key.proxy_id, cert, topo.placement.ca_cert)
    missing: set[str] = set()
    all_listeners: list[Resource] = []
    tables: list[Resource] = []
    for (ns, name, number), local_port in sorted(me.placement.outbound.items()):
        listener, table = _outbound(topo, me, ns, name, number, local_port, notes, missing)
        all_listeners.append(listener)
        if table is not None:
            tables.append(table)
    inbound_listener, inbound_table, inbound_cluster = _inbound(topo, me, caller, notes)
    all_listeners.append(inbound_listener)
    if inbound_table is not None:
        tables.append(inbound_table)
    return assemble(topo, caller, proxy_id=me.key.proxy_id, kind=ProxyKind.SIDECAR,
                    listeners=all_listeners, tables=tables, own_clusters=[inbound_cluster],
                    missing=missing, notes=notes, workload=me.key, principal=me.principal)

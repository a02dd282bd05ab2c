"""A workload's L4 proxy in an ambient namespace: ztunnel's part for that one workload.

Istio's ztunnel (one per node) captures a pod's connections and carries them, as mutual
TLS with the pod's own identity, to the waypoint of the destination service — or, for a
service without one, straight to a destination pod — and on the receiving side enforces
L4 authorization. It never looks at HTTP. Locally each ambient workload gets an Envoy
doing just that:

* outbound, a TCP proxy per service port, on the loopback ports a sidecar would have (the
  app finds its services the same way), to the whole service's cluster: the waypoint that
  serves it (:func:`~meshdsl.compile.envoy.clusters.to_waypoint`), else its workloads
  (sidecars or other L4 proxies), with mTLS presenting the workload's certificate. No
  routes apply on this side: a service in a sidecar namespace is reached without its
  VirtualService, as an ambient caller reaches it in Istio (noted);
* inbound, the workload's PeerAuthentication mode (STRICT: mTLS only) and, when its
  namespace has a waypoint and any authorization, the ``<waypoint>-only`` policy that
  ``compile_ambient`` writes: only the waypoint's identity is admitted, so no caller skips
  it; then a TCP proxy to the app.

What ztunnel does that this does not (HBONE, one proxy per node, the other L4 policies,
its TCP metrics) is listed in the README, "Ambient mode and the Gateway API".
"""

from __future__ import annotations

from meshdsl.compile.envoy import clusters, listeners, names, rbac, tls
from meshdsl.compile.envoy.clusters import Caller
from meshdsl.compile.envoy.placement import Address, ServicePortKey, service_ports
from meshdsl.compile.envoy.protos import EnvoyCompileError, Resource
from meshdsl.compile.envoy.proxy import ProxyConfig, ProxyKind, dedupe_notes, finish
from meshdsl.compile.envoy.topology import PlacedWorkload, Topology
from meshdsl.compile.gateway_api.security import guarded, target_ref


def _outbound(topo: Topology, me: PlacedWorkload, key: ServicePortKey, local_port: int,
              notes: list[str]) -> Resource:
    ns, name, number = key
    svc = topo.spec.service(ns, name)
    if svc is None or number not in {p.number for p in service_ports(svc)}:
        raise EnvoyCompileError(
            f"the placement gives {me.key.proxy_id} an outbound port for {ns}/{name}:{number}, "
            "which is not a service port of the mesh; allocate ports for "
            "placement.outbound_keys(spec) only")
    listener_name = names.outbound_listener(number, svc.fqdn)
    if topo.waypoint_of(svc) is None and topo.mesh_routes(svc)[0] is not None:
        notes.append(f"{svc.fqdn}: its routes do not apply to calls from this ambient workload "
                     "(no waypoint serves it; ztunnel works at L4)")
    chain = {"filters": [listeners.tcp_proxy(
        listener_name, [(names.outbound_cluster(number, None, svc.fqdn), 1)])]}
    return listeners.listener(listener_name, Address(local_port, topo.placement.listen_host),
                              [chain], direction="OUTBOUND")


def _l4_policy(topo: Topology, me: PlacedWorkload, notes: list[str]) -> list[Resource]:
    """The network filters of the inbound side: ``<waypoint>-only`` where it applies."""
    spec, ns = topo.spec, me.key.namespace
    waypoint = topo.waypoint_of(me.service)
    for ap in rbac.applicable(spec, ns, me.labels):
        if waypoint is None or ap.namespace == spec.root_namespace or \
                target_ref(spec, ap) is None:
            notes.append(f"AuthorizationPolicy {ap.namespace}/{ap.name} is not enforced "
                         "locally: without a waypoint for it, ztunnel would apply it at L4")
    if waypoint is None or not guarded(spec, ns):
        return []
    return [rbac.l4_allow(f"{waypoint.key.name}-only",
                          [waypoint.principal.removeprefix("spiffe://")])]


def build(topo: Topology, me: PlacedWorkload) -> ProxyConfig:
    """The whole config of one ambient workload's L4 proxy."""
    notes: list[str] = []
    cert = topo.identity(me.principal, f"workload {me.key.proxy_id}") if topo.pki else None
    caller = Caller(me.key.proxy_id, cert, topo.placement.ca_cert)
    outbound = [_outbound(topo, me, key, port, notes)
                for key, port in sorted(me.placement.outbound.items())]
    svc, version = me.service, me.key.version
    ports = service_ports(svc)
    name = names.l4_inbound_cluster(ports[0].number, version, svc.fqdn)
    own_ports = sorted({p.number for p in ports} | {p.target_port for p in ports
                                                    if p.target_port})
    mode = tls.peer_mode(topo.spec, svc.namespace, me.labels, own_ports)
    forward = listeners.tcp_proxy(name, [(name, 1)])
    chains, inspect = listeners.inbound_chains(mode, forward, None, own=caller.cert,
                                               ca_cert=caller.ca_cert,
                                               before=_l4_policy(topo, me, notes))
    inbound = listeners.listener(name, me.placement.inbound, chains, direction="INBOUND",
                                 inspect_tls=inspect)
    whole = [clusters.outbound(topo, s, p, None, caller, notes)
             for s in topo.spec.services for p in service_ports(s)]
    return ProxyConfig(id=me.key.proxy_id, kind=ProxyKind.ZTUNNEL,
                       listeners=finish([*outbound, inbound]),
                       clusters=finish([*whole, clusters.inbound(svc, version, ports[0],
                                                                 me.placement.app, name=name)]),
                       routes=[], notes=dedupe_notes(notes), workload=me.key,
                       principal=me.principal)

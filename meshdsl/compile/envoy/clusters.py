"""Clusters: one per service port and subset, with the DestinationRule's client policy.

``outbound|<port>|<subset>|<fqdn>`` holds the sidecar inbound listeners of the workloads the
subset selects (``outbound|<port>||<fqdn>``: all of them). Each carries Istio's defaults
where Envoy's differ (unlimited circuit breakers instead of 1024, LEAST_REQUEST balancing,
10 s connect timeout) and the effective policy of its subset: connection pool → circuit
breakers and HTTP protocol options, load balancer → ``lb_policy`` (consistent hash →
RING_HASH; its hash key lives on the route, see :func:`hash_policy`), outlier detection,
and TLS (see :mod:`.tls`).

A service an ambient waypoint serves is reached through that waypoint instead
(:func:`to_waypoint`): one endpoint, its listener for the subset, over mTLS verifying the
waypoint's identity; the waypoint applies the DestinationRule, with its own clusters
(:func:`direct`, named ``inbound-vip|...``) toward the workloads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshdsl.compile.envoy import names, protos, tls
from meshdsl.compile.envoy.placement import Address, CertFiles
from meshdsl.compile.envoy.protos import Resource, duration
from meshdsl.compile.envoy.topology import PlacedWaypoint, PlacedWorkload, Topology
from meshdsl.model.policy import ConsistentHash, LoadBalancer, TrafficPolicy
from meshdsl.model.service import ServicePort, ServiceSpec

DEFAULT_CONNECT_TIMEOUT = "10s"
_HTTP2_PROTOCOLS = ("http2", "grpc", "grpc-web")
_SIMPLE_LB = {"ROUND_ROBIN": "ROUND_ROBIN", "LEAST_REQUEST": "LEAST_REQUEST",
              "RANDOM": "RANDOM", "UNSPECIFIED": "LEAST_REQUEST"}


@dataclass(frozen=True)
class Caller:
    """The proxy the clusters are compiled for: its certificate when mTLS is possible."""

    proxy_id: str
    cert: CertFiles | None
    ca_cert: str | None


def uses_http2(port: ServicePort) -> bool:
    return (port.protocol or port.name).lower().split("-")[0] in _HTTP2_PROTOCOLS


def lb_policy(lb: LoadBalancer | None, notes: list[str], where: str) -> Resource:
    """Cluster fields for a load balancer (Istio's default is LEAST_REQUEST)."""
    if lb is None:
        return {"lb_policy": "LEAST_REQUEST"}
    if lb.consistent_hash is not None:
        out: Resource = {"lb_policy": "RING_HASH"}
        if lb.consistent_hash.minimum_ring_size:
            out["ring_hash_lb_config"] = {
                "minimum_ring_size": lb.consistent_hash.minimum_ring_size}
        return out
    simple = lb.simple or "UNSPECIFIED"
    if simple not in _SIMPLE_LB:
        notes.append(f"{where}: load balancer {simple} has no local equivalent; "
                     "using LEAST_REQUEST")
    return {"lb_policy": _SIMPLE_LB.get(simple, "LEAST_REQUEST")}


def hash_policy(lb: LoadBalancer | None) -> list[Resource] | None:
    """The route-side hash key of a consistent-hash load balancer (None for other kinds)."""
    ch: ConsistentHash | None = lb.consistent_hash if lb is not None else None
    if ch is None:
        return None
    if ch.http_cookie is not None:
        cookie: Resource = {"name": ch.http_cookie.name}
        if ch.http_cookie.ttl is not None:
            cookie["ttl"] = duration(ch.http_cookie.ttl)
        if ch.http_cookie.path is not None:
            cookie["path"] = ch.http_cookie.path
        return [{"cookie": cookie}]
    if ch.http_header_name is not None:
        return [{"header": {"header_name": ch.http_header_name}}]
    if ch.http_query_parameter_name is not None:
        return [{"query_parameter": {"name": ch.http_query_parameter_name}}]
    return [{"connection_properties": {"source_ip": True}}]


def _pool(policy: TrafficPolicy, port: ServicePort) -> Resource:
    pool = policy.connection_pool
    tcp = pool.tcp if pool is not None else None
    http = pool.http if pool is not None else None
    limits = {
        "max_connections": (tcp.max_connections if tcp else None) or protos.UNLIMITED,
        "max_pending_requests": (http.http1_max_pending_requests if http else None)
        or protos.UNLIMITED,
        "max_requests": (http.http2_max_requests if http else None) or protos.UNLIMITED,
        "max_retries": protos.UNLIMITED if http is None or http.max_retries is None
        else http.max_retries,
        "track_remaining": True,
    }
    out: Resource = {
        "connect_timeout": duration((tcp.connect_timeout if tcp else None)
                                    or DEFAULT_CONNECT_TIMEOUT),
        "circuit_breakers": {"thresholds": [limits]},
    }
    if not port.is_http:
        return out
    common: Resource = {}
    if http is not None and http.idle_timeout is not None:
        common["idle_timeout"] = duration(http.idle_timeout)
    if http is not None and http.max_requests_per_connection:
        common["max_requests_per_connection"] = http.max_requests_per_connection
    codec = "http2_protocol_options" if uses_http2(port) else "http_protocol_options"
    if common or uses_http2(port):
        options: Resource = {"@type": protos.HTTP_PROTOCOL_OPTIONS,
                             "explicit_http_config": {codec: {}}}
        if common:
            options["common_http_protocol_options"] = common
        out["typed_extension_protocol_options"] = {protos.HTTP_OPTIONS_KEY: options}
    return out


def _outlier(policy: TrafficPolicy) -> Resource:
    od = policy.outlier_detection
    if od is None:
        return {}
    out: Resource = {"enforcing_success_rate": 0}
    if od.consecutive_5xx_errors is not None:
        out["consecutive_5xx"] = od.consecutive_5xx_errors
        out["enforcing_consecutive_5xx"] = 100 if od.consecutive_5xx_errors else 0
    if od.consecutive_gateway_errors is not None:
        out["consecutive_gateway_failure"] = od.consecutive_gateway_errors
        out["enforcing_consecutive_gateway_failure"] = (
            100 if od.consecutive_gateway_errors else 0)
    if od.interval is not None:
        out["interval"] = duration(od.interval)
    if od.base_ejection_time is not None:
        out["base_ejection_time"] = duration(od.base_ejection_time)
    if od.max_ejection_percent is not None:
        out["max_ejection_percent"] = od.max_ejection_percent
    # Istio turns Envoy's panic mode off unless minHealthPercent asks for it.
    panic = {"healthy_panic_threshold": {"value": float(od.min_health_percent or 0)}}
    return {"outlier_detection": out, "common_lb_config": panic}


def _lb_endpoint(address: Address, metadata: Resource | None) -> Resource:
    out: Resource = {"endpoint": {"address": protos.socket_address(address.host,
                                                                   address.port)}}
    if metadata is not None:
        out["metadata"] = metadata
    return out


def static_cluster(name: str, endpoints: Sequence[Resource],
                   addresses: Sequence[Address]) -> Resource:
    """The skeleton every cluster shares: name, stats name, discovery type, endpoints."""
    kind = "STATIC" if all(a.is_ip for a in addresses) else "STRICT_DNS"
    out: Resource = {"@type": protos.CLUSTER, "name": name,
                     "alt_stat_name": names.stat_name(name), "type": kind,
                     "load_assignment": {"cluster_name": name}}
    if endpoints:
        out["load_assignment"]["endpoints"] = [{"lb_endpoints": list(endpoints)}]
    return out


def outbound(topo: Topology, svc: ServiceSpec, port: ServicePort, subset: str | None,
             caller: Caller, notes: list[str]) -> Resource:
    """The cluster of one subset (or all endpoints) of one service port."""
    waypoint = topo.waypoint_of(svc)
    if waypoint is not None:
        return to_waypoint(waypoint, svc, port, subset, caller)
    return direct(topo, svc, port, subset, caller, notes,
                  name=names.outbound_cluster(port.number, subset, svc.fqdn))


def to_waypoint(waypoint: PlacedWaypoint, svc: ServiceSpec, port: ServicePort,
                subset: str | None, caller: Caller) -> Resource:
    """A caller's cluster for a subset of a service its waypoint serves: the waypoint's
    listener for it (none for an undeclared subset: 503, as in Istio)."""
    name = names.outbound_cluster(port.number, subset, svc.fqdn)
    local = waypoint.placement.listeners.get((svc.name, port.number, subset or ""))
    addresses = [Address(local)] if local is not None else []
    out = static_cluster(name, [_lb_endpoint(a, None) for a in addresses], addresses)
    out |= lb_policy(None, [], name)
    out |= _pool(TrafficPolicy(), port)
    if caller.cert is not None and caller.ca_cert is not None:
        out["transport_socket"] = tls.client_mtls(caller.cert, caller.ca_cert,
                                                  waypoint.principal, names.sni(name))
    return out


def direct(topo: Topology, svc: ServiceSpec, port: ServicePort, subset: str | None,
           caller: Caller, notes: list[str], *, name: str) -> Resource:
    """A cluster named ``name`` holding the workloads of one subset, with its policy."""
    policy = topo.policy(svc, subset)
    members: list[PlacedWorkload] = topo.subset_workloads(svc, subset)
    mode, note = tls.client_mode(policy.tls)
    if note:
        notes.append(f"{name}: {note}")
    mtls = _client_socket(topo, svc, name, caller) if mode != "DISABLE" else None
    endpoints = []
    for member in members:
        metadata = None
        if mtls is not None and mode == "AUTO":
            metadata = tls.endpoint_metadata(tls.peer_mode(
                topo.spec, svc.namespace, member.labels,
                [p.number for p in svc.ports] + [p.target_port for p in svc.ports
                                                 if p.target_port]))
        endpoints.append(_lb_endpoint(member.placement.inbound, metadata))
    out = static_cluster(name, endpoints, [m.placement.inbound for m in members])
    out |= lb_policy(policy.load_balancer, notes, name)
    out |= _pool(policy, port)
    out |= _outlier(policy)
    if mtls is not None and mode == "ISTIO_MUTUAL":
        out["transport_socket"] = mtls
    elif mtls is not None:
        out["transport_socket_matches"] = tls.socket_matches(mtls)
    return out


def _client_socket(topo: Topology, svc: ServiceSpec, cluster: str,
                   caller: Caller) -> Resource | None:
    if caller.cert is None or caller.ca_cert is None:
        return None
    server_id = names.spiffe(topo.spec.trust_domain, svc.namespace, svc.account)
    return tls.client_mtls(caller.cert, caller.ca_cert, server_id, names.sni(cluster))


def unknown_host(name: str) -> Resource:
    """A destination outside the mesh: a cluster without endpoints (requests get 503)."""
    return static_cluster(name, [], [])


def inbound(svc: ServiceSpec, version: str, port: ServicePort, app: Address, *,
            name: str | None = None) -> Resource:
    """The sidecar's own app: where its inbound listener forwards accepted requests."""
    name = name or names.inbound_cluster(port.number, version, svc.fqdn)
    out = static_cluster(name, [_lb_endpoint(app, None)], [app])
    out |= _pool(TrafficPolicy(), port)
    return out

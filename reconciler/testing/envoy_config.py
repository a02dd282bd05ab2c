"""Small hand-written Envoy v3 resources for tests of the local Envoy target.

These exercise :class:`~reconciler.targets.envoy.process.EnvoyProcess` independently of the
DSL compiler, and double as a reference for the shapes Envoy 1.40 accepts: an HTTP listener
(inline routes or RDS), a STATIC cluster, a weighted route table, and Istio-style mutual TLS
contexts that use the ``default``/``ROOTCA`` secrets of :func:`pki.workload_secrets`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.targets.envoy.files import HCM_TYPE

__all__ = [
    "http_listener",
    "mtls_downstream",
    "mtls_upstream",
    "route_table",
    "static_cluster",
    "weighted_route",
]

Resource = dict[str, Any]

_TLS_SOCKET = "envoy.transport_sockets.tls"
_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def static_cluster(
    name: str,
    port: int,
    *,
    host: str = "127.0.0.1",
    transport_socket: Mapping[str, Any] | None = None,
    connect_timeout: str = "1s",
) -> Resource:
    """A cluster with one fixed endpoint (what a local service instance is)."""
    cluster: Resource = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": connect_timeout,
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": host, "port_value": port}}
                            }
                        }
                    ]
                }
            ],
        },
    }
    if transport_socket is not None:
        cluster["transport_socket"] = dict(transport_socket)
    return cluster


def weighted_route(weights: Mapping[str, int], *, prefix: str = "/") -> Resource:
    """One route splitting traffic between clusters by weight (any total; Envoy sums them)."""
    clusters = [{"name": name, "weight": weight} for name, weight in weights.items() if weight]
    return {"match": {"prefix": prefix}, "route": {"weighted_clusters": {"clusters": clusters}}}


def route_table(name: str, routes: Sequence[Mapping[str, Any]]) -> Resource:
    """A RouteConfiguration with one catch-all virtual host."""
    return {
        "name": name,
        "virtual_hosts": [{"name": name, "domains": ["*"], "routes": [dict(r) for r in routes]}],
    }


def http_listener(
    name: str,
    port: int,
    *,
    route_config_name: str | None = None,
    route_config: Mapping[str, Any] | None = None,
    transport_socket: Mapping[str, Any] | None = None,
    forward_client_cert: bool = False,
) -> Resource:
    """An HTTP listener on 127.0.0.1:``port`` using RDS (by name) or an inline route table.

    ``forward_client_cert`` sets ``x-forwarded-client-cert`` with the peer's URI SAN, which
    is how an upstream sees the caller's SPIFFE identity (as behind an Istio sidecar).
    """
    if (route_config_name is None) == (route_config is None):
        raise ValueError("give exactly one of route_config_name and route_config")
    hcm: Resource = {
        "@type": HCM_TYPE,
        "stat_prefix": name,
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
    }
    if route_config_name is not None:
        hcm["rds"] = {"route_config_name": route_config_name}
    else:
        hcm["route_config"] = dict(route_config or {})
    if forward_client_cert:
        hcm["forward_client_cert_details"] = "SANITIZE_SET"
        hcm["set_current_client_cert_details"] = {"uri": True}
    chain: Resource = {
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]
    }
    if transport_socket is not None:
        chain["transport_socket"] = dict(transport_socket)
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [chain],
    }


def _common_tls_context(peer_san: Mapping[str, str]) -> Resource:
    """Own cert from secret ``default``; peer verified by ``ROOTCA`` and its URI SAN."""
    return {
        "tls_certificate_sds_secret_configs": [{"name": "default"}],
        "combined_validation_context": {
            "default_validation_context": {
                "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": dict(peer_san)}]
            },
            "validation_context_sds_secret_config": {"name": "ROOTCA"},
        },
    }


def _tls_socket(context: str, peer_san: Mapping[str, str], **settings: Any) -> Resource:
    return {
        "name": _TLS_SOCKET,
        "typed_config": {
            "@type": _TLS + context,
            **settings,
            "common_tls_context": _common_tls_context(peer_san),
        },
    }


def mtls_upstream(server_spiffe_id: str, *, sni: str) -> Resource:
    """Cluster transport socket: present our cert, require the server's SPIFFE identity."""
    return _tls_socket("UpstreamTlsContext", {"exact": server_spiffe_id}, sni=sni)


def mtls_downstream(*, client_spiffe_prefix: str = "spiffe://cluster.local/") -> Resource:
    """Listener transport socket: require a client cert from the mesh's trust domain."""
    return _tls_socket("DownstreamTlsContext", {"prefix": client_spiffe_prefix},
                       require_client_certificate=True)

"""Listeners and their HTTP connection managers: outbound, inbound and gateway shapes.

Every HTTP connection manager names its route table (``rds: {route_config_name}``) without
a config source: the runtime binds the name to a file (``reconciler.targets.envoy.files``),
and a route table update then reaches every open connection at its next request, while a
changed inline table would wait for keep-alive connections to drain. Route tables ship in
:attr:`ProxyConfig.routes`.

HTTP filter chains:

* outbound and gateway: ``fault`` → ``cors`` → ``router``; both filters are inert until a
  route's ``typed_per_filter_config`` configures them (as in Istio).
* inbound: RBAC (DENY, ALLOW, LOG) → local rate limits → ``router``, so a request the
  policy rejects never spends a token.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshdsl.compile.envoy import names, protos, tls
from meshdsl.compile.envoy.placement import Address, CertFiles
from meshdsl.compile.envoy.protos import Resource
from meshdsl.model.ratelimit import LocalRateLimit


def router() -> Resource:
    return protos.filter_entry(protos.ROUTER_FILTER, protos.ROUTER)


def edge_filters() -> list[Resource]:
    """Outbound/gateway HTTP filters; routes switch fault and CORS on per route."""
    return [protos.filter_entry(protos.FAULT_FILTER, protos.FAULT),
            protos.filter_entry(protos.CORS_FILTER, protos.CORS), router()]


def rate_limit(rl: LocalRateLimit) -> Resource:
    """A token bucket for the whole inbound listener (429 when empty)."""
    return protos.filter_entry(
        protos.LOCAL_RATELIMIT_FILTER, protos.LOCAL_RATELIMIT,
        stat_prefix=rl.stat_prefix,
        token_bucket={"max_tokens": rl.max_tokens, "tokens_per_fill": rl.tokens_per_fill,
                      "fill_interval": protos.duration(rl.fill_interval)},
        filter_enabled=protos.runtime_fraction(rl.enabled_percent,
                                               "local_rate_limit_enabled"),
        filter_enforced=protos.runtime_fraction(rl.enforced_percent,
                                                "local_rate_limit_enforced"),
    )


def http_manager(route_table: str, http_filters: Sequence[Resource], *,
                 client_certs: bool = False, strip_port: bool = False) -> Resource:
    """The HCM network filter; its stats prefix is the route table's stats name.

    ``client_certs`` forwards the caller's SPIFFE URI to the app in
    ``x-forwarded-client-cert`` (as Istio's sidecars do); ``strip_port`` lets gateway
    virtual hosts match ``Host: example.com:8443`` by name alone.
    """
    config = protos.typed(
        protos.HCM, stat_prefix=names.stat_name(route_table), codec_type="AUTO",
        rds={"route_config_name": route_table}, http_filters=list(http_filters),
        normalize_path=True)
    if client_certs:
        config["forward_client_cert_details"] = "APPEND_FORWARD"
        config["set_current_client_cert_details"] = {"uri": True}
    if strip_port:
        config["strip_any_host_port"] = True
    return {"name": protos.HCM_FILTER, "typed_config": config}


def tcp_proxy(stat_prefix: str, weighted: Sequence[tuple[str, int]]) -> Resource:
    """A TCP proxy network filter to one cluster or a weighted set."""
    fields: Resource = {"stat_prefix": names.stat_name(stat_prefix)}
    if len(weighted) == 1:
        fields["cluster"] = weighted[0][0]
    else:
        fields["weighted_clusters"] = {"clusters": [{"name": n, "weight": w}
                                                    for n, w in weighted]}
    return protos.filter_entry(protos.TCP_PROXY_FILTER, protos.TCP_PROXY, **fields)


def listener(name: str, address: Address, chains: Sequence[Resource], *, direction: str,
             inspect_tls: bool = False) -> Resource:
    out: Resource = {"@type": protos.LISTENER, "name": name,
                     "address": protos.socket_address(address.host, address.port),
                     "traffic_direction": direction, "filter_chains": list(chains)}
    if inspect_tls:
        out["listener_filters"] = [protos.filter_entry("envoy.filters.listener.tls_inspector",
                                                       protos.TLS_INSPECTOR)]
    return out


def inbound_chains(mode: tls.PeerMode, network_filter: Resource,
                   plain_filter: Resource | None, *, own: CertFiles | None,
                   ca_cert: str | None, before: Sequence[Resource] = ()
                   ) -> tuple[list[Resource], bool]:
    """Filter chains of an inbound listener for an mTLS mode, and whether to sniff TLS.

    ``network_filter`` serves mTLS connections, ``plain_filter`` (default: the same)
    plaintext ones, both after the network filters ``before`` (an L4 policy). Without
    certificates every mode is plaintext.
    """
    plain = [*before, plain_filter or network_filter]
    if own is None or ca_cert is None or mode == "DISABLE":
        return [{"name": "plaintext", "filters": plain}], False
    secure = {"name": "mtls", "filters": [*before, network_filter],
              "transport_socket": tls.server_mtls(own, ca_cert)}
    if mode == "STRICT":
        return [secure], False
    secure["filter_chain_match"] = {"transport_protocol": "tls"}
    return [secure, {"name": "plaintext", "filter_chain_match": {
        "transport_protocol": "raw_buffer"}, "filters": plain}], True

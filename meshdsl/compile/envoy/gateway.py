"""The ingress gateway proxy: a listener per Gateway server port, virtual hosts from the
VirtualServices bound to those Gateways.

All Gateway resources with the same selector configure one gateway deployment, so their
servers merge by port, as in Istio: bookinfo's ``main-gateway`` (``api.example.com``) and
``bookinfo-gateway`` (``*``) share port 80. A virtual host is the intersection of a
VirtualService host with a server host (``*`` and ``*.suffix`` wildcards); VirtualServices
for the same host on the same port merge their routes in declaration order.

Supported servers: HTTP/HTTP2/GRPC (with ``httpsRedirect``: ``require_tls`` on its virtual
hosts), HTTPS with ``SIMPLE`` or ``MUTUAL`` TLS from the placement's credential files
(several HTTPS servers on one port are told apart by SNI). TCP, TLS passthrough and
ISTIO_MUTUAL servers are left out, with a note.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshdsl.compile.envoy import listeners, names, rbac, routes, tls
from meshdsl.compile.envoy.clusters import Caller
from meshdsl.compile.envoy.matching import Source, bound_gateways
from meshdsl.compile.envoy.placement import Address, GatewayPlacement
from meshdsl.compile.envoy.protos import Resource
from meshdsl.compile.envoy.proxy import ProxyConfig, ProxyKind, assemble
from meshdsl.compile.envoy.topology import Topology, selects
from meshdsl.model.gateway import Gateway, Server

_HTTP = {"HTTP", "HTTP2", "GRPC"}


@dataclass(frozen=True)
class _Bound:
    gateway: Gateway
    server: Server

    @property
    def ref(self) -> str:
        return f"{self.gateway.namespace}/{self.gateway.name}"


def intersect(vs_host: str, server_host: str) -> str | None:
    """The more specific of two hosts when one covers the other, else None."""
    if vs_host == server_host or server_host == "*":
        return vs_host
    if vs_host == "*":
        return server_host
    if server_host.startswith("*.") and vs_host.endswith(server_host[1:]):
        return vs_host
    if vs_host.startswith("*.") and server_host.endswith(vs_host[1:]):
        return server_host
    return None


def _server_host(host: str, gw: Gateway, vs_namespace: str) -> str | None:
    """A server host without its ``namespace/`` part, if it admits the VirtualService."""
    if "/" not in host:
        return host
    ns, name = host.split("/", 1)
    allowed = ns in ("*", vs_namespace) or (ns == "." and vs_namespace == gw.namespace)
    return name if allowed else None


def _virtual_hosts(ctx: routes.RouteContext, bound: list[_Bound]) -> list[Resource]:
    """Virtual hosts of one route table, merged by domain."""
    by_domain: dict[str, list[Resource]] = {}
    secure_only: set[str] = set()
    seen: set[tuple[str, str, str]] = set()
    for item in bound:
        redirect = item.server.tls is not None and bool(item.server.tls.https_redirect)
        for vs in ctx.topo.spec.virtual_services:
            if item.ref not in bound_gateways(vs.gateways, vs.namespace):
                continue
            for vs_host in vs.hosts:
                for raw in item.server.hosts:
                    server_host = _server_host(raw, item.gateway, vs.namespace)
                    domain = intersect(vs_host, server_host) if server_host else None
                    if domain is None or (domain, vs.namespace, vs.name) in seen:
                        continue
                    seen.add((domain, vs.namespace, vs.name))
                    by_domain.setdefault(domain, []).extend(routes.http_routes(ctx, vs))
                    if redirect:
                        secure_only.add(domain)
        if redirect:
            for raw in item.server.hosts:
                host = raw.split("/", 1)[-1]
                by_domain.setdefault(host, [])
                secure_only.add(host)
    return [routes.virtual_host(f"{domain}:{ctx.source.port}", [domain], by_domain[domain],
                                require_tls=domain in secure_only)
            for domain in sorted(by_domain)]


def _https_chains(topo: Topology, ctx: routes.RouteContext, bound: list[_Bound],
                  http_filters: list[Resource], notes: list[str]
                  ) -> tuple[list[Resource], list[Resource]]:
    chains: list[Resource] = []
    tables: list[Resource] = []
    for item in bound:
        server, port = item.server, item.server.port.number
        mode = item.server.tls.mode if item.server.tls else None
        credential = server.tls.credential_name if server.tls else None
        files = topo.placement.credentials.get(credential or "")
        label = f"{item.ref} server {server.port.name} (port {port})"
        if mode not in ("SIMPLE", "MUTUAL"):
            notes.append(f"{label}: TLS mode {mode} is not supported locally; left out")
            continue
        if files is None:
            notes.append(f"{label}: no certificate files for credential {credential!r} in "
                         "the placement; left out")
            continue
        table_name = names.gateway_route(
            "https", port, f"{server.port.name}.{item.gateway.name}.{item.gateway.namespace}")
        tables.append(routes.route_table(table_name, _virtual_hosts(ctx, [item])))
        chain: Resource = {
            "name": table_name,
            "filters": [listeners.http_manager(table_name, http_filters, strip_port=True)],
            "transport_socket": tls.gateway_tls(files, mutual=mode == "MUTUAL"),
        }
        sni = sorted(h.split("/", 1)[-1] for h in server.hosts if h.split("/", 1)[-1] != "*")
        if len(bound) > 1 and sni:
            chain["filter_chain_match"] = {"server_names": sni}
        chains.append(chain)
    return chains, tables


def build(topo: Topology, workload: str, gateways: list[Gateway],
          where: GatewayPlacement) -> ProxyConfig:
    """The whole config of one gateway deployment."""
    spec, notes = topo.spec, []
    proxy_id = names.gateway_id(workload, spec.root_namespace)
    principal = names.spiffe(spec.trust_domain, spec.root_namespace,
                             names.gateway_account(workload))
    cert = topo.identity(principal, f"gateway {proxy_id}") if topo.pki else None
    caller = Caller(proxy_id, cert, topo.placement.ca_cert)
    labels = {k: v for gw in gateways for k, v in gw.selector.items()}
    by_port: dict[int, list[_Bound]] = {}
    for gw in gateways:
        for server in gw.servers:
            by_port.setdefault(server.port.number, []).append(_Bound(gw, server))
    all_listeners: list[Resource] = []
    tables: list[Resource] = []
    missing: set[str] = set()
    for port, bound in sorted(by_port.items()):
        local = where.ports.get(port)
        protocols = {b.server.port.protocol for b in bound}
        if local is None:
            notes.append(f"gateway port {port} has no local port in the placement; left out")
            continue
        source = Source(spec.root_namespace, labels, frozenset(b.ref for b in bound), port)
        ctx = routes.RouteContext(topo, source, notes)
        address = Address(local, topo.placement.listen_host)
        http_filters = rbac.filters(spec, spec.root_namespace, labels, own_ports={port},
                                    listener_port=local, notes=notes)
        http_filters += [listeners.rate_limit(rl) for rl in spec.rate_limits
                         if rl.namespace == spec.root_namespace
                         and selects(rl.selector, labels)]
        http_filters += listeners.edge_filters()
        listener_name = f"{workload}|{port}"
        if protocols <= _HTTP:
            table_name = names.gateway_route("http", port)
            tables.append(routes.route_table(table_name, _virtual_hosts(ctx, bound)))
            chain = {"filters": [listeners.http_manager(table_name, http_filters,
                                                        strip_port=True)]}
            all_listeners.append(listeners.listener(listener_name, address, [chain],
                                                    direction="INBOUND"))
        elif protocols == {"HTTPS"}:
            chains, https_tables = _https_chains(topo, ctx, bound, http_filters, notes)
            tables += https_tables
            if chains:
                all_listeners.append(listeners.listener(
                    listener_name, address, chains, direction="INBOUND",
                    inspect_tls=len(chains) > 1))
        else:
            notes.append(f"gateway port {port} serves {', '.join(sorted(protocols))}; only "
                         "HTTP and HTTPS servers are supported locally; left out")
        missing |= ctx.missing
    return assemble(topo, caller, proxy_id=proxy_id, kind=ProxyKind.GATEWAY,
                    listeners=all_listeners, tables=tables, missing=missing, notes=notes,
                    gateway=workload, principal=principal)

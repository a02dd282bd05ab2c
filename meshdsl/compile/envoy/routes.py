"""HTTP routes: a VirtualService's ``http`` list as Envoy routes, with Istio's defaults.

Each Istio match becomes one Envoy route (first match wins in both). The action carries
the destination (one cluster, or ``weighted_clusters`` for a split), retries (Istio's
default policy — 2 attempts on connect failures and 503 — when none is given), the timeout
(``0s``: Istio turns Envoy's 15 s default off), mirroring, rewrites, header changes, and
the per-route configs of the fault and CORS filters, which every HTTP connection manager
of the local mesh carries. Routes that only redirect have no destination.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from meshdsl.compile.envoy import clusters, names, protos
from meshdsl.compile.envoy.matching import (
    Source,
    applies,
    bound_gateways,
    route_match,
    string_matcher,
)
from meshdsl.compile.envoy.placement import IMPLIED_PORT, service_ports
from meshdsl.compile.envoy.protos import Resource, duration
from meshdsl.compile.envoy.topology import Topology
from meshdsl.model.matching import Match
from meshdsl.model.policy import LoadBalancer
from meshdsl.model.routing import (
    Cors,
    Destination,
    Fault,
    HeaderOps,
    HttpRoute,
    Redirect,
    Retries,
    VirtualService,
)

DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
_REDIRECT_CODES = {301: "MOVED_PERMANENTLY", 302: "FOUND", 303: "SEE_OTHER",
                   307: "TEMPORARY_REDIRECT", 308: "PERMANENT_REDIRECT"}
_OVERWRITE, _APPEND = "OVERWRITE_IF_EXISTS_OR_ADD", "APPEND_IF_EXISTS_OR_ADD"


@dataclass
class RouteContext:
    """What compiling routes for one proxy and port needs, and what it finds out.

    ``missing`` collects the names of destinations no compiled cluster stands for (hosts
    outside the mesh, undeclared subsets or ports): the proxy gets an empty cluster for
    each, so requests fail with 503 like Istio's, instead of Envoy rejecting the whole
    config. ``serves`` holds the (namespace, name) of the services a waypoint compiles
    routes for: it reaches them through its own ``inbound-vip|...`` clusters.
    """

    topo: Topology
    source: Source
    notes: list[str]
    missing: set[str] = field(default_factory=set)
    serves: frozenset[tuple[str, str]] = frozenset()


def destination_cluster(ctx: RouteContext, dest: Destination,
                        namespace: str) -> tuple[str, LoadBalancer | None]:
    """The cluster a destination names, and the load balancer of that subset."""
    svc = ctx.topo.resolve(dest.host, namespace)
    if svc is None:
        name = names.outbound_cluster(dest.port or IMPLIED_PORT, dest.subset, dest.host)
        ctx.missing.add(name)
        ctx.notes.append(f"destination {dest.host!r} is not a service of the mesh: "
                         "requests to it fail with 503 locally")
        return name, None
    numbers = [p.number for p in service_ports(svc)]
    port = dest.port or (ctx.source.port if ctx.source.port in numbers else numbers[0])
    cluster = (names.waypoint_cluster if (svc.namespace, svc.name) in ctx.serves
               else names.outbound_cluster)
    name = cluster(port, dest.subset, svc.fqdn)
    defined = {s.name for s in ctx.topo.subsets(svc)}
    if port not in numbers or (dest.subset is not None and dest.subset not in defined):
        ctx.missing.add(name)
        ctx.notes.append(f"{svc.name} has no port {port} or subset {dest.subset!r}: requests "
                         "routed there fail with 503 locally")
    return name, ctx.topo.policy(svc, dest.subset).load_balancer


def _split(ctx: RouteContext, to: Sequence[Destination], namespace: str) -> Resource:
    """``cluster`` for one destination, ``weighted_clusters`` for a split.

    Zero-weight destinations are dropped (so 100/0 is a plain route), and duplicate
    clusters are summed; unset weights count as 0 as in Istio.
    """
    weights: dict[str, int] = {}
    lbs: list[LoadBalancer | None] = []
    for dest in to:
        name, lb = destination_cluster(ctx, dest, namespace)
        lbs.append(lb)
        weight = 1 if len(to) == 1 else dest.weight or 0
        weights[name] = weights.get(name, 0) + weight
    positive = {n: w for n, w in weights.items() if w > 0} or dict.fromkeys(weights, 1)
    out: Resource = ({"cluster": next(iter(positive))} if len(positive) == 1 else
                     {"weighted_clusters": {"clusters": [{"name": n, "weight": w}
                                                         for n, w in positive.items()]}})
    hashes = [clusters.hash_policy(lb) for lb in lbs]
    if hashes[0] is not None and all(h == hashes[0] for h in hashes):
        out["hash_policy"] = hashes[0]
    return out


def retry_policy(retries: Retries | None) -> Resource | None:
    """Envoy's retry policy; Istio's default when unset, none for ``attempts=0``."""
    if retries is not None and retries.attempts == 0:
        return None
    tokens = (retries.retry_on if retries is not None and retries.retry_on
              else DEFAULT_RETRY_ON).split(",")
    codes = [int(t) for t in (t.strip() for t in tokens) if t.isdigit()]
    kinds = [t.strip() for t in tokens if t.strip() and not t.strip().isdigit()]
    if retries is None or not retries.retry_on:
        codes = [503]
    if codes and "retriable-status-codes" not in kinds:
        kinds.append("retriable-status-codes")
    out: Resource = {
        "retry_on": ",".join(kinds),
        "num_retries": 2 if retries is None else retries.attempts,
        "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                                  "typed_config": {"@type": protos.PREVIOUS_HOSTS}}],
        "host_selection_retry_max_attempts": 5,
    }
    if codes:
        out["retriable_status_codes"] = codes
    if retries is not None and retries.per_try_timeout:
        out["per_try_timeout"] = duration(retries.per_try_timeout)
    return out


def _redirect(redirect: Redirect, notes: list[str]) -> Resource:
    out: Resource = {}
    if redirect.uri is not None:
        out["path_redirect"] = redirect.uri
    if redirect.authority is not None:
        out["host_redirect"] = redirect.authority
    if redirect.scheme is not None:
        out["scheme_redirect"] = redirect.scheme
    if redirect.port is not None:
        out["port_redirect"] = redirect.port
    if redirect.redirect_code is not None:
        code = _REDIRECT_CODES.get(redirect.redirect_code)
        if code is None:
            notes.append(f"redirect code {redirect.redirect_code} is not one Envoy can send; "
                         "using 301")
        out["response_code"] = code or "MOVED_PERMANENTLY"
    return out


def header_ops(ops: HeaderOps | None, direction: str) -> Resource:
    """``request_headers_to_add``/``..._to_remove`` (or response) for Istio header ops."""
    if ops is None:
        return {}
    add = [{"header": {"key": k, "value": v}, "append_action": _OVERWRITE}
           for k, v in sorted(ops.set.items())]
    add += [{"header": {"key": k, "value": v}, "append_action": _APPEND}
            for k, v in sorted(ops.add.items())]
    out: Resource = {}
    if add:
        out[f"{direction}_headers_to_add"] = add
    if ops.remove:
        out[f"{direction}_headers_to_remove"] = list(ops.remove)
    return out


def fault_config(fault: Fault) -> Resource:
    out = protos.typed(protos.FAULT)
    if fault.delay is not None:
        out["delay"] = {"fixed_delay": duration(fault.delay.fixed),
                        "percentage": protos.fraction(fault.delay.percent)}
    if fault.abort is not None:
        out["abort"] = {"http_status": fault.abort.status,
                        "percentage": protos.fraction(fault.abort.percent)}
    return out


def cors_config(cors: Cors) -> Resource:
    out = protos.typed(protos.CORS_POLICY)
    if cors.allow_origins:
        out["allow_origin_string_match"] = [string_matcher(o) for o in cors.allow_origins]
    for key, values in (("allow_methods", cors.allow_methods),
                        ("allow_headers", cors.allow_headers),
                        ("expose_headers", cors.expose_headers)):
        if values:
            out[key] = ",".join(values)
    if cors.max_age is not None:
        out["max_age"] = protos.whole_seconds(cors.max_age)
    if cors.allow_credentials is not None:
        out["allow_credentials"] = cors.allow_credentials
    return out


def _action(ctx: RouteContext, route: HttpRoute, namespace: str) -> Resource:
    out: Resource = {}
    if route.redirect is not None:
        out["redirect"] = _redirect(route.redirect, ctx.notes)
    else:
        action = _split(ctx, route.to, namespace)
        action["timeout"] = duration(route.timeout) if route.timeout else "0s"
        retry = retry_policy(route.retries)
        if retry is not None:
            action["retry_policy"] = retry
        if route.mirror is not None:
            mirror, _ = destination_cluster(ctx, route.mirror, namespace)
            action["request_mirror_policies"] = [{
                "cluster": mirror,
                "runtime_fraction": protos.runtime_fraction(route.mirror_percent)}]
        if route.rewrite is not None and route.rewrite.uri is not None:
            action["prefix_rewrite"] = route.rewrite.uri
        if route.rewrite is not None and route.rewrite.authority is not None:
            action["host_rewrite_literal"] = route.rewrite.authority
        out["route"] = action
    if route.headers is not None:
        out |= header_ops(route.headers.request, "request")
        out |= header_ops(route.headers.response, "response")
    per_filter: Resource = {}
    if route.fault is not None:
        per_filter[protos.FAULT_FILTER] = fault_config(route.fault)
    if route.cors is not None:
        per_filter[protos.CORS_FILTER] = cors_config(route.cors)
    if per_filter:
        out["typed_per_filter_config"] = per_filter
    return out


def http_routes(ctx: RouteContext, vs: VirtualService) -> list[Resource]:
    """The Envoy routes of a VirtualService, for the proxy and port of ``ctx``."""
    vs_gateways = bound_gateways(vs.gateways, vs.namespace)
    out: list[Resource] = []
    for index, route in enumerate(vs.http):
        matches: list[Match | None] = [m for m in route.match
                                       if applies(m, ctx.source, vs_gateways, vs.namespace)]
        if route.match and not matches:
            continue
        if not route.match and not vs_gateways & ctx.source.gateways:
            continue
        action = _action(ctx, route, vs.namespace)
        name = route.name or f"{vs.namespace}.{vs.name}.{index}"
        out += [{"name": name, "match": route_match(m), **action}
                for m in (matches or [None])]
    return out


def tcp_split(ctx: RouteContext, vs: VirtualService) -> list[tuple[str, int]] | None:
    """Weighted clusters of the first TCP route that applies to this proxy and port."""
    vs_gateways = bound_gateways(vs.gateways, vs.namespace)
    for route in vs.tcp:
        if route.match:
            if not any(applies(m, ctx.source, vs_gateways, vs.namespace) for m in route.match):
                continue
        elif not vs_gateways & ctx.source.gateways:
            continue
        action = _split(ctx, route.to, vs.namespace)
        if "cluster" in action:
            return [(action["cluster"], 1)]
        return [(c["name"], c["weight"]) for c in action["weighted_clusters"]["clusters"]]
    return None


def default_route(cluster: str) -> Resource:
    """What a sidecar does for a service without a VirtualService: all endpoints."""
    return {"name": "default", "match": route_match(None),
            "route": {"cluster": cluster, "timeout": "0s",
                      "retry_policy": retry_policy(None)}}


def route_table(name: str, virtual_hosts: Sequence[Resource]) -> Resource:
    return {"@type": protos.ROUTE_CONFIGURATION, "name": name,
            "virtual_hosts": list(virtual_hosts)}


def virtual_host(name: str, domains: Sequence[str], routes: Sequence[Resource], *,
                 require_tls: bool = False) -> Resource:
    out: Resource = {"name": name, "domains": list(domains), "routes": list(routes)}
    if require_tls:
        out["require_tls"] = "ALL"
    return out

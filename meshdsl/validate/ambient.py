"""What does not carry over to an ambient namespace, said before anything is compiled.

Ambient namespaces compile to the Gateway API (``meshdsl.compile.gateway_api``); these
rules report, at the user's line, each feature that has no equivalent there and what to
use instead (MD130), a host routed both by a VirtualService and by an HTTPRoute (MD131),
a route whose parent or backend does not exist or cannot be attached (MD132),
authorization that ztunnel would enforce wrongly (MD133), an ambient namespace meshdsl
does not label (MD134), L7 routing in a namespace without a waypoint (MD135), and
retries, which need the Gateway API's experimental channel (MD136, info), and routes
whose order the Gateway API would not keep (MD137, :mod:`.precedence`).
"""

from __future__ import annotations

from collections.abc import Iterator

from meshdsl.compile.gateway_api import filters, ingress, matches, routes
from meshdsl.compile.gateway_api.security import target_ref
from meshdsl.model.dataplane import DataPlane
from meshdsl.model.routing import HttpRoute, VirtualService
from meshdsl.model.spec import MeshSpec
from meshdsl.validate import precedence, raw_routes
from meshdsl.validate.findings import Finding, Severity, error, warning
from meshdsl.validate.security import _HTTP_ONLY_FROM, _HTTP_ONLY_TO

_TCP_UNSUPPORTED = {
    "destination_subnets": "a ServiceEntry or a route per Service",
    "source_labels": "an AuthorizationPolicy on the callers",
    "source_namespace": "an AuthorizationPolicy on the callers' namespace",
    "gateways": "one route per parent (parentRefs)",
}


def _route_features(mesh: MeshSpec, vs: VirtualService, i: int, route: HttpRoute,
                    grpc: bool) -> Iterator[Finding]:
    path = f"VirtualService {vs.namespace}/{vs.name} http[{i}]"
    src = route.source
    if route.fault is not None:
        yield error("MD130", f"{path}.fault", "fault injection has no Gateway API form in "
                    "ambient mode; inject faults in a sidecar namespace or in the app",
                    src)
    for j, match in enumerate(route.match):
        for field in matches.unsupported(match):
            advice = matches.UNSUPPORTED.get(field, "one of " + ", ".join(matches.METHODS))
            yield error("MD130", f"{path}.match[{j}].{field}",
                        f"the Gateway API cannot match on {field}; use {advice}", src)
        if grpc and match.uri is not None and matches.grpc_method(match.uri) is None:
            yield error("MD130", f"{path}.match[{j}].uri",
                        "a GRPCRoute matches gRPC methods: use Uri(exact='/pkg.Service/"
                        "Method') or Uri(prefix='/pkg.Service/')", src)
    if grpc:
        for name in ("rewrite", "redirect", "timeout", "retries", "cors"):
            if getattr(route, name) is not None:
                yield error("MD130", f"{path}.{name}",
                            f"a GRPCRoute has no {name}; route this service over HTTP "
                            "ports or drop the setting", src)
        return
    cors = route.cors
    if cors is not None and any(o.exact is None for o in cors.allow_origins):
        yield error("MD130", f"{path}.cors", "Gateway API CORS origins are exact strings "
                    "(with * wildcards); list them with exact=", src)
    if route.redirect is not None and not filters.redirect_code_supported(
            route.redirect.redirect_code):
        yield error("MD130", f"{path}.redirect", "the Gateway API redirects with 301, 302, "
                    "303, 307 or 308 only", src)
    if route.rewrite is not None and route.rewrite.uri is not None and route.match and any(
            m.uri is not None and m.uri.regex is not None for m in route.match):
        yield error("MD130", f"{path}.rewrite", "a path rewrite after a regex match has no "
                    "Gateway API form; match on a prefix or an exact path", src)
    if route.retries is not None:
        codes = [c for c in (route.retries.retry_on or "").split(",") if c.strip()]
        if any(not c.strip().isdigit() for c in codes):
            yield error("MD130", f"{path}.retries.retry_on", "Gateway API retries list HTTP "
                        "status codes (Istio always retries connect failures); use e.g. "
                        "retry_on='502,503'", src)
        yield Finding("MD136", Severity.INFO, f"{path}.retries",
                      "HTTPRoute retries use the Gateway API experimental channel's `retry` "
                      "field; a cluster with only the standard-channel CRDs refuses the route "
                      "(install the experimental channel's HTTPRoute CRD)", src)


def _features(mesh: MeshSpec, dp: DataPlane) -> Iterator[Finding]:
    for vs in (v for v in mesh.virtual_services if dp.is_ambient(v.namespace)):
        grpc = routes.is_grpc(mesh, vs)
        for i, route in enumerate(vs.http):
            yield from _route_features(mesh, vs, i, route, grpc)
        for i, tcp in enumerate(vs.tcp):
            for j, match in enumerate(tcp.match):
                for field, advice in _TCP_UNSUPPORTED.items():
                    if getattr(match, field):
                        yield error("MD130", f"VirtualService {vs.namespace}/{vs.name} "
                                    f"tcp[{i}].match[{j}].{field}",
                                    f"a TCPRoute cannot match on {field}; use {advice}",
                                    tcp.source)
        if vs.http and dp.waypoint_of(vs.namespace) is None and routes.in_mesh(vs):
            yield error("MD135", f"VirtualService {vs.namespace}/{vs.name}",
                        f"namespace {vs.namespace!r} has no waypoint, so nothing applies "
                        "L7 routes to its services; declare it with waypoint='waypoint'",
                        vs.source)
    for rl in (r for r in mesh.rate_limits if dp.is_ambient(r.namespace)):
        yield error("MD130", f"EnvoyFilter {rl.namespace}/{rl.name}",
                    "waypoints ignore EnvoyFilters, so this rate limit would silently do "
                    "nothing in ambient mode; limit at the ingress Gateway, in the app, or "
                    "keep this namespace in sidecar mode", rl.source)
    for pa in mesh.peer_authentications:
        scoped = dp.is_ambient(pa.namespace) or (
            pa.namespace == mesh.root_namespace and not pa.selector and dp.any_ambient)
        modes = [pa.mode, *pa.port_level_mtls.values()]
        if scoped and "DISABLE" in modes:
            yield error("MD130", f"PeerAuthentication {pa.namespace}/{pa.name}",
                        "ambient mode does not support mTLS DISABLE; use PERMISSIVE",
                        pa.source)
    for dr in (d for d in mesh.destination_rules if dp.is_ambient(d.namespace)):
        ns, name = mesh.resolve_host(dr.host, dr.namespace)
        svc = mesh.service(ns, name) if ns else None
        declared = svc.version_names() if svc is not None else []
        extra = [s.name for s in dr.subsets if s.name not in declared]
        if extra:
            yield error("MD130", f"DestinationRule {dr.namespace}/{dr.name} subsets",
                        f"HTTPRoute has no subsets ({', '.join(extra)}); declare them as "
                        f"versions=[...] of service {name!r} so each gets its own Service",
                        dr.source)
    for gw in (g for g in mesh.gateways if dp.is_ambient(g.namespace)):
        for server in gw.servers:
            mode = server.tls.mode if server.tls is not None else None
            if mode not in ingress.SUPPORTED_TLS:
                yield error("MD130", f"Gateway {gw.namespace}/{gw.name} {server.port.name}",
                            f"TLS mode {mode} has no Gateway API listener form; use SIMPLE "
                            "(Terminate) or PASSTHROUGH", gw.source)


def _crossings(mesh: MeshSpec, dp: DataPlane) -> Iterator[Finding]:
    for vs in mesh.virtual_services:
        ambient = dp.is_ambient(vs.namespace)
        base = f"VirtualService {vs.namespace}/{vs.name}"
        for ref in (g for g in vs.gateways if g != "mesh"):
            gw_ns, _, gw_name = ref.rpartition("/")
            gw = mesh.gateway(gw_ns or vs.namespace, gw_name)
            if gw is not None and dp.is_ambient(gw.namespace) != ambient:
                kinds = ("an HTTPRoute", "an Istio Gateway") if ambient else (
                    "a VirtualService", "a Gateway API Gateway")
                yield error("MD132", f"{base} gateways",
                            f"this route compiles to {kinds[0]} but gateway {ref!r} to "
                            f"{kinds[1]}; put both namespaces in the same data-plane mode",
                            vs.source)
        if not ambient:
            continue
        if routes.in_mesh(vs):
            yield from _mesh_hosts(mesh, vs, base)
        for _, target in routes.backends(mesh, vs):
            if target.known and target.port is None:
                yield error("MD132", f"{base} backendRefs",
                            f"backend {target.name!r} has no port and Gateway API backends "
                            "need one; give the service port=...", vs.source)


def _mesh_hosts(mesh: MeshSpec, vs: VirtualService, base: str) -> Iterator[Finding]:
    """Each host of an in-mesh route is a parent Service, or (a name outside the mesh,
    ``shop.example.com``) one of the route's hostnames: those only select requests on its
    Gateway parents, Istio ignores them on Service parents."""
    parents = routes.parent_services(mesh, vs)
    ingress_too = any(g != "mesh" for g in vs.gateways)
    for host in vs.hosts:
        ns, name = mesh.resolve_host(host, vs.namespace)
        if (ns and mesh.service(ns, name) is None) or not (ns or parents or ingress_too):
            yield error("MD132", f"{base} hosts",
                        f"host {host!r} is not a service of this mesh, so the HTTPRoute "
                        f"would have no parent Service; declare it with "
                        f"mesh.service({name!r}, ...)", vs.source)
        elif not ns and not ingress_too:
            yield warning("MD132", f"{base} hosts",
                          f"host {host!r} is not a service of this mesh: it becomes one of "
                          "the HTTPRoute's hostnames, which Istio ignores on its Service "
                          "parents; drop it, or bind the route to a gateway that serves it",
                          vs.source)


def _authorization(mesh: MeshSpec, dp: DataPlane) -> Iterator[Finding]:
    for ap in (a for a in mesh.authorization_policies if dp.is_ambient(a.namespace)):
        if target_ref(mesh, ap) is not None:
            continue
        path = f"AuthorizationPolicy {ap.namespace}/{ap.name}"
        l7 = [f for rule in ap.rules for op in rule.to for f in _HTTP_ONLY_TO
              if getattr(op, f)]
        l7 += [f for rule in ap.rules for src in rule.from_ for f in _HTTP_ONLY_FROM
               if getattr(src, f)]
        if dp.waypoint_of(ap.namespace) is not None and ap.selector:
            yield error("MD133", f"{path} selector",
                        "behind a waypoint, ztunnel sees the waypoint as every caller, so a "
                        "selector-based policy judges the wrong identity; attach it to a "
                        "service with svc.authorization(...)", ap.source)
        elif l7:
            yield error("MD133", f"{path} rules",
                        f"{', '.join(sorted(set(l7)))} are L7 fields and ztunnel enforces "
                        "this policy at L4, where it denies everything; give the namespace "
                        "a waypoint and attach the policy to a service", ap.source)


def _labels(mesh: MeshSpec, dp: DataPlane) -> Iterator[Finding]:
    created = {n.name for n in mesh.namespaces if n.create}
    for ns in sorted({s.namespace for s in mesh.services if dp.is_ambient(s.namespace)}):
        if ns not in created:
            first = next(s for s in mesh.services if s.namespace == ns)
            yield warning("MD134", f"Namespace {ns}",
                          f"namespace {ns!r} is ambient but meshdsl does not create it, so "
                          "its istio.io/dataplane-mode label is not set; declare "
                          f"mesh.namespace({ns!r}, mode='ambient') or label it yourself",
                          dp.source_of(ns) or first.source)


def check(mesh: MeshSpec) -> Iterator[Finding]:
    dp = mesh.data_plane
    yield from raw_routes.check(mesh)
    if not dp.any_ambient:
        return
    yield from _features(mesh, dp)
    yield from _crossings(mesh, dp)
    yield from _authorization(mesh, dp)
    yield from _labels(mesh, dp)
    yield from precedence.check(mesh)

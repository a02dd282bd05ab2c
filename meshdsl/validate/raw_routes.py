"""Routes across the two APIs: one host must not be routed by both a VirtualService and a
Gateway API route (Istio leaves the result undefined), and a Gateway API route carried
through ``mesh.raw`` must name parents and backends that exist.

Who routes a host: a VirtualService of a sidecar namespace or in ``mesh.raw`` claims its
hosts; a VirtualService of an ambient namespace (compiled to an HTTPRoute) or a raw
HTTPRoute/GRPCRoute claims the Services it is attached to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from meshdsl.compile.gateway_api.refs import GROUP, version_service
from meshdsl.compile.gateway_api.routes import parent_services
from meshdsl.model.base import SourceLocation
from meshdsl.model.spec import MeshSpec
from meshdsl.validate.findings import Finding, error

_ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TCPRoute")


def _meta(manifest: dict[str, Any]) -> tuple[str, str]:
    meta = manifest.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def _is_gateway_api(manifest: dict[str, Any]) -> bool:
    return str(manifest.get("apiVersion", "")).startswith(GROUP + "/")


def _services(mesh: MeshSpec) -> set[tuple[str, str]]:
    known = set()
    for svc in mesh.services:
        known.add((svc.namespace, svc.name))
        known.update((svc.namespace, version_service(svc.name, v)) for v in svc.version_names())
    for raw in mesh.raw:
        if raw.get("kind") == "Service" and raw.get("apiVersion") == "v1":
            known.add(_meta(raw))
    return known


def _gateways(mesh: MeshSpec) -> set[tuple[str, str]]:
    dp = mesh.data_plane
    known = {(g.namespace, g.name) for g in mesh.gateways if dp.is_ambient(g.namespace)}
    spaces = {n.name for n in mesh.namespaces} | {s.namespace for s in mesh.services}
    known |= {(ns, wp) for ns in spaces if (wp := dp.waypoint_of(ns)) is not None}
    known |= {_meta(r) for r in mesh.raw if r.get("kind") == "Gateway" and _is_gateway_api(r)}
    return known


def _spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest.get("spec")
    return spec if isinstance(spec, dict) else {}


def _refs(manifest: dict[str, Any], field: str) -> list[dict[str, Any]]:
    spec = _spec(manifest)
    if field == "parentRefs":
        return [r for r in spec.get("parentRefs") or [] if isinstance(r, dict)]
    return [r for rule in spec.get("rules") or [] if isinstance(rule, dict)
            for r in rule.get("backendRefs") or [] if isinstance(r, dict)]


Claims = dict[tuple[str, str], tuple[str, SourceLocation | None]]
Where = Callable[[dict[str, Any]], SourceLocation | None]


def _nowhere(manifest: dict[str, Any]) -> SourceLocation | None:
    return None


def _claims(mesh: MeshSpec, where: Where) -> tuple[Claims, Claims]:
    """(service -> VirtualService that routes it, service -> HTTPRoute that routes it);
    the first only for services the second has, the only ones that can conflict (so a
    mesh without ambient namespaces or raw Gateway API routes resolves no host here)."""
    ambient = {ns: mesh.data_plane.is_ambient(ns)
               for ns in {vs.namespace for vs in mesh.virtual_services}}
    by_route: Claims = {}
    for vs in mesh.virtual_services:
        if ambient[vs.namespace]:
            for key in parent_services(mesh, vs):
                by_route.setdefault(key, (f"{vs.namespace}/{vs.name}", vs.source))
    for raw in mesh.raw:
        if raw.get("kind") in ("HTTPRoute", "GRPCRoute") and _is_gateway_api(raw):
            ns, name = _meta(raw)
            for ref in _refs(raw, "parentRefs"):
                if ref.get("kind") == "Service":
                    key = (str(ref.get("namespace") or ns), str(ref.get("name")))
                    by_route.setdefault(key, (f"{ns}/{name}", where(raw)))
    by_vs: Claims = {}
    if not by_route:
        return by_vs, by_route
    for vs in mesh.virtual_services:
        if ambient[vs.namespace] or vs.gateways:
            continue
        for key in (mesh.resolve_host(h, vs.namespace) for h in vs.hosts):
            if key in by_route:
                by_vs.setdefault(key, (f"{vs.namespace}/{vs.name}", vs.source))
    for raw in mesh.raw:
        if raw.get("kind") == "VirtualService" and not _spec(raw).get("gateways"):
            ns, name = _meta(raw)
            for host in _spec(raw).get("hosts") or []:
                key = mesh.resolve_host(str(host), ns)
                if key in by_route:
                    by_vs.setdefault(key, (f"{ns}/{name}", where(raw)))
    return by_vs, by_route


def check(mesh: MeshSpec, *, where: Where = _nowhere) -> Iterator[Finding]:
    """Findings for the mesh; ``where`` locates a raw manifest (analyze knows its YAML
    file:line, a program does not)."""
    by_vs, by_route = _claims(mesh, where)
    for key in sorted(set(by_vs) & set(by_route)):
        (vs, vs_src), (route, route_src) = by_vs[key], by_route[key]
        yield error("MD131", f"Service {key[0]}/{key[1]}",
                    f"routed by VirtualService {vs} and by HTTPRoute {route}; Istio leaves "
                    "the result undefined — route it with one API (in an ambient namespace "
                    "the DSL's routes compile to HTTPRoute)", vs_src or route_src)
    raws = [r for r in mesh.raw if r.get("kind") in _ROUTE_KINDS and _is_gateway_api(r)]
    if not raws:
        return
    services, gateways = _services(mesh), _gateways(mesh)
    for raw in raws:
        ns, name = _meta(raw)
        path = f"{raw.get('kind')} {ns}/{name}"
        for ref in _refs(raw, "parentRefs"):
            kind = str(ref.get("kind") or "Gateway")
            key = (str(ref.get("namespace") or ns), str(ref.get("name")))
            known = services if kind == "Service" else gateways if kind == "Gateway" else None
            if known is not None and key not in known:
                yield error("MD132", f"{path} parentRefs",
                            f"parent {kind} {key[0]}/{key[1]} does not exist in this mesh; "
                            "declare it or fix the name", where(raw))
        for ref in _refs(raw, "backendRefs"):
            key = (str(ref.get("namespace") or ns), str(ref.get("name")))
            if str(ref.get("kind") or "Service") == "Service" and key not in services:
                yield error("MD132", f"{path} backendRefs",
                            f"backend Service {key[0]}/{key[1]} does not exist in this mesh; "
                            "declare the service (a version's Service is <service>-<version>)",
                            where(raw))

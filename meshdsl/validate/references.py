"""References between objects: hosts, subsets, gateways and canary versions must exist."""

from __future__ import annotations

from collections.abc import Iterator

from meshdsl.model.base import SourceLocation
from meshdsl.model.routing import Destination
from meshdsl.model.spec import MeshSpec
from meshdsl.validate.findings import Finding, error
from meshdsl.validate.hosts import matches


def _known(mesh: MeshSpec, ns: str, name: str) -> bool:
    return mesh.service(ns, name) is not None


def _external(mesh: MeshSpec, host: str) -> bool:
    """A host that an external declaration (a ServiceEntry) puts in Istio's registry."""
    return any(matches(pattern, host) for se in mesh.service_entries for pattern in se.hosts)


def _check_destination(mesh: MeshSpec, dest: Destination, vs_ns: str, path: str,
                       src: SourceLocation | None) -> Iterator[Finding]:
    ns, name = mesh.resolve_host(dest.host, vs_ns)
    if (not ns or not _known(mesh, ns, name)) and not _external(mesh, dest.host):
        known = sorted(f"{s.name}" if s.namespace == vs_ns else f"{s.name}.{s.namespace}"
                       for s in mesh.services)
        yield error("MD102", path,
                    f"destination host {dest.host!r} is not a service of this mesh; declare it "
                    f"with mesh.service({name!r}, ...) (an external host with "
                    f"mesh.external({dest.host!r}, ...)) or route to one of: "
                    f"{', '.join(known) or 'none'}", src)
        return
    if dest.subset is not None:
        subsets = mesh.subsets_of(ns, name)
        if dest.subset not in subsets:
            yield error("MD101", path,
                        f"subset {dest.subset!r} of {name!r} is not defined; add it to the "
                        f"service's versions=[...] (defined: "
                        f"{', '.join(sorted(subsets)) or 'none'})", src)


def _default_routed(mesh: MeshSpec) -> set[tuple[str, str]]:
    """The services some catch-all route sends all its traffic to, indexed once (not
    once per canary plan)."""
    routed = set()
    for vs in mesh.virtual_services:
        for route in vs.http:
            if route.to and route.is_catch_all():
                targets = {mesh.resolve_host(d.host, vs.namespace) for d in route.to}
                if len(targets) == 1:
                    routed |= targets
    return routed


_UNSEEN: set[str] = set()  # a marker: not yet resolved


def _subsets(mesh: MeshSpec, host: str, vs_ns: str) -> set[str] | None:
    """The subsets defined for the known service ``host`` names, or None for a host that
    names no service of the mesh."""
    ns, name = mesh.resolve_host(host, vs_ns)
    return mesh.subsets_of(ns, name) if ns and _known(mesh, ns, name) else None


def check(mesh: MeshSpec) -> Iterator[Finding]:
    # (host, namespace) -> its service's subsets: the routes of a VirtualService name the
    # same host again and again, so each is resolved once, and a finding's path is
    # formatted only for a destination that is not fine
    known: dict[tuple[str, str], set[str] | None] = {}
    for vs in mesh.virtual_services:
        base = f"VirtualService {vs.namespace}/{vs.name}"
        vs_ns = vs.namespace
        for i, route in enumerate(vs.http):
            for j, dest in enumerate(route.to):
                key = (dest.host, vs_ns)
                subsets = known.get(key, _UNSEEN)
                if subsets is _UNSEEN:
                    subsets = known[key] = _subsets(mesh, dest.host, vs_ns)
                if subsets is not None and (dest.subset is None or dest.subset in subsets):
                    continue
                yield from _check_destination(mesh, dest, vs_ns,
                                              f"{base} http[{i}].route[{j}]", route.source)
            if route.mirror is not None:
                yield from _check_destination(mesh, route.mirror, vs.namespace,
                                              f"{base} http[{i}].mirror", route.source)
        for i, tcp in enumerate(vs.tcp):
            for j, dest in enumerate(tcp.to):
                yield from _check_destination(mesh, dest, vs.namespace,
                                              f"{base} tcp[{i}].route[{j}]", tcp.source)
        for gw in vs.gateways:
            if gw == "mesh":
                continue
            gw_ns, _, gw_name = gw.rpartition("/")
            if mesh.gateway(gw_ns or vs.namespace, gw_name) is None:
                yield error("MD106", f"{base} gateways",
                            f"gateway {gw!r} is not declared; declare it with "
                            f"mesh.gateway({gw_name!r}) or fix the name "
                            f"(declared: {', '.join(g.name for g in mesh.gateways) or 'none'})",
                            vs.source)
    for dr in mesh.destination_rules:
        ns, name = mesh.resolve_host(dr.host, dr.namespace)
        if (not ns or not _known(mesh, ns, name)) and not _external(mesh, dr.host):
            yield error("MD102", f"DestinationRule {dr.namespace}/{dr.name} host",
                        f"host {dr.host!r} is not a service of this mesh; declare it with "
                        f"mesh.service({name!r})", dr.source)
    routed: set[tuple[str, str]] | None = None
    for plan in mesh.canaries:
        path = f"Canary {plan.namespace}/{plan.service}"
        svc = mesh.service(plan.namespace, plan.service)
        if svc is None:
            yield error("MD102", path, f"canary for unknown service {plan.service!r}",
                        plan.source)
            continue
        versions = svc.version_names()
        for role, version in (("target", plan.target), ("stable", plan.stable)):
            if version not in versions:
                yield error("MD112", f"{path} {role}",
                            f"canary {role} version {version!r} is not a version of "
                            f"{plan.service!r}; add it to versions=[...] (versions: "
                            f"{', '.join(versions) or 'none'})", plan.source)
        if plan.target == plan.stable:
            yield error("MD112", f"{path} target",
                        "canary target and stable are the same version", plan.source)
        if routed is None:
            routed = _default_routed(mesh)
        if (svc.namespace, svc.name) not in routed:
            yield error("MD114", path,
                        f"a canary needs a default route of {plan.service!r} to carry its "
                        f"weights; add {plan.service}.route(to=...) without a match",
                        plan.source)

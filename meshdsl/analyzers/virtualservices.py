"""istioctl's VirtualService analyzers, on the input objects as they are.

- destination and mirror hosts must be in the registry as the VirtualService's namespace
  and ``exportTo`` see it (IST0101, meshdsl MD102), with a port the host declares
  (IST0101 ``host:port``) and a port chosen when the host has several (IST0112, MD147);
- a subset must be defined by a DestinationRule for that host (IST0101, MD101);
- a named gateway must exist (IST0101, MD106) and serve one of the hosts (IST0132, MD107);
- two VirtualServices bound to the ``mesh`` gateway must not claim one host in one
  visibility scope (IST0109, MD104), and both are reported.
A VirtualService without hosts is a delegate: its destinations are checked, its hosts
are not (it has none), as in istioctl.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from meshdsl.analyzers.registry import (
    ALL,
    LOCAL,
    Obj,
    Registry,
    dicts,
    fqdn,
    host_matches,
    service_name,
    strings,
)
from meshdsl.validate.findings import Finding, error

MESH = "mesh"


@dataclass(frozen=True)
class Routed:
    """One destination of a VirtualService and where it is."""

    path: tuple[str | int, ...]
    label: str
    destination: dict[str, Any]


def destinations(vs: Obj) -> Iterator[Routed]:
    for section in ("tcp", "tls", "http"):
        for i, rule in enumerate(dicts(vs.spec.get(section))):
            for j, route in enumerate(dicts(rule.get("route"))):
                dest = route.get("destination")
                if isinstance(dest, dict):
                    yield Routed(("spec", section, i, "route", j, "destination", "host"),
                                 f"{section}[{i}].route[{j}]", dest)


def mirrors(vs: Obj) -> Iterator[Routed]:
    for i, rule in enumerate(dicts(vs.spec.get("http"))):
        if isinstance(rule.get("mirror"), dict):
            yield Routed(("spec", "http", i, "mirror", "host"), f"http[{i}].mirror",
                         rule["mirror"])
        for j, mirror in enumerate(dicts(rule.get("mirrors"))):
            if isinstance(mirror.get("destination"), dict):
                yield Routed(("spec", "http", i, "mirrors", j, "destination", "host"),
                             f"http[{i}].mirrors[{j}]", mirror["destination"])


def _port(dest: dict[str, Any]) -> int | None:
    port = dest.get("port")
    number = port.get("number") if isinstance(port, dict) else None
    return number if isinstance(number, int) else None


def _hosts(vs: Obj, routed: Routed, registry: Registry, what: str) -> Iterator[Finding]:
    host = str(routed.destination.get("host", ""))
    path = f"{vs} {routed.label}"
    where = vs.doc.where(routed.path)
    entry = registry.lookup(vs.namespace, strings(vs.spec.get("exportTo")), host)
    if entry is None:
        if not registry.judges(vs.namespace, host):
            return
        yield error("MD102", path, f"Referenced {what} not found: {host!r} (no Service or "
                    "ServiceEntry visible from this namespace declares it)", where)
        return
    port = _port(routed.destination)
    if port is None and len(entry.ports) > 1:
        yield error("MD147", path, f"{host!r} exposes ports {list(entry.ports)}: choose one "
                    "with port=... in the destination", where)
    elif port is not None and port not in entry.ports:
        yield error("MD102", path, f"Referenced host:port not found: '{host}:{port}' "
                    f"({entry.owner} declares {list(entry.ports) or 'no ports'})", where)


def _subset(vs: Obj, routed: Routed, registry: Registry) -> Iterator[Finding]:
    subset = routed.destination.get("subset")
    if not subset:
        return
    host = str(routed.destination.get("host", ""))
    ns, name = service_name(vs.namespace, host)
    if (ns, name, str(subset)) not in registry.subsets:
        yield error("MD101", f"{vs} {routed.label}",
                    f"Referenced host+subset in destinationrule not found: "
                    f"'{host}+{subset}'", vs.doc.where(routed.path))


def _gateway_hosts(gw: Obj, vs_namespace: str) -> list[str]:
    """A gateway's server hosts as a VirtualService in ``vs_namespace`` sees them."""
    out = []
    for server in dicts(gw.spec.get("servers")):
        for host in strings(server.get("hosts")):
            ns, _, name = host.rpartition("/")
            if not ns or ns in (ALL, vs_namespace) or \
                    (ns == LOCAL and gw.namespace == vs_namespace):
                out.append(name)
    return out


def _gateways(vs: Obj, registry: Registry) -> Iterator[Finding]:
    hosts = strings(vs.spec.get("hosts"))
    for i, ref in enumerate(strings(vs.spec.get("gateways"))):
        if ref == MESH:
            continue
        ns, _, name = ref.rpartition("/")
        gw = next((g for g in registry.of("Gateway")
                   if g.namespace == (ns or vs.namespace) and g.name == name), None)
        where = vs.doc.where(("spec", "gateways", i))
        if gw is None:
            yield error("MD106", f"{vs} gateways[{i}]", f"Referenced gateway not found: "
                        f"{ref!r}", where)
        served = _gateway_hosts(gw, vs.namespace) if gw else []
        if not any(host_matches(g, h) for g in served for h in hosts):
            yield error("MD107", f"{vs} gateways[{i}]",
                          f"one or more host {hosts} defined in VirtualService "
                          f"{vs.full_name} not found in Gateway "
                          f"{ns or vs.namespace}/{name}", where)


def _mesh_conflicts(registry: Registry) -> Iterator[Finding]:
    claims: dict[tuple[str, str], list[Obj]] = {}
    for vs in registry.of("VirtualService"):
        gateways = strings(vs.spec.get("gateways"))
        if gateways and MESH not in gateways:
            continue
        export = strings(vs.spec.get("exportTo"))
        scopes = [ALL] if not export or ALL in export else \
            sorted({vs.namespace if e == LOCAL else e for e in export})
        for scope in scopes:
            for host in strings(vs.spec.get("hosts")):
                claims.setdefault((scope, fqdn(vs.namespace, host)), []).append(vs)
    for (scope, host), owners in sorted(claims.items()):
        if len(owners) < 2:
            continue
        names = ",".join(o.full_name for o in owners)
        for vs in owners:
            yield error("MD104", f"{vs} hosts",
                        f"The VirtualServices {names} associated with mesh gateway define "
                        f"the same host {scope}/{host}; merge them into one resource",
                        vs.doc.where())


def check(registry: Registry) -> Iterator[Finding]:
    for vs in registry.of("VirtualService"):
        for routed in destinations(vs):
            yield from _hosts(vs, routed, registry, "host")
            yield from _subset(vs, routed, registry)
        for routed in mirrors(vs):
            yield from _hosts(vs, routed, registry, "mirror host")
            yield from _subset(vs, routed, registry)
        yield from _gateways(vs, registry)
    yield from _mesh_conflicts(registry)

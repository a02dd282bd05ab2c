"""Gateways: routes bound to a gateway must be for hosts it serves, and two gateways on
the same proxies must not claim the same port and host."""

from __future__ import annotations

from collections.abc import Iterator

from meshdsl.compile.gateway_api import routes
from meshdsl.model.routing import VirtualService
from meshdsl.model.spec import MeshSpec
from meshdsl.validate import hosts
from meshdsl.validate.findings import Finding, error, warning


def _gateway_hosts(mesh: MeshSpec, vs: VirtualService) -> list[str]:
    """The hosts a route asks its gateways for: in an ambient namespace, a route that is
    also in-mesh attaches its Service hosts to those Services, only the rest are the
    HTTPRoute's hostnames on the Gateway."""
    if mesh.data_plane.is_ambient(vs.namespace) and routes.in_mesh(vs):
        return routes.hostnames(mesh, vs)
    return vs.hosts


def check(mesh: MeshSpec) -> Iterator[Finding]:
    for vs in mesh.virtual_services:
        for ref in vs.gateways:
            if ref == "mesh":
                continue
            gw_ns, _, gw_name = ref.rpartition("/")
            gw = mesh.gateway(gw_ns or vs.namespace, gw_name)
            if gw is None:
                continue  # reported as MD106
            served = [hosts.server_host(h) for s in gw.servers for h in s.hosts]
            for host in _gateway_hosts(mesh, vs):
                if not any(hosts.matches(pattern, host) for pattern in served):
                    yield error("MD107", f"VirtualService {vs.namespace}/{vs.name} hosts",
                                f"host {host!r} is not served by gateway {ref!r} (it serves "
                                f"{', '.join(served)}); add it to the gateway's hosts or "
                                "fix the route's hosts", vs.source)
    servers = [(gw, server) for gw in mesh.gateways for server in gw.servers]
    for i, (gw_a, a) in enumerate(servers):
        for gw_b, b in servers[i + 1:]:
            if gw_a is gw_b or gw_a.selector != gw_b.selector:
                continue
            if a.port.number != b.port.number:
                continue
            for ha in a.hosts:
                for hb in b.hosts:
                    x, y = hosts.server_host(ha), hosts.server_host(hb)
                    if not hosts.overlap(x, y):
                        continue
                    path = f"Gateway {gw_b.namespace}/{gw_b.name} port {b.port.number}"
                    msg = (f"gateway {gw_a.namespace}/{gw_a.name} already serves {x!r} on "
                           f"port {a.port.number} for the same proxies "
                           f"({', '.join(f'{k}={v}' for k, v in gw_b.selector.items())})")
                    if x == y:
                        yield error("MD108", path, msg + "; merge the servers into one "
                                    "gateway or use different hosts", gw_b.source)
                    else:
                        yield warning("MD108", path, msg + f"; {y!r} overlaps it, so which "
                                      "gateway answers depends on Istio's merge order",
                                      gw_b.source)

"""What one proxy gets (:class:`ProxyConfig`) and the clusters every proxy shares.

Every proxy — each sidecar, gateway and waypoint — knows every service of the mesh, as in
Istio without a ``Sidecar`` resource: a cluster per service port and one per subset of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from meshdsl.compile.envoy import clusters
from meshdsl.compile.envoy.clusters import Caller
from meshdsl.compile.envoy.placement import WaypointKey, WorkloadKey, service_ports
from meshdsl.compile.envoy.protos import Resource
from meshdsl.compile.envoy.topology import Topology
from meshdsl.model.service import ServiceSpec


class ProxyKind(StrEnum):
    SIDECAR = "sidecar"
    GATEWAY = "gateway"
    WAYPOINT = "waypoint"
    ZTUNNEL = "ztunnel"
    """A workload's L4 proxy in an ambient namespace (ztunnel's part for that workload)."""


@dataclass(frozen=True)
class ProxyConfig:
    """The xDS resources of one Envoy, ready for ``EnvoyProcess.update``.

    ``listeners`` name their route tables through RDS; ``routes`` holds those tables (pass
    both; ``reconciler.targets.envoy.files.inline_rds`` inlines them for a static
    bootstrap). Every resource carries its ``@type``. ``notes`` say what the local mesh had
    to leave out or approximate for this proxy, for the user to read.
    """

    id: str
    kind: ProxyKind
    listeners: list[Resource]
    clusters: list[Resource]
    routes: list[Resource]
    notes: tuple[str, ...] = ()
    workload: WorkloadKey | None = None
    gateway: str | None = None
    principal: str | None = None
    waypoint: WaypointKey | None = None

    def cluster(self, name: str) -> Resource:
        return _named(self.clusters, name, "cluster")

    def listener(self, name: str) -> Resource:
        return _named(self.listeners, name, "listener")

    def route_table(self, name: str) -> Resource:
        return _named(self.routes, name, "route table")


def _named(resources: Iterable[Resource], name: str, what: str) -> Resource:
    for resource in resources:
        if resource.get("name") == name:
            return resource
    raise KeyError(f"no {what} named {name!r}")


def mesh_clusters(topo: Topology, caller: Caller, notes: list[str], *,
                  services: Iterable[ServiceSpec] | None = None) -> list[Resource]:
    """Every service port's cluster plus one per DestinationRule subset (of ``services``:
    default all)."""
    out: list[Resource] = []
    for svc in topo.spec.services if services is None else services:
        for port in service_ports(svc):
            for subset in [None, *(s.name for s in topo.subsets(svc))]:
                out.append(clusters.outbound(topo, svc, port, subset, caller, notes))
    return out


def missing_clusters(missing: Iterable[str]) -> list[Resource]:
    """Empty clusters for destinations nothing else defines (see ``RouteContext``)."""
    return [clusters.unknown_host(name) for name in sorted(missing)]


def finish(resources: Iterable[Resource]) -> list[Resource]:
    """Deduplicated by name, sorted, and free of shared sub-objects (a JSON round trip), so
    the same input gives byte-identical output and callers may edit what they get."""
    by_name: dict[str, Resource] = {}
    for resource in resources:
        by_name.setdefault(str(resource["name"]), resource)
    return [json.loads(json.dumps(by_name[name])) for name in sorted(by_name)]


def dedupe_notes(notes: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(notes))


def assemble(topo: Topology, caller: Caller, *, proxy_id: str, kind: ProxyKind,
             listeners: Iterable[Resource], tables: Iterable[Resource],
             own_clusters: Iterable[Resource] = (),
             missing: Iterable[str] = (), notes: list[str],
             workload: WorkloadKey | None = None, gateway: str | None = None,
             principal: str | None = None) -> ProxyConfig:
    """One proxy's config from its own listeners, route tables and clusters: every mesh
    cluster (:func:`mesh_clusters`) and the empty ones for ``missing`` destinations are added,
    and every list is finished (:func:`finish`)."""
    cluster_list = [*mesh_clusters(topo, caller, notes), *own_clusters,
                    *missing_clusters(missing)]
    return ProxyConfig(id=proxy_id, kind=kind, listeners=finish(listeners),
                       clusters=finish(cluster_list), routes=finish(tables),
                       notes=dedupe_notes(notes), workload=workload, gateway=gateway,
                       principal=principal)

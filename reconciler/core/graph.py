"""The mesh as a graph a person can read: what the program declares laid over what flows.

Nodes are gateways, services and workloads (a service's versions), grouped by namespace.
Edges come from two places and are merged:

- *declared*: a gateway's routes to services, a service's routes to its versions (with the
  declared weight) — from the program, so a route nobody uses yet is on the graph;
- *seen*: per (source workload, destination workload) the requests/s, error %, P50/P99 and
  whether the connection was mutual TLS — from Istio's metrics (Kiali's queries) or the
  Envoys' own stats. A request from ``a-v1`` to ``b-v2`` is drawn as ``a-v1 → b`` (the
  caller's view of the service) and ``b → b-v2`` (how the service's traffic splits), as in
  Kiali's versioned-app graph with service nodes.

An edge declared but idle is marked ``idle`` (drawn dashed); traffic nobody declared is
``undeclared``. Health follows Kiali's defaults: an edge is *failure* at 5% errors or more,
*degraded* above 0.1%, else *healthy*; a node takes the worst of the edges into it.

Merging percentiles of several series cannot be exact; an aggregated edge shows the
*largest* P50/P99 of its parts (the worst caller's view) rather than invent a value.
Pure: no I/O, deterministic output (sorted), so the page and its tests see the same JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from meshdsl.model.spec import MeshSpec

__all__ = ["DEGRADED_PCT", "FAILURE_PCT", "EdgeStats", "build_graph", "gateway_id",
           "health", "service_id", "source_node", "workload_id"]

FAILURE_PCT = 5.0
DEGRADED_PCT = 0.1
_RANK = {"none": 0, "healthy": 1, "degraded": 2, "failure": 3}


def gateway_id(namespace: str, name: str) -> str:
    return f"gw:{namespace}/{name}"


def service_id(namespace: str, name: str) -> str:
    return f"svc:{namespace}/{name}"


def workload_id(namespace: str, service: str, version: str) -> str:
    return f"wl:{namespace}/{service}/{version}"


@dataclass(frozen=True)
class EdgeStats:
    """Traffic seen from ``source`` (a workload or gateway node id, or ``"unknown"``) to
    one workload of a service, over the measuring window. An empty ``source`` is traffic a
    service's waypoint sent on to a workload without naming its callers (the local mesh's
    waypoint series carry no source labels): it is drawn on the service -> workload edge
    only, so callers already drawn are not counted twice."""

    source: str
    namespace: str
    service: str
    version: str
    rps: float
    error_rps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    mtls: bool | None = None


def health(rps: float, error_rps: float) -> str:
    if rps <= 0:
        return "none"
    pct = 100.0 * error_rps / rps
    return "failure" if pct >= FAILURE_PCT else "degraded" if pct > DEGRADED_PCT \
        else "healthy"


@dataclass
class _Edge:
    source: str
    target: str
    declared: bool = False
    weight: int | None = None
    rps: float = 0.0
    error_rps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    mtls: set[bool] = field(default_factory=set)

    def add(self, stats: EdgeStats) -> None:
        self.rps += stats.rps
        self.error_rps += stats.error_rps
        self.p50_ms = _worst(self.p50_ms, stats.p50_ms)
        self.p99_ms = _worst(self.p99_ms, stats.p99_ms)
        if stats.mtls is not None:
            self.mtls.add(stats.mtls)

    def to_json(self) -> dict[str, Any]:
        seen = self.rps > 0
        return {
            "id": f"{self.source}->{self.target}", "source": self.source,
            "target": self.target, "declared": self.declared, "weight": self.weight,
            "rps": round(self.rps, 3),
            "error_pct": round(100.0 * self.error_rps / self.rps, 2) if seen else None,
            "p50_ms": _round(self.p50_ms), "p99_ms": _round(self.p99_ms),
            "mtls": (True if self.mtls == {True} else False if False in self.mtls
                     else None),
            "health": health(self.rps, self.error_rps),
            "state": "active" if seen else "idle",
            "undeclared": seen and not self.declared,
        }


def _worst(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class _Builder:
    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: dict[tuple[str, str], _Edge] = {}

    def node(self, node_id: str, kind: str, namespace: str, label: str, **extra: Any
             ) -> None:
        if node_id not in self.nodes:
            self.nodes[node_id] = {"id": node_id, "kind": kind, "namespace": namespace,
                                   "label": label, "declared": False, **extra}
        ns = f"ns:{namespace}"
        if ns not in self.nodes:
            self.nodes[ns] = {"id": ns, "kind": "namespace", "namespace": namespace,
                              "label": namespace, "declared": True}

    def edge(self, source: str, target: str) -> _Edge:
        key = (source, target)
        if key not in self.edges:
            self.edges[key] = _Edge(source, target)
        return self.edges[key]


def _declare(b: _Builder, spec: MeshSpec) -> None:
    for svc in spec.services:
        sid = service_id(svc.namespace, svc.name)
        b.node(sid, "service", svc.namespace, svc.name, declared=True)
        for version in svc.versions:
            b.node(workload_id(svc.namespace, svc.name, version.name), "workload",
                   svc.namespace, f"{svc.name} {version.name}", service=svc.name,
                   version=version.name, declared=True)
    for gw in spec.gateways:
        b.node(gateway_id(gw.namespace, gw.name), "gateway", gw.namespace, gw.name,
               declared=True)
    known = {(s.namespace, s.name) for s in spec.services}
    for vs in spec.virtual_services:
        sources: list[str] = [gateway_id(*_split(g, vs.namespace)) for g in vs.gateways
                              if g != "mesh"]
        for route in vs.http:
            total = len(route.to)
            for dest in route.to:
                ns, name = _host(dest.host, vs.namespace)
                if (ns, name) not in known:
                    continue
                sid = service_id(ns, name)
                for src in sources:
                    b.edge(src, sid).declared = True
                if dest.subset:
                    edge = b.edge(sid, workload_id(ns, name, dest.subset))
                    edge.declared = True
                    weight = dest.weight if dest.weight is not None else (
                        100 if total == 1 else None)
                    if weight is not None:   # the last route naming it: the default
                        edge.weight = weight


def source_node(spec: MeshSpec | None, namespace: str, workload: str) -> str:
    """The node id of a workload named as Istio's ``source_workload`` label names it (the
    Deployment, ``<service>-<version>``), or of a gateway of that name."""
    if spec is not None:
        for svc in spec.services:
            if svc.namespace != namespace:
                continue
            for version in svc.versions:
                if workload in (f"{svc.name}-{version.name}", f"{svc.name}-{version.name}-"
                                "deployment"):
                    return workload_id(namespace, svc.name, version.name)
        for gw in spec.gateways:
            if workload == gw.name or workload.startswith("istio-ingressgateway"):
                return gateway_id(gw.namespace, gw.name)
    return f"wl:{namespace}/{workload}" if workload and workload != "unknown" else "unknown"


def _split(ref: str, default_ns: str) -> tuple[str, str]:
    ns, _, name = ref.rpartition("/")
    return (ns or default_ns), name


def _host(host: str, default_ns: str) -> tuple[str, str]:
    parts = host.split(".")
    return (parts[1] if len(parts) > 1 else default_ns), parts[0]


def _observe(b: _Builder, traffic: Iterable[EdgeStats]) -> None:
    for stats in traffic:
        if stats.rps <= 0:
            continue
        sid = service_id(stats.namespace, stats.service)
        wid = workload_id(stats.namespace, stats.service, stats.version)
        source = _gateway_of(b, stats.source, sid)
        if source != stats.source:
            stats = replace(stats, source=source)
        b.node(sid, "service", stats.namespace, stats.service)
        if stats.version:   # empty: sent to the whole service, no version known
            b.node(wid, "workload", stats.namespace, f"{stats.service} {stats.version}",
                   service=stats.service, version=stats.version)
        if not stats.source:   # a waypoint's view: the service's split, callers unnamed
            if stats.version:
                b.edge(sid, wid).add(stats)
            continue
        if stats.source not in b.nodes:
            kind, _, rest = stats.source.partition(":")
            ns = rest.split("/", 1)[0] if rest else "unknown"
            label = rest.split("/", 1)[-1].replace("/", " ") if rest else stats.source
            b.node(stats.source, {"gw": "gateway", "wl": "workload"}.get(kind, "unknown"),
                   ns, label)
        b.edge(stats.source, sid).add(stats)
        if stats.version:
            b.edge(sid, wid).add(stats)


def _gateway_of(b: _Builder, source: str, sid: str) -> str:
    """A gateway proxy serving several declared gateways (the local mesh's one ingress
    Envoy, Istio's ``istio-ingressgateway``) is drawn as the declared gateway that routes
    to this service, when exactly one does."""
    if not source.startswith("gw:") or b.nodes.get(source, {}).get("declared"):
        return source
    routed = [src for (src, dst), edge in b.edges.items()
              if dst == sid and edge.declared and src.startswith("gw:")]
    return routed[0] if len(routed) == 1 else source


def build_graph(spec: MeshSpec | None, traffic: Sequence[EdgeStats], *,
                canaries: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Nodes and edges for the page. ``canaries``: a rollout view per service node id
    (see :mod:`reconciler.delivery.view`), attached to that node."""
    b = _Builder()
    if spec is not None:
        _declare(b, spec)
    _observe(b, traffic)
    edges = [e.to_json() for _, e in sorted(b.edges.items())]
    worst: dict[str, str] = {}
    for edge in edges:
        now = worst.get(edge["target"], "none")
        if _RANK[edge["health"]] > _RANK[now]:
            worst[edge["target"]] = edge["health"]
    nodes = []
    for node_id, node in sorted(b.nodes.items()):
        out = dict(node)
        if node["kind"] != "namespace":
            out["parent"] = f"ns:{node['namespace']}"
            out["health"] = worst.get(node_id, "none")
        canary = (canaries or {}).get(node_id)
        if canary is not None:
            out["canary"] = dict(canary)
        nodes.append(out)
    return {"nodes": nodes, "edges": edges}

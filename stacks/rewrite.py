"""Per-environment changes to a :class:`MeshSpec`: pure functions from a spec to a spec.

A stack deploys the *same* mesh program everywhere; what differs per environment
(namespaces, external hosts, the gateway's TLS secret, replica counts) is rewritten here,
at the model level, before compilation. So ``compile_mesh(rewritten)`` is the single
source of every object, and principals, FQDN hosts and gateway references derived by the
compiler follow a renamed namespace automatically.

Every map is keyed by what the *program* says (its namespaces, hosts, credentials), so one
key means the same thing in every stack file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshdsl.model.canary import CanaryPlan
from meshdsl.model.external import ServiceEntry
from meshdsl.model.gateway import Gateway, Server
from meshdsl.model.matching import L4Match, Match
from meshdsl.model.policy import DestinationRule
from meshdsl.model.routing import Destination, HttpRoute, TcpRoute, VirtualService
from meshdsl.model.security import AuthorizationPolicy, From, Rule, To
from meshdsl.model.service import ServiceSpec
from meshdsl.model.spec import MeshSpec
from meshdsl.model.tenancy import Tenancy, object_ref, parse_ref

_KEEP = frozenset({".", "*", "~", "mesh"})  # exportTo / gateway / host wildcards


# --- what a program uses (the valid keys of each map) ------------------------------------


def deployment_names(spec: MeshSpec) -> list[str]:
    """``<namespace>/<service>-<version>`` of every Deployment the program declares."""
    return [f"{svc.namespace}/{svc.name}-{wl.version}" for svc in spec.services
            for wl in svc.workloads]


def used_namespaces(spec: MeshSpec) -> set[str]:
    """Every namespace an object of the program lives in (declared or not)."""
    found = {spec.root_namespace, *(ns.name for ns in spec.namespaces)}
    for group in (spec.services, spec.virtual_services, spec.destination_rules, spec.gateways,
                  spec.peer_authentications, spec.authorization_policies, spec.rate_limits,
                  spec.canaries, spec.service_entries, spec.workload_entries, spec.telemetry):
        found.update(obj.namespace for obj in group)
    for raw in spec.raw:
        meta = raw.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("namespace"), str):
            found.add(meta["namespace"])
    return found


def _server_host(host: str) -> str:
    return host.split("/", 1)[1] if "/" in host else host


def _route_destinations(vs: VirtualService) -> Iterator[Destination]:
    for route in vs.http:
        yield from route.to
        if route.mirror is not None:
            yield route.mirror
    for tcp in vs.tcp:
        yield from tcp.to


def used_hosts(spec: MeshSpec) -> set[str]:
    """Hosts as written in the program: VirtualService and Gateway hosts, destinations,
    DestinationRule hosts, ServiceEntry hosts and AuthorizationPolicy operation hosts."""
    found: set[str] = {h for se in spec.service_entries for h in se.hosts}
    for vs in spec.virtual_services:
        found.update(vs.hosts)
        found.update(d.host for d in _route_destinations(vs))
    found.update(dr.host for dr in spec.destination_rules)
    found.update(_server_host(h) for gw in spec.gateways for s in gw.servers for h in s.hosts)
    for ap in spec.authorization_policies:
        for rule in ap.rules:
            for op in rule.to:
                found.update(op.hosts)
                found.update(op.not_hosts)
    return found - _KEEP


def used_credentials(spec: MeshSpec) -> set[str]:
    """Secret names the program's gateways serve TLS with (``credentialName``)."""
    return {s.tls.credential_name for gw in spec.gateways for s in gw.servers
            if s.tls is not None and s.tls.credential_name}


def _replace(spec: MeshSpec, **update: Any) -> MeshSpec:
    """``spec`` with some fields replaced, as a new instance: ``model_copy`` would carry over
    ``MeshSpec``'s cached lookup indexes (pydantic copies ``__dict__``), stale after a
    rename."""
    values = {name: getattr(spec, name) for name in MeshSpec.model_fields}
    return MeshSpec.model_validate({**values, **update})


# --- replicas -----------------------------------------------------------------------------


def scale(spec: MeshSpec, replicas: int | Mapping[str, int]) -> MeshSpec:
    """Set the replicas of every Deployment (an int) or of the named ones (a map keyed by
    :func:`deployment_names`); unnamed Deployments keep the program's count."""
    def count(svc: ServiceSpec, version: str, current: int) -> int:
        if isinstance(replicas, int):
            return replicas
        return replicas.get(f"{svc.namespace}/{svc.name}-{version}", current)

    services = [svc.model_copy(update={"workloads": [
        wl.model_copy(update={"replicas": count(svc, wl.version, wl.replicas)})
        for wl in svc.workloads]}) for svc in spec.services]
    return _replace(spec, services=services)


# --- renaming namespaces, hosts and credentials -------------------------------------------


@dataclass(frozen=True)
class Renames:
    """What to rename; anything not in a map stays as the program wrote it."""

    namespaces: Mapping[str, str] = field(default_factory=dict)
    hosts: Mapping[str, str] = field(default_factory=dict)
    credentials: Mapping[str, str] = field(default_factory=dict)


def relocate(spec: MeshSpec, renames: Renames) -> MeshSpec:
    """The same mesh in other namespaces, with other external hosts and TLS secrets."""
    return _Renamer(renames).spec(spec)


class _Renamer:
    def __init__(self, renames: Renames) -> None:
        self.r = renames

    # -- names ---------------------------------------------------------------------------
    def ns(self, name: str) -> str:
        return self.r.namespaces.get(name, name)

    def ns_opt(self, name: str | None) -> str | None:
        return None if name is None else self.ns(name)

    def nss(self, names: list[str]) -> list[str]:
        return [n if n in _KEEP else self.ns(n) for n in names]

    def host(self, host: str) -> str:
        """An explicit host rename wins; otherwise ``name.ns[.svc…]`` follows its namespace
        (the same reading as :meth:`MeshSpec.resolve_host`)."""
        if host in self.r.hosts:
            return self.r.hosts[host]
        parts = host.split(".")
        if len(parts) == 2 or (len(parts) >= 3 and parts[2] == "svc"):
            parts[1] = self.ns(parts[1])
        return ".".join(parts)

    def ref(self, ref: str) -> str:
        """``namespace/name`` references (gateways, server hosts): rename the namespace."""
        if "/" not in ref:
            return ref
        ns, rest = ref.split("/", 1)
        return f"{ns if ns in _KEEP else self.ns(ns)}/{rest}"

    def server_host(self, host: str) -> str:
        if "/" not in host:
            return self.r.hosts.get(host, host)
        ns, name = host.split("/", 1)
        return self.ref(f"{ns}/{self.r.hosts.get(name, name)}")

    def principal(self, principal: str) -> str:
        """``<trust-domain>/ns/<namespace>/sa/<account>`` follows its namespace."""
        parts = principal.split("/")
        if len(parts) >= 4 and parts[-4] == "ns" and parts[-2] == "sa":
            parts[-3] = self.ns(parts[-3])
        return "/".join(parts)

    # -- objects -------------------------------------------------------------------------
    def destination(self, dest: Destination) -> Destination:
        return dest.model_copy(update={"host": self.host(dest.host)})

    def match(self, match: Match) -> Match:
        return match.model_copy(update={"source_namespace": self.ns_opt(match.source_namespace),
                                        "gateways": [self.ref(g) for g in match.gateways]})

    def l4_match(self, match: L4Match) -> L4Match:
        return match.model_copy(update={"source_namespace": self.ns_opt(match.source_namespace),
                                        "gateways": [self.ref(g) for g in match.gateways]})

    def http_route(self, route: HttpRoute) -> HttpRoute:
        return route.model_copy(update={
            "match": [self.match(m) for m in route.match],
            "to": [self.destination(d) for d in route.to],
            "mirror": None if route.mirror is None else self.destination(route.mirror)})

    def tcp_route(self, route: TcpRoute) -> TcpRoute:
        return route.model_copy(update={"match": [self.l4_match(m) for m in route.match],
                                        "to": [self.destination(d) for d in route.to]})

    def virtual_service(self, vs: VirtualService) -> VirtualService:
        return vs.model_copy(update={
            "namespace": self.ns(vs.namespace), "hosts": [self.host(h) for h in vs.hosts],
            "gateways": [self.ref(g) for g in vs.gateways],
            "http": [self.http_route(r) for r in vs.http],
            "tcp": [self.tcp_route(r) for r in vs.tcp], "export_to": self.nss(vs.export_to)})

    def destination_rule(self, dr: DestinationRule) -> DestinationRule:
        return dr.model_copy(update={"namespace": self.ns(dr.namespace),
                                     "host": self.host(dr.host),
                                     "export_to": self.nss(dr.export_to)})

    def server(self, server: Server) -> Server:
        tls = server.tls
        credential = None if tls is None else tls.credential_name
        if tls is not None and credential is not None and credential in self.r.credentials:
            tls = tls.model_copy(update={"credential_name": self.r.credentials[credential]})
        return server.model_copy(update={"hosts": [self.server_host(h) for h in server.hosts],
                                         "tls": tls})

    def gateway(self, gw: Gateway) -> Gateway:
        return gw.model_copy(update={"namespace": self.ns(gw.namespace),
                                     "servers": [self.server(s) for s in gw.servers]})

    def source(self, frm: From) -> From:
        return frm.model_copy(update={
            "services": [s.model_copy(update={"namespace": self.ns_opt(s.namespace)})
                         for s in frm.services],
            "namespaces": self.nss(frm.namespaces),
            "not_namespaces": self.nss(frm.not_namespaces),
            "principals": [self.principal(p) for p in frm.principals],
            "not_principals": [self.principal(p) for p in frm.not_principals]})

    def operation(self, op: To) -> To:
        return op.model_copy(update={"hosts": [self.host(h) for h in op.hosts],
                                     "not_hosts": [self.host(h) for h in op.not_hosts]})

    def rule(self, rule: Rule) -> Rule:
        return rule.model_copy(update={"from_": [self.source(f) for f in rule.from_],
                                       "to": [self.operation(o) for o in rule.to]})

    def authorization(self, ap: AuthorizationPolicy) -> AuthorizationPolicy:
        return ap.model_copy(update={"namespace": self.ns(ap.namespace),
                                     "rules": [self.rule(r) for r in ap.rules]})

    def canary(self, plan: CanaryPlan) -> CanaryPlan:
        stage = plan.header_stage
        if stage is not None:
            stage = stage.model_copy(update={"match": self.match(stage.match)})
        return plan.model_copy(update={"namespace": self.ns(plan.namespace),
                                       "header_stage": stage})

    def service_entry(self, se: ServiceEntry) -> ServiceEntry:
        return se.model_copy(update={"namespace": self.ns(se.namespace),
                                     "hosts": [self.host(h) for h in se.hosts],
                                     "export_to": self.nss(se.export_to)})

    def tenancy(self, fence: Tenancy | None) -> Tenancy | None:
        """The fence follows: its namespaces, and the namespaces of what it adopts."""
        if fence is None:
            return None
        adopt = []
        for ref in fence.adopt:
            kind, ns, name = parse_ref(ref)
            adopt.append(object_ref(kind, self.ns(ns) if ns else "",
                                    self.ns(name) if kind == "Namespace" else name))
        return fence.model_copy(update={
            "namespaces": None if fence.namespaces is None else self.nss(fence.namespaces),
            "adopt": adopt})

    def raw(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("namespace"), str):
            return dict(manifest)
        return {**manifest, "metadata": {**meta, "namespace": self.ns(meta["namespace"])}}

    def spec(self, spec: MeshSpec) -> MeshSpec:
        def moved(obj: Any) -> Any:
            return obj.model_copy(update={"namespace": self.ns(obj.namespace)})

        return _replace(
            spec,
            root_namespace=self.ns(spec.root_namespace),
            namespaces=[ns.model_copy(update={"name": self.ns(ns.name)})
                        for ns in spec.namespaces],
            services=[moved(s) for s in spec.services],
            virtual_services=[self.virtual_service(vs) for vs in spec.virtual_services],
            destination_rules=[self.destination_rule(dr) for dr in spec.destination_rules],
            gateways=[self.gateway(gw) for gw in spec.gateways],
            peer_authentications=[moved(pa) for pa in spec.peer_authentications],
            authorization_policies=[self.authorization(ap)
                                    for ap in spec.authorization_policies],
            rate_limits=[moved(rl) for rl in spec.rate_limits],
            canaries=[self.canary(c) for c in spec.canaries],
            service_entries=[self.service_entry(se) for se in spec.service_entries],
            workload_entries=[moved(we) for we in spec.workload_entries],
            telemetry=[moved(t) for t in spec.telemetry],
            raw=[self.raw(m) for m in spec.raw],
            default_namespace=self.ns(spec.default_namespace),
            tenancy=self.tenancy(spec.tenancy),
        )

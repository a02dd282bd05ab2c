"""The authoring API: ``Mesh`` and the scopes and services it hands out.

Builders are the only mutable objects in meshdsl. Each call records the user's file:line
and stores frozen models; ``Mesh.build()`` returns the frozen :class:`MeshSpec`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, get_args

from meshdsl.model.base import (
    SourceLocation,
    all_exactly,
    caller_location,
    given,
    plain_choice,
    shared,
    str_dict,
)
from meshdsl.model.canary import (
    CanaryPlan,
    HeaderStage,
    MetricCheck,
    MirrorStage,
    Step,
    Webhook,
)
from meshdsl.model.dataplane import DEFAULT_WAYPOINT, DataPlane, NamespaceMode, check_mode
from meshdsl.model.external import ExternalHosts, ServiceEntry, WorkloadEntry
from meshdsl.model.matching import Match
from meshdsl.model.policy import (
    ClientTls,
    ConnectionPool,
    DestinationRule,
    LoadBalancer,
    OutlierDetection,
    Subset,
    TrafficPolicy,
)
from meshdsl.model.ratelimit import LocalRateLimit
from meshdsl.model.scoped import (
    Authorization,
    GatewayBuilder,
    Routes,
    ServiceRefs,
    SubsetRef,
)
from meshdsl.model.security import (
    Action,
    MtlsMode,
    PeerAuthentication,
)
from meshdsl.model.service import (
    LocalRun,
    NamespaceSpec,
    ServicePort,
    ServiceSpec,
    Version,
    Workload,
)
from meshdsl.model.spec import MeshSpec
from meshdsl.model.telemetry import AccessLogging, Telemetry, Tracing
from meshdsl.model.tenancy import Tenancy
from meshdsl.model.workloads import Deployments


@shared
def _port(number: int) -> ServicePort:
    return ServicePort(number=number)


@shared
def _version(name: str) -> Version:
    return Version(name=name)


@shared
def _subset(name: str) -> Subset:
    return Subset(name=name, labels={"version": name})


_META = {"labels", "annotations", "account_labels", "service_type"}
_SERVICE_TYPES = frozenset(get_args(get_args(ServiceSpec.model_fields["service_type"].annotation)[0]))


def _ports(port: int | ServicePort | Sequence[int | ServicePort] | None) -> list[ServicePort]:
    if port is None:
        return []
    items = [port] if isinstance(port, (int, ServicePort)) else list(port)
    return [p if isinstance(p, ServicePort) else _port(p) for p in items]


def _versions(versions: Iterable[str | Version]) -> list[Version]:
    return [v if isinstance(v, Version) else _version(v) for v in versions]


class Service(ServiceRefs, Deployments):
    """A service of the mesh. Its versions become DestinationRule subsets; its routes a
    VirtualService named after it; ``.deploy`` adds Deployments."""

    mesh: Mesh   # the whole builder, not only what the scoped builders need of it

    def __init__(self, mesh: Mesh, namespace: str, name: str, *, ports: list[ServicePort],
                 versions: list[Version], explicit_port: bool,
                 service_account: str | None, kube_service: bool | None,
                 source: SourceLocation | None, meta: dict[str, Any]) -> None:
        self.mesh, self.namespace, self.name, self.source = mesh, namespace, name, source
        self.meta = meta  # labels, annotations, service_type (of the Service), account_labels
        self.ports, self.versions = ports, versions
        self.explicit_port = explicit_port
        self.service_account, self.kube_service = service_account, kube_service
        self.workloads: list[Workload] = []
        self.local_runs: dict[str, LocalRun] = {}
        self.traffic_policy: TrafficPolicy | None = None
        self.policy_source: SourceLocation | None = None
        self._routes: Routes | None = None
        self._rate_limit: LocalRateLimit | None = None

    # -- routing ----------------------------------------------------------------------
    @property
    def routes(self) -> Routes:
        if self._routes is None:
            self._routes = self.mesh._routes(self.namespace, self.name, [self.name], [],
                                             caller_location())
        return self._routes

    def route(self, **kwargs: Any) -> Service:
        """Append an in-mesh HTTP route for this service (see :meth:`Routes.route`)."""
        self.routes.route(**kwargs)
        return self

    def tcp_route(self, **kwargs: Any) -> Service:
        self.routes.tcp_route(**kwargs)
        return self

    def policy(self, *, connection_pool: ConnectionPool | None = None,
               load_balancer: LoadBalancer | None = None,
               outlier_detection: OutlierDetection | None = None,
               tls: ClientTls | None = None) -> Service:
        """How clients connect to every version (the DestinationRule's trafficPolicy)."""
        values = given({"connection_pool": connection_pool, "load_balancer": load_balancer,
                        "outlier_detection": outlier_detection, "tls": tls})
        plain = all(part is None or type(part) is kind for part, kind in (
            (connection_pool, ConnectionPool), (load_balancer, LoadBalancer),
            (outlier_detection, OutlierDetection), (tls, ClientTls)))
        self.traffic_policy = (TrafficPolicy.trusted(values) if plain
                               else TrafficPolicy.model_validate(values))
        self.policy_source = caller_location()
        return self

    # -- security and limits ----------------------------------------------------------
    @property
    def selector(self) -> dict[str, str]:
        return {"app": self.name}

    def authorization(self, name: str | None = None, *, action: Action | None = None,
                      workload: bool = True) -> Authorization:
        """An AuthorizationPolicy for this service's workloads (``workload=False`` makes it
        namespace-wide, as a policy without a selector is)."""
        return self.mesh._authorization(self.namespace, name or self.name, action,
                                        self.selector if workload else {}, caller_location())

    def allow(self, *callers: Service | str, **kwargs: Any) -> Authorization:
        """Only these services may call this one: ``reviews.allow(productpage)``."""
        return self.authorization().allow(*callers, **kwargs)

    def mtls(self, mode: MtlsMode | None = None, *,
             ports: Mapping[int, MtlsMode] | None = None, name: str | None = None) -> Service:
        self.mesh._peer_auth(self.namespace, name or self.name, mode, self.selector,
                             dict(ports or {}), caller_location())
        return self

    def rate_limit(self, *, max_tokens: int, tokens_per_fill: int | None = None,
                   fill_interval: str = "1s", name: str | None = None) -> Service:
        """A token bucket in each of this service's sidecars: excess requests get 429."""
        self._rate_limit = LocalRateLimit(
            name=name or f"{self.name}-ratelimit", namespace=self.namespace,
            selector=self.selector, max_tokens=max_tokens,
            tokens_per_fill=tokens_per_fill or max_tokens, fill_interval=fill_interval,
            source=caller_location())
        self.mesh._rate_limits.append(self._rate_limit)
        return self

    def telemetry(self, *, tracing: Tracing | None = None,
                  access_logging: AccessLogging | bool | None = None,
                  name: str | None = None) -> Service:
        """Tracing and access logging for this service's workloads only."""
        self.mesh._telemetry_of(self.namespace, name or self.name, self.selector, tracing,
                                access_logging, caller_location())
        return self

    # -- delivery ---------------------------------------------------------------------
    def canary(self, *, target: str, stable: str | None = None,
               steps: Sequence[int | Step] = (5, 10, 50, 100), pause: str | None = None,
               interval: str = "1m", checks: Sequence[MetricCheck] = (),
               header_stage: HeaderStage | Match | None = None,
               mirror_stage: MirrorStage | bool | None = None, max_failed_checks: int = 2,
               min_requests: int = 10, no_data_limit: int = 3,
               webhooks: Sequence[Webhook] = (),
               analysis: Literal["interval", "sequential"] = "interval") -> CanaryPlan:
        """Roll ``target`` out over ``steps`` percent, judged by ``checks`` each interval."""
        if stable is None:
            others = [v.name for v in self.versions if v.name != target]
            stable = others[0] if others else ""
        if isinstance(header_stage, Match):
            header_stage = HeaderStage(match=header_stage)
        if mirror_stage is True:
            mirror_stage = MirrorStage()
        plan = CanaryPlan(
            service=self.name, namespace=self.namespace, target=target, stable=stable,
            steps=[s if isinstance(s, Step) else Step(weight=s, pause=pause) for s in steps],
            interval=interval, header_stage=header_stage,
            mirror_stage=mirror_stage or None, checks=list(checks),
            max_failed_checks=max_failed_checks, min_requests=min_requests,
            no_data_limit=no_data_limit, webhooks=list(webhooks), analysis=analysis,
            source=caller_location())
        self.mesh._canaries.append(plan)
        return plan

    def build(self) -> ServiceSpec:
        meta = self.meta
        values = {"name": self.name, "namespace": self.namespace, "ports": list(self.ports),
                  "versions": list(self.versions), "workloads": list(self.workloads),
                  "service_account": self.service_account, "kube_service": self.kube_service,
                  "local": dict(self.local_runs), "source": self.source,
                  **{key: dict(value) if type(value) is dict else value
                     for key, value in meta.items()}}
        plain = (type(self.name) is str and type(self.namespace) is str
                 and (self.service_account is None or type(self.service_account) is str)
                 and (self.kube_service is None or type(self.kube_service) is bool)
                 and all_exactly(ServicePort, self.ports) and all_exactly(Version, self.versions)
                 and all_exactly(Workload, self.workloads)
                 and all_exactly(str, self.local_runs)
                 and all_exactly(LocalRun, self.local_runs.values())
                 and meta.keys() == _META and str_dict(meta["labels"])
                 and str_dict(meta["annotations"]) and str_dict(meta["account_labels"])
                 and plain_choice(meta["service_type"], _SERVICE_TYPES))
        return ServiceSpec.trusted(values) if plain else ServiceSpec.model_validate(values)

    def destination_rule(self) -> DestinationRule | None:
        if not self.versions and self.traffic_policy is None:
            return None
        subsets = [_subset(v.name) if not v.labels and v.traffic_policy is None
                   else Subset(name=v.name, labels=v.labels or {"version": v.name},
                               traffic_policy=v.traffic_policy) for v in self.versions]
        values = {"name": self.name, "namespace": self.namespace, "host": self.name,
                  "traffic_policy": self.traffic_policy, "subsets": subsets,
                  "source": self.policy_source or self.source}
        if type(self.name) is str and type(self.namespace) is str and (
                self.traffic_policy is None or type(self.traffic_policy) is TrafficPolicy) \
                and all_exactly(Subset, subsets):
            return DestinationRule.trusted(values)
        return DestinationRule.model_validate(values)


class Namespace(ExternalHosts):
    """Declarations inside one namespace: ``ns.service(...)``, ``ns.gateway(...)``…"""

    def __init__(self, mesh: Mesh, name: str) -> None:
        self.mesh, self.ns = mesh, name

    def service(self, name: str, *, port: int | ServicePort | Sequence[int | ServicePort]
                | None = None, versions: Iterable[str | Version] = (),
                explicit_port: bool = False, service_account: str | None = None,
                kube_service: bool | None = None, labels: Mapping[str, str] | None = None,
                annotations: Mapping[str, str] | None = None,
                account_labels: Mapping[str, str] | None = None,
                service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] | None = None
                ) -> Service:
        """A service; ``labels``/``annotations`` are its Service object's own (besides the
        mesh's), ``account_labels`` those of its ``service_account``."""
        svc = Service(self.mesh, self.ns, name, ports=_ports(port),
                      versions=_versions(versions), explicit_port=explicit_port,
                      service_account=service_account, kube_service=kube_service,
                      source=caller_location(), meta={
                          "labels": dict(labels or {}),
                          "annotations": dict(annotations or {}),
                          "account_labels": dict(account_labels or {}),
                          "service_type": service_type})
        self.mesh._services.append(svc)
        return svc

    def gateway(self, name: str, *, selector: Mapping[str, str] | None = None
                ) -> GatewayBuilder:
        gw = GatewayBuilder(self.mesh, self.ns, name,
                            dict(selector or {"istio": "ingressgateway"}), caller_location())
        self.mesh._gateways.append(gw)
        return gw

    def routes(self, name: str, *, hosts: Sequence[str],
               gateways: Sequence[GatewayBuilder | str] = ()) -> Routes:
        """A free-standing VirtualService (for example for an external host)."""
        gws = [g.name if isinstance(g, GatewayBuilder) and g.namespace == self.ns
               else f"{g.namespace}/{g.name}" if isinstance(g, GatewayBuilder) else g
               for g in gateways]
        return self.mesh._routes(self.ns, name, list(hosts), gws, caller_location())

    def telemetry(self, *, tracing: Tracing | None = None,
                  access_logging: AccessLogging | bool | None = None,
                  name: str = "default") -> Telemetry:
        """Tracing and access logging for every workload of this namespace (on the mesh
        itself: the whole mesh, declared in the root namespace)."""
        namespace = self.mesh.root_namespace if self is self.mesh else self.ns
        return self.mesh._telemetry_of(namespace, name, {}, tracing, access_logging,
                                       caller_location())

    def mtls(self, mode: MtlsMode, *, name: str = "default",
             ports: Mapping[int, MtlsMode] | None = None) -> PeerAuthentication:
        """Namespace-wide mutual TLS mode (a PeerAuthentication without a selector)."""
        return self.mesh._peer_auth(self.ns, name, mode, {}, dict(ports or {}),
                                    caller_location())

    def authorization(self, name: str, *, action: Action | None = None,
                      selector: Mapping[str, str] | None = None) -> Authorization:
        return self.mesh._authorization(self.ns, name, action, dict(selector or {}),
                                        caller_location())

    def destination_rule(self, name: str, *, host: str,
                         traffic_policy: TrafficPolicy | None = None,
                         subsets: Sequence[Subset] = ()) -> DestinationRule:
        """A free-standing DestinationRule, for hosts that are not a declared service."""
        dr = DestinationRule(name=name, namespace=self.ns, host=host,
                             traffic_policy=traffic_policy, subsets=list(subsets),
                             source=caller_location())
        self.mesh._destination_rules.append(dr)
        return dr


class Mesh(Namespace):
    """The root of a mesh program. It is itself the scope of its default namespace.

    >>> mesh = Mesh("shop", mtls="STRICT")
    >>> reviews = mesh.service("reviews", port=9080, versions=["v1", "v2"])
    >>> _ = reviews.route(to={reviews.v1: 90, reviews.v2: 10})
    """

    def __init__(self, name: str, *, namespace: str = "default", mtls: MtlsMode | None = None,
                 trust_domain: str = "cluster.local",
                 root_namespace: str = "istio-system",
                 tenancy: Tenancy | None = None, mode: str = "sidecar",
                 waypoint: str | None = DEFAULT_WAYPOINT) -> None:
        super().__init__(self, namespace)
        self.tenancy = tenancy
        self._data_plane = DataPlane(default=check_mode(mode), default_waypoint=waypoint)
        self.name = name
        self.trust_domain, self.root_namespace = trust_domain, root_namespace
        self.source = caller_location()
        self._namespaces: dict[str, tuple[Namespace, NamespaceSpec]] = {}
        self._services: list[Service] = []
        self._gateways: list[GatewayBuilder] = []
        self._vs: list[Routes] = []
        self._authz: dict[tuple[str, str], Authorization] = {}
        self._peer_auths: list[PeerAuthentication] = []
        self._destination_rules: list[DestinationRule] = []
        self._rate_limits: list[LocalRateLimit] = []
        self._service_entries: list[ServiceEntry] = []
        self._workload_entries: list[WorkloadEntry] = []
        self._canaries: list[CanaryPlan] = []
        self._raw: list[dict[str, object]] = []
        self._raw_meta: list[tuple[SourceLocation | None, bool]] = []
        self._telemetry: list[Telemetry] = []
        if mtls is not None:
            self._peer_auth(root_namespace, "default", mtls, {}, {}, self.source)

    def namespace(self, name: str, *, injection: bool | None = True,
                  labels: Mapping[str, str] | None = None, create: bool = True,
                  mode: str | None = None, waypoint: str | None = DEFAULT_WAYPOINT
                  ) -> Namespace:
        """A namespace scope; with ``create`` a Namespace object (sidecar injection on).

        ``mode="ambient"`` runs it on ztunnel and a waypoint named ``waypoint`` (None: L4
        only) and compiles its routes to the Gateway API; the default is the mesh's mode."""
        if name in self._namespaces:
            return self._namespaces[name][0]
        if mode is not None:
            self._data_plane = self._data_plane.model_copy(update={"namespaces": {
                **self._data_plane.namespaces, name: NamespaceMode(
                    mode=check_mode(mode), waypoint=waypoint, source=caller_location())}})
        all_labels = dict(labels or {})
        if injection is not None and not self._data_plane.is_ambient(name):
            all_labels["istio-injection"] = "enabled" if injection else "disabled"
        scope = Namespace(self, name)
        self._namespaces[name] = (scope, NamespaceSpec(name=name, labels=all_labels,
                                                       create=create,
                                                       source=caller_location()))
        return scope

    def raw(self, manifest: Mapping[str, object], *, adopt: bool = False) -> None:
        """Escape hatch: a manifest carried through unchanged (what the DSL cannot say).

        ``adopt``: the object may already exist, created by someone else, and this mesh
        takes it over (see :class:`~meshdsl.model.tenancy.Tenancy`); never the default."""
        self._raw.append(dict(manifest))
        self._raw_meta.append((caller_location(), adopt))

    # -- internal registration (scopes call these) ------------------------------------
    def _routes(self, namespace: str, name: str, hosts: list[str], gateways: list[str],
                source: SourceLocation | None) -> Routes:
        routes = Routes(self, namespace, name, hosts, gateways, source)
        self._vs.append(routes)
        return routes

    def _authorization(self, namespace: str, name: str, action: Action | None,
                       selector: dict[str, str], source: SourceLocation | None
                       ) -> Authorization:
        existing = self._authz.get((namespace, name))
        if existing is not None:
            return existing
        authz = Authorization(self, namespace, name, action, selector, source)
        self._authz[(namespace, name)] = authz
        return authz

    def _peer_auth(self, namespace: str, name: str, mode: MtlsMode | None,
                   selector: dict[str, str], ports: dict[int, MtlsMode],
                   source: SourceLocation | None) -> PeerAuthentication:
        pa = PeerAuthentication(name=name, namespace=namespace, mode=mode, selector=selector,
                                port_level_mtls=ports, source=source)
        self._peer_auths.append(pa)
        return pa

    def _telemetry_of(self, namespace: str, name: str, selector: dict[str, str],
                      tracing: Tracing | None, access_logging: AccessLogging | bool | None,
                      source: SourceLocation | None) -> Telemetry:
        logging = (AccessLogging() if access_logging is True
                   else AccessLogging(disabled=True) if access_logging is False
                   else access_logging)
        telemetry = Telemetry(name=name, namespace=namespace, selector=dict(selector),
                              tracing=tracing, access_logging=logging, source=source)
        self._telemetry.append(telemetry)
        return telemetry

    def build(self) -> MeshSpec:
        """The frozen value of everything declared so far."""
        vss = [vs for vs in (r.build() for r in self._vs) if vs is not None]
        drs = [dr for dr in (s.destination_rule() for s in self._services) if dr is not None]
        return MeshSpec(
            name=self.name, trust_domain=self.trust_domain,
            root_namespace=self.root_namespace,
            namespaces=[spec for _, spec in self._namespaces.values()],
            services=[s.build() for s in self._services],
            virtual_services=vss, destination_rules=drs + self._destination_rules,
            gateways=[g.build() for g in self._gateways],
            peer_authentications=self._peer_auths,
            authorization_policies=[a.build() for a in self._authz.values()],
            rate_limits=self._rate_limits, canaries=self._data_plane.judged(self._canaries),
            raw=self._raw, data_plane=self._data_plane,
            service_entries=self._service_entries, workload_entries=self._workload_entries,
            raw_sources=[src for src, _ in self._raw_meta],
            raw_adopt=[adopt for _, adopt in self._raw_meta], tenancy=self.tenancy,
            default_namespace=self.ns, telemetry=self._telemetry,
        )


__all__ = ["Authorization", "GatewayBuilder", "Mesh", "Namespace", "Routes", "Service",
           "SubsetRef"]

"""The scoped builders a service and a namespace hand out: routes (a VirtualService),
authorization (an AuthorizationPolicy), gateways, and the references (``reviews.v2``) that
name a destination. ``Mesh`` and ``Service`` (``meshdsl.model.builder``) build on these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeAlias, get_args

from meshdsl.errors import ModelUsageError
from meshdsl.model.base import (
    Frozen,
    SourceLocation,
    all_exactly,
    caller_location,
    given,
    shared,
    str_dict,
)
from meshdsl.model.gateway import GATEWAY_NAME_LABEL, Gateway, Server, ServerPort, ServerTls
from meshdsl.model.matching import L4Match, Match
from meshdsl.model.routing import (
    Cors,
    Destination,
    Fault,
    Headers,
    HttpRoute,
    Redirect,
    Retries,
    Rewrite,
    TcpRoute,
    VirtualService,
)
from meshdsl.model.security import Action, AuthorizationPolicy, From, Rule, ServiceRef, To, When
from meshdsl.model.service import ServicePort, Version


class Mesh(Protocol):
    """What these builders need of the mesh they declare into (``builder.Mesh``): a
    VirtualService or an AuthorizationPolicy registered under it. A protocol, so this
    module does not import the builder that imports it."""

    def _routes(self, namespace: str, name: str, hosts: list[str], gateways: list[str],
                source: SourceLocation | None) -> Routes: ...

    def _authorization(self, namespace: str, name: str, action: Action | None,
                       selector: dict[str, str], source: SourceLocation | None
                       ) -> Authorization: ...


class SubsetRef(Frozen):
    """A destination named in Python: ``reviews.v2``, ``reviews.subset("v4")``,
    ``productpage.on(9080)``. Hashable, so it can key a weights dict."""

    service: str
    namespace: str
    subset: str | None = None
    port: int | None = None

    def on(self, port: int) -> SubsetRef:
        return self.model_copy(update={"port": port})


Target: TypeAlias = "ServiceRefs | SubsetRef | Destination | str"
To_: TypeAlias = "Target | Mapping[Any, int] | Sequence[Target]"
Matches: TypeAlias = "Match | Sequence[Match] | None"


def _matches(match: Matches) -> list[Match]:
    if match is None:
        return []
    if isinstance(match, Match):
        return [match]
    return list(match)


def _port_number(port: Any) -> bool:
    return type(port) is int and 1 <= port <= 65535


class _Scoped:
    """Something that lives in a namespace of a mesh."""

    mesh: Mesh
    namespace: str

    def _host(self, ref: SubsetRef | ServiceRefs) -> str:
        name, ns = (ref.service, ref.namespace) if isinstance(ref, SubsetRef) else (
            ref.name, ref.namespace)
        return name if ns == self.namespace else f"{name}.{ns}.svc.cluster.local"

    def _destination(self, target: Any, weight: int | None = None) -> Destination:
        if isinstance(target, ServiceRefs):
            target = target.ref()
        if isinstance(target, SubsetRef):
            host, subset, port = self._host(target), target.subset, target.port
            values = {"host": host, "subset": subset, "port": port, "weight": weight}
            if type(host) is str and (subset is None or type(subset) is str) and (
                    port is None or _port_number(port)):  # reviews.on(port) is unchecked
                return Destination.trusted(values)
            return Destination.model_validate(values)
        if isinstance(target, Destination):
            return target if weight is None else target.model_copy(update={"weight": weight})
        if isinstance(target, str):
            values = {"host": target, "weight": weight}
            if type(target) is str:
                return Destination.trusted(values)
            return Destination.model_validate(values)
        raise ModelUsageError(
            f"cannot route to {target!r}: use a service, a version like reviews.v2, "
            "a Destination(...), a host string, or a {target: weight} dict"
        )

    def _destinations(self, to: Any) -> list[Destination]:
        if isinstance(to, Mapping):
            return [self._destination(t, int(w)) for t, w in to.items()]
        if isinstance(to, (list, tuple)):
            return [self._destination(t) for t in to]
        return [self._destination(to)]


class ServiceRefs(_Scoped):
    """What names a service and its versions as a destination: ``reviews``,
    ``reviews.v2``, ``reviews.subset("v4")``, ``reviews.on(9080)``."""

    name: str
    ports: list[ServicePort]
    versions: list[Version]
    explicit_port: bool

    # -- references -------------------------------------------------------------------
    def ref(self, subset: str | None = None) -> SubsetRef:
        """The same frozen reference each time a version is named (``reviews.v2`` in
        every route of a service is one object, not one per mention)."""
        refs: dict[str | None, SubsetRef] | None = self.__dict__.get("_refs")
        if refs is None:
            refs = self.__dict__["_refs"] = {}
        ref = refs.get(subset)
        if ref is None:
            port = self.ports[0].number if self.explicit_port and self.ports else None
            values = {"service": self.name, "namespace": self.namespace, "subset": subset,
                      "port": port}  # the port of a validated ServicePort
            plain = type(self.name) is str and type(self.namespace) is str and (
                subset is None or type(subset) is str)
            ref = refs[subset] = (SubsetRef.trusted(values) if plain
                                  else SubsetRef.model_validate(values))
        return ref

    def subset(self, name: str) -> SubsetRef:
        """A reference to a version, declared or not (the validator reports unknown ones)."""
        return self.ref(name)

    def on(self, port: int) -> SubsetRef:
        return self.ref().on(port)

    def __getattr__(self, item: str) -> SubsetRef:
        if item.startswith("_"):
            raise AttributeError(item)
        versions = self.__dict__.get("versions", [])
        for version in versions:
            if version.name == item:
                return self.ref(item)
        names = [v.name for v in versions]
        raise AttributeError(
            f"service {self.__dict__.get('name')!r} has no version {item!r} "
            f"(versions: {', '.join(names) or 'none'}); use .subset({item!r}) to name it anyway"
        )

    def __getitem__(self, item: str) -> SubsetRef:
        return self.subset(item)

    @property
    def host(self) -> str:
        return self.name


class Routes(_Scoped):
    """A VirtualService being built: ``.route(...)`` appends an HTTP route (first match
    wins), ``.tcp_route(...)`` a TCP one."""

    def __init__(self, mesh: Mesh, namespace: str, name: str, hosts: list[str],
                 gateways: list[str], source: SourceLocation | None) -> None:
        self.mesh, self.namespace, self.name = mesh, namespace, name
        self.hosts, self.gateways, self.source = hosts, gateways, source
        self.http: list[HttpRoute] = []
        self.tcp: list[TcpRoute] = []
        self.export_to: list[str] = []

    def route(
        self,
        *,
        to: Any = None,
        match: Matches = None,
        name: str | None = None,
        timeout: str | None = None,
        retries: Retries | None = None,
        fault: Fault | None = None,
        mirror: Any = None,
        mirror_percent: float | None = None,
        rewrite: Rewrite | None = None,
        redirect: Redirect | None = None,
        headers: Headers | None = None,
        cors: Cors | None = None,
    ) -> Routes:
        matches = _matches(match)
        destinations = [] if to is None else self._destinations(to)
        mirrored = None if mirror is None else self._destination(mirror)
        fields = given({"name": name, "match": matches, "to": destinations,
                        "timeout": timeout, "retries": retries, "fault": fault,
                        "mirror": mirrored, "mirror_percent": mirror_percent,
                        "rewrite": rewrite, "redirect": redirect, "headers": headers,
                        "cors": cors, "source": caller_location()})
        plain = (  # every part validated already, and HttpRoute's rule holds
            (redirect is None) == bool(destinations) and mirror_percent is None
            and (name is None or type(name) is str)
            and (timeout is None or type(timeout) is str)
            and all_exactly(Match, matches) and all_exactly(Destination, destinations)
            and (mirrored is None or type(mirrored) is Destination)
            and (retries is None or type(retries) is Retries)
            and (fault is None or type(fault) is Fault)
            and (rewrite is None or type(rewrite) is Rewrite)
            and (redirect is None or type(redirect) is Redirect)
            and (headers is None or type(headers) is Headers)
            and (cors is None or type(cors) is Cors))
        self.http.append(HttpRoute.trusted(fields) if plain
                         else HttpRoute.model_validate(fields))
        return self

    def tcp_route(self, *, to: Any, port: int | None = None,
                  match: L4Match | Sequence[L4Match] | None = None) -> Routes:
        matches = [match] if isinstance(match, L4Match) else list(match or [])
        if port is not None:
            matches.append(L4Match(port=port))
        self.tcp.append(TcpRoute(match=matches, to=self._destinations(to),
                                 source=caller_location()))
        return self

    def build(self) -> VirtualService | None:
        if not self.http and not self.tcp:
            return None
        values = {"name": self.name, "namespace": self.namespace, "hosts": list(self.hosts),
                  "gateways": list(self.gateways), "http": list(self.http),
                  "tcp": list(self.tcp), "export_to": list(self.export_to),
                  "source": self.source}
        if type(self.name) is str and type(self.namespace) is str and self.hosts \
                and all_exactly(str, self.hosts) and all_exactly(str, self.gateways) \
                and all_exactly(str, self.export_to) and all_exactly(HttpRoute, self.http) \
                and all_exactly(TcpRoute, self.tcp):
            return VirtualService.trusted(values)
        return VirtualService.model_validate(values)


class Authorization(_Scoped):
    """An AuthorizationPolicy being built; ``.rule(...)`` appends, ``.allow(...)`` is the
    short form naming calling services."""

    def __init__(self, mesh: Mesh, namespace: str, name: str, action: Action | None,
                 selector: dict[str, str], source: SourceLocation | None) -> None:
        self.mesh, self.namespace, self.name = mesh, namespace, name
        self.action, self.selector, self.source = action, selector, source
        self.rules: list[Rule] = []

    def rule(self, *, from_: From | Sequence[From] | None = None,
             to: To | Sequence[To] | None = None,
             when: When | Sequence[When] | None = None) -> Authorization:
        def listify(v: Any) -> list[Any]:
            return [] if v is None else [v] if not isinstance(v, (list, tuple)) else list(v)
        sources, operations, conditions = listify(from_), listify(to), listify(when)
        if all_exactly(From, sources) and all_exactly(To, operations) \
                and all_exactly(When, conditions):
            self.rules.append(Rule.trusted(
                {"from_": sources, "to": operations, "when": conditions}))
        else:
            self.rules.append(Rule.model_validate(
                {"from": sources, "to": operations, "when": conditions}))
        return self

    def allow(self, *callers: ServiceRefs | str, namespaces: Sequence[str] = (),
              methods: Sequence[str] = (), paths: Sequence[str] = (),
              ports: Sequence[int | str] = ()) -> Authorization:
        """Let the named services (their SPIFFE identities) or namespaces call this."""
        refs = [_service_ref(c.name, c.namespace) if isinstance(c, ServiceRefs)
                else _service_ref(c, self.namespace) for c in callers]
        names = list(namespaces)
        values = {"services": refs, "namespaces": names}
        frm = From.trusted(values) if all_exactly(ServiceRef, refs) and all_exactly(
            str, names) else From.model_validate(values)
        op = _operation(tuple(methods), tuple(paths), tuple(ports)) \
            if methods or paths or ports else None
        return self.rule(from_=frm, to=op)

    def build(self) -> AuthorizationPolicy:
        values = {"name": self.name, "namespace": self.namespace, "action": self.action,
                  "selector": dict(self.selector), "rules": list(self.rules),
                  "source": self.source}
        action = self.action
        if type(self.name) is str and type(self.namespace) is str and (
                action is None or (type(action) is str and action in _ACTIONS)) \
                and str_dict(self.selector) and all_exactly(Rule, self.rules):
            return AuthorizationPolicy.trusted(values)
        return AuthorizationPolicy.model_validate(values)


_ACTIONS = frozenset(get_args(Action))


def _service_ref(name: Any, namespace: Any) -> ServiceRef:
    values = {"name": name, "namespace": namespace}
    if type(name) is str and type(namespace) is str:
        return ServiceRef.trusted(values)
    return ServiceRef.model_validate(values)


@shared
def _operation(methods: tuple[str, ...], paths: tuple[str, ...],
               ports: tuple[int | str, ...]) -> To:
    """One frozen ``To`` per distinct operation: ``allow(methods=["GET"])`` on every
    service of a large mesh shares it."""
    return To(methods=list(methods), paths=list(paths), ports=list(ports))


class GatewayBuilder(_Scoped):
    """A Gateway being built: ``.http(...)``, ``.https(...)``, ``.server(...)`` add servers;
    ``.routes(...)`` starts a VirtualService bound to it."""

    def __init__(self, mesh: Mesh, namespace: str, name: str, selector: dict[str, str],
                 source: SourceLocation | None) -> None:
        self.mesh, self.namespace, self.name = mesh, namespace, name
        self.selector, self.source = selector, source
        self.servers: list[Server] = []

    def server(self, *, port: int, name: str, protocol: str, hosts: Sequence[str],
               tls: ServerTls | None = None) -> GatewayBuilder:
        self.servers.append(Server.model_validate({
            "port": ServerPort.model_validate({"number": port, "name": name,
                                               "protocol": protocol}),
            "hosts": list(hosts), "tls": tls}))
        return self

    def http(self, *hosts: str, port: int = 80, name: str = "http",
             https_redirect: bool = False) -> GatewayBuilder:
        tls = ServerTls(https_redirect=True) if https_redirect else None
        return self.server(port=port, name=name, protocol="HTTP", hosts=hosts, tls=tls)

    def https(self, *hosts: str, credential: str, port: int = 443, name: str = "https",
              mode: str = "SIMPLE") -> GatewayBuilder:
        tls = ServerTls.model_validate({"mode": mode, "credential_name": credential})
        return self.server(port=port, name=name, protocol="HTTPS", hosts=hosts, tls=tls)

    @property
    def ref(self) -> str:
        return self.name

    def authorization(self, name: str | None = None, *, action: Action | None = None
                      ) -> Authorization:
        """An AuthorizationPolicy for this gateway's own pods (those Istio deploys for a
        Gateway API Gateway carry ``gateway.networking.k8s.io/gateway-name``); in an
        ambient namespace it attaches to the Gateway by ``targetRefs``."""
        return self.mesh._authorization(self.namespace, name or self.name, action,
                                        {GATEWAY_NAME_LABEL: self.name}, caller_location())

    def routes(self, name: str, *, hosts: Sequence[str] | None = None,
               namespace: str | None = None) -> Routes:
        ns = namespace or self.namespace
        gw = self.name if ns == self.namespace else f"{self.namespace}/{self.name}"
        all_hosts = sorted({h for s in self.servers for h in s.hosts})
        return self.mesh._routes(ns, name, list(hosts or all_hosts), [gw], caller_location())

    def build(self) -> Gateway:
        return Gateway(name=self.name, namespace=self.namespace, selector=self.selector,
                       servers=self.servers, source=self.source)

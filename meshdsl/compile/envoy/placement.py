"""Where the local mesh runs: the addresses, ports and certificate files of every proxy.

The compiler never picks a port or touches a file; the runtime does, and hands the result
in as a :class:`LocalPlacement`. Everything listens on loopback, so one machine holds many
"pods": each workload (service + version) has its app on one port and its sidecar's inbound
listener on another, and each sidecar has *its own* outbound port per service port — the
app of ``productpage-v1`` calls ``reviews`` at ``127.0.0.1:<its outbound port for reviews>``
where Istio would intercept ``reviews:9080`` with iptables. (One port per service shared
by all sidecars cannot work: only one process may own it, and the caller's identity and
source-dependent routes belong to the caller's sidecar.) A workload in an ambient namespace
is placed the same way: its L4 proxy takes the sidecar's ports.

An ambient namespace with a waypoint also runs the waypoint, with one listener per
(service, port, subset) it serves — ``""`` for the whole service (:func:`waypoint_targets`):
a caller's proxy knows which service it calls by the port it connects to, and a listener
per subset serves callers that pick one (a gateway route to ``reviews`` v2, like an
HTTPRoute backend ``reviews-v2``). Istio multiplexes them on HBONE's port 15008.

:func:`allocate` builds a complete placement from an iterator of free ports, which is what
tests and the runtime need; :func:`required_identities` and :func:`credential_names` say
which certificates to issue.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from meshdsl.compile.envoy import names
from meshdsl.model.gateway import Gateway
from meshdsl.model.policy import DestinationRule
from meshdsl.model.service import ServicePort, ServiceSpec
from meshdsl.model.spec import MeshSpec

LOOPBACK = "127.0.0.1"
IMPLIED_PORT = 80
"""The service port of a service declared without one (Kubernetes' usual HTTP port)."""

ServicePortKey = tuple[str, str, int]
"""(namespace, service, service port number)."""

WaypointTarget = tuple[str, int, str]
"""(service, service port number, subset) a waypoint serves; subset ``""``: all of it."""


@dataclass(frozen=True, order=True)
class WorkloadKey:
    """One version of one service: one app process and one sidecar in the local mesh."""

    namespace: str
    service: str
    version: str

    @property
    def proxy_id(self) -> str:
        return names.sidecar_id(self.namespace, self.service, self.version)


@dataclass(frozen=True, order=True)
class WaypointKey:
    """The waypoint of an ambient namespace: one Envoy applying L7 policy for its services."""

    namespace: str
    name: str

    @property
    def proxy_id(self) -> str:
        return names.waypoint_id(self.name, self.namespace)


@dataclass(frozen=True)
class Address:
    port: int
    host: str = LOOPBACK

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @classmethod
    def parse(cls, text: str) -> Address:
        """``host:port`` or a bare port."""
        host, _, port = text.rpartition(":")
        return cls(int(port), host or LOOPBACK)


@dataclass(frozen=True)
class CertFiles:
    """PEM files of a certificate and its key; ``ca`` verifies peers (gateway MUTUAL)."""

    cert: str
    key: str
    ca: str | None = None


@dataclass(frozen=True)
class SidecarPlacement:
    """A workload's app and its proxy: a sidecar, or in an ambient namespace its L4 proxy."""

    app: Address
    inbound: Address
    outbound: Mapping[ServicePortKey, int] = field(default_factory=dict)
    """This sidecar's loopback port for each service port it can call (absent: no listener)."""


@dataclass(frozen=True)
class GatewayPlacement:
    ports: Mapping[int, int] = field(default_factory=dict)
    """Gateway server port (80, 443, ...) → loopback port of that listener."""


@dataclass(frozen=True)
class WaypointPlacement:
    listeners: Mapping[WaypointTarget, int] = field(default_factory=dict)
    """Each (service, port, subset) served → the loopback port of its listener."""


@dataclass(frozen=True)
class LocalPlacement:
    """Everything the compiler needs to know about the machine.

    ``ca_cert`` None means no PKI: every connection is plaintext whatever the
    PeerAuthentications say (each proxy's notes say so), and principal-based authorization
    cannot match. With a CA, ``identities`` must hold the certificate of every SPIFFE ID that
    takes part in mutual TLS (see :func:`required_identities`).
    """

    sidecars: Mapping[WorkloadKey, SidecarPlacement]
    gateways: Mapping[str, GatewayPlacement] = field(default_factory=dict)
    waypoints: Mapping[WaypointKey, WaypointPlacement] = field(default_factory=dict)
    ca_cert: str | None = None
    identities: Mapping[str, CertFiles] = field(default_factory=dict)
    credentials: Mapping[str, CertFiles] = field(default_factory=dict)
    listen_host: str = LOOPBACK


def service_ports(svc: ServiceSpec) -> list[ServicePort]:
    """The service's ports, or the implied port 80 for a service declared without one."""
    return list(svc.ports) or [ServicePort(number=IMPLIED_PORT)]


def local_workloads(spec: MeshSpec) -> list[WorkloadKey]:
    """The versions that run locally: deployed ones plus those with a ``run_locally``.

    ``run_locally()`` without a version covers every declared version (``v1`` if none).
    """
    out: set[WorkloadKey] = set()
    for svc in spec.services:
        versions = {wl.version for wl in svc.workloads} | {v for v in svc.local if v}
        if "" in svc.local:
            versions |= set(svc.version_names()) or {"v1"}
        out |= {WorkloadKey(svc.namespace, svc.name, v) for v in versions}
    return sorted(out)


def outbound_keys(spec: MeshSpec) -> list[ServicePortKey]:
    """Every service port a sidecar may call, in a stable order."""
    return sorted((svc.namespace, svc.name, port.number)
                  for svc in spec.services for port in service_ports(svc))


def destination_rule(spec: MeshSpec, svc: ServiceSpec) -> DestinationRule | None:
    """The first DestinationRule for the service's host (Istio also picks one)."""
    for dr in spec.destination_rules:
        if spec.resolve_host(dr.host, dr.namespace) == (svc.namespace, svc.name):
            return dr
    return None


def serving_waypoint(spec: MeshSpec, svc: ServiceSpec) -> WaypointKey | None:
    """The waypoint that serves a service: its ambient namespace's (None: sidecar mode, or
    an ambient namespace without a waypoint, where traffic stays at L4)."""
    name = spec.data_plane.waypoint_of(svc.namespace)
    return WaypointKey(svc.namespace, name) if name is not None else None


def waypoint_targets(spec: MeshSpec) -> dict[WaypointKey, list[WaypointTarget]]:
    """Every waypoint the mesh runs and what each serves: each port of each of its
    services, whole and per DestinationRule subset."""
    out: dict[WaypointKey, list[WaypointTarget]] = {}
    for svc in spec.services:
        key = serving_waypoint(spec, svc)
        if key is None:
            continue
        dr = destination_rule(spec, svc)
        subsets = ["", *(s.name for s in dr.subsets)] if dr is not None else [""]
        out.setdefault(key, []).extend(
            (svc.name, port.number, subset) for port in service_ports(svc) for subset in subsets)
    return {key: sorted(set(targets)) for key, targets in sorted(out.items())}


def gateway_workloads(spec: MeshSpec) -> dict[str, list[Gateway]]:
    """Gateway resources grouped by the gateway deployment they configure."""
    out: dict[str, list[Gateway]] = {}
    for gw in spec.gateways:
        out.setdefault(names.gateway_workload(gw.selector), []).append(gw)
    return out


def gateway_ports(spec: MeshSpec) -> dict[str, list[int]]:
    """Server ports of each gateway deployment (what :class:`GatewayPlacement` maps)."""
    return {name: sorted({s.port.number for gw in gws for s in gw.servers})
            for name, gws in sorted(gateway_workloads(spec).items())}


def required_identities(spec: MeshSpec, workloads: Iterable[WorkloadKey]) -> list[str]:
    """SPIFFE IDs of the placed workloads and of the gateways: the certificates to issue."""
    ids: set[str] = set()
    for key in workloads:
        svc = spec.service(key.namespace, key.service)
        if svc is not None:
            ids.add(names.spiffe(spec.trust_domain, svc.namespace, svc.account))
    for name in gateway_workloads(spec):
        ids.add(names.spiffe(spec.trust_domain, spec.root_namespace,
                             names.gateway_account(name)))
    for waypoint in waypoint_targets(spec):
        ids.add(waypoint_principal(spec, waypoint))
    return sorted(ids)


def waypoint_principal(spec: MeshSpec, waypoint: WaypointKey) -> str:
    """A waypoint's SPIFFE ID: Istio runs it as the service account named after it."""
    return names.spiffe(spec.trust_domain, waypoint.namespace, waypoint.name)


def credential_names(spec: MeshSpec) -> dict[str, list[str]]:
    """``credentialName`` of every TLS gateway server → the hosts its certificate needs."""
    out: dict[str, set[str]] = {}
    for gw in spec.gateways:
        for server in gw.servers:
            if server.tls is not None and server.tls.credential_name:
                hosts = {h.split("/", 1)[-1] for h in server.hosts}
                out.setdefault(server.tls.credential_name, set()).update(hosts)
    return {name: sorted(hosts) for name, hosts in sorted(out.items())}


def ports_needed(spec: MeshSpec, workloads: Iterable[WorkloadKey] | None = None) -> int:
    """How many ports :func:`allocate` takes (apps with a fixed address included)."""
    keys = list(workloads if workloads is not None else local_workloads(spec))
    per_sidecar = 2 + len(outbound_keys(spec))
    return (len(keys) * per_sidecar + sum(len(p) for p in gateway_ports(spec).values())
            + sum(len(t) for t in waypoint_targets(spec).values()))


def allocate(
    spec: MeshSpec,
    ports: Iterator[int],
    *,
    workloads: Iterable[WorkloadKey] | None = None,
    ca_cert: str | None = None,
    identity: Callable[[str], CertFiles] | None = None,
    credential: Callable[[str, list[str]], CertFiles] | None = None,
) -> LocalPlacement:
    """A complete placement taking ports from ``ports`` (e.g. ``iter(free_ports(n))``).

    Apps with a ``run_locally(address=...)`` keep that address. ``identity(spiffe_id)`` and
    ``credential(name, hosts)`` supply certificate files (e.g. from a local CA); without them
    the placement has no PKI.
    """
    keys = sorted(workloads if workloads is not None else local_workloads(spec))
    outbound = outbound_keys(spec)
    sidecars: dict[WorkloadKey, SidecarPlacement] = {}
    for key in keys:
        svc = spec.service(key.namespace, key.service)
        run = None if svc is None else svc.local.get(key.version, svc.local.get(""))
        app = Address.parse(run.address) if run is not None and run.address else Address(
            next(ports))
        sidecars[key] = SidecarPlacement(app=app, inbound=Address(next(ports)),
                                         outbound={k: next(ports) for k in outbound})
    gateways = {name: GatewayPlacement({p: next(ports) for p in server_ports})
                for name, server_ports in gateway_ports(spec).items()}
    waypoints = {key: WaypointPlacement({t: next(ports) for t in targets})
                 for key, targets in waypoint_targets(spec).items()}
    with_pki = ca_cert is not None and identity is not None
    identities = ({sid: identity(sid) for sid in required_identities(spec, keys)}
                  if with_pki and identity is not None else {})
    credentials = ({name: credential(name, hosts)
                    for name, hosts in credential_names(spec).items()}
                   if credential is not None else {})
    return LocalPlacement(sidecars=sidecars, gateways=gateways, waypoints=waypoints,
                          ca_cert=ca_cert if with_pki else None, identities=identities,
                          credentials=credentials)

"""Ports and certificates for the local mesh, kept stable while the mesh changes.

``meshdsl.compile.envoy.allocate`` builds a placement from scratch, which is right for one
compile. A running mesh needs more: after an edit of ``mesh.py`` every app and Envoy that
still exists must keep its ports (apps were told them at start; clients hold connections),
and only what is new gets fresh ports. :func:`extend` does that, and a :class:`Credentials`
issues each SPIFFE identity and gateway certificate once from a :class:`LocalCA`.

Ports come from :func:`listener_ports`, *outside* the kernel's ephemeral range. A port is
picked long before the Envoy that listens on it gets its config, and meanwhile the kernel
hands out ephemeral ports to every outgoing connection (apps, Envoys, health checks) and to
Envoy admin servers bound to port 0; with a hundred listeners, picking from that range
(``bind(0)``) collides within a few runs ("cannot bind: Address already in use").
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from meshdsl.compile.envoy import (
    Address,
    CertFiles,
    GatewayPlacement,
    LocalPlacement,
    SidecarPlacement,
    WaypointPlacement,
    WorkloadKey,
    credential_names,
    gateway_ports,
    local_workloads,
    outbound_keys,
    required_identities,
    waypoint_targets,
)
from meshdsl.model.service import LocalRun
from meshdsl.model.spec import MeshSpec
from reconciler.processes.ports import NoFreePortError, free_ports
from reconciler.targets.envoy.errors import LocalMeshError
from reconciler.targets.envoy.pki import LocalCA

__all__ = ["Credentials", "extend", "listener_ports", "local_run"]

PortSource = Callable[[int], list[int]]
"""Returns that many distinct free loopback ports."""

_LOWEST_PORT = 10000
_DEFAULT_EPHEMERAL = (32768, 60999)


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for ports it picks itself (Linux; IANA's 49152+ elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL if Path("/proc").is_dir() else (49152, 65535)


def listener_ports(count: int, *, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free on ``host`` right now, none in the ephemeral range.

    Candidates are drawn at random (two meshes starting at once rarely pick the same) and
    each is checked by binding it; all stay bound until every one is chosen.
    """
    low, high = ephemeral_range()
    pool = [*range(_LOWEST_PORT, min(low, 65536)), *range(max(high + 1, _LOWEST_PORT), 65536)]
    random.shuffle(pool)
    try:
        return free_ports(count, host=host, candidates=pool)
    except NoFreePortError as exc:
        raise LocalMeshError(f"{exc} outside the ephemeral range {low}-{high}") from exc


def local_run(spec: MeshSpec, key: WorkloadKey) -> LocalRun | None:
    """How a workload runs locally: its version's ``run_locally``, else the service-wide one."""
    svc = spec.service(key.namespace, key.service)
    if svc is None:
        return None
    return svc.local.get(key.version, svc.local.get(""))


@dataclass
class Credentials:
    """Certificates from one local CA, each issued once per run of the mesh."""

    ca: LocalCA
    _identities: dict[str, CertFiles] = field(default_factory=dict)
    _servers: dict[tuple[str, tuple[str, ...]], CertFiles] = field(default_factory=dict)

    @classmethod
    def create(cls, directory: Path) -> Credentials:
        return cls(LocalCA.create(directory))

    @property
    def ca_cert(self) -> str:
        return str(self.ca.cert_path)

    def identity(self, spiffe_id: str) -> CertFiles:
        if spiffe_id not in self._identities:
            pair = self.ca.issue_spiffe(spiffe_id)
            self._identities[spiffe_id] = CertFiles(str(pair.cert_path), str(pair.key_path))
        return self._identities[spiffe_id]

    def credential(self, name: str, hosts: list[str]) -> CertFiles:
        """A gateway server certificate; ``ca`` verifies client certs of MUTUAL servers."""
        key = (name, tuple(hosts))
        if key not in self._servers:
            names = [h if h != "*" else "localhost" for h in hosts] or ["localhost"]
            pair = self.ca.issue_server(names)
            self._servers[key] = CertFiles(str(pair.cert_path), str(pair.key_path),
                                           self.ca_cert)
        return self._servers[key]


def extend(spec: MeshSpec, previous: LocalPlacement | None = None, *,
           previous_spec: MeshSpec | None = None, credentials: Credentials | None = None,
           gateway_port: int | None = None, ports: PortSource = listener_ports) -> LocalPlacement:
    """The placement of ``spec``: what ``previous`` (of ``previous_spec``) placed keeps its
    ports, and only new apps, sidecars, outbound listeners, gateway ports and waypoint
    listeners get fresh ones.

    Apps with ``run_locally(address=...)`` get that address. ``gateway_port`` fixes the
    lowest server port of the ingress gateway (``meshctl up --gateway-port``). Without
    ``credentials`` the mesh has no PKI (plaintext everywhere).
    """
    old_sidecars = previous.sidecars if previous is not None else {}
    old_gateways = previous.gateways if previous is not None else {}
    old_waypoints = previous.waypoints if previous is not None else {}
    slots: list[int | None] = []

    def slot(port: int | None = None) -> int:
        """An index into ``slots``: a known port, or None to fill with a fresh one."""
        slots.append(port)
        return len(slots) - 1

    sidecars: dict[WorkloadKey, tuple[Address | int, int, dict[tuple[str, str, int], int]]] = {}
    for key in local_workloads(spec):
        old = old_sidecars.get(key)
        run = local_run(spec, key)
        was_given = previous_spec is not None and bool(
            (local_run(previous_spec, key) or LocalRun()).address)
        app: Address | int
        if run is not None and run.address:
            app = Address.parse(run.address)
        elif old is not None and not was_given:
            app = slot(old.app.port)
        else:
            app = slot()
        inbound = slot(old.inbound.port if old is not None else None)
        outbound = {k: slot(old.outbound.get(k) if old is not None else None)
                    for k in outbound_keys(spec)}
        sidecars[key] = (app, inbound, outbound)
    fixed = _fixed_gateway_port(gateway_ports(spec), gateway_port)
    gateways: dict[str, dict[int, int]] = {}
    for name, server_ports in gateway_ports(spec).items():
        have = old_gateways.get(name, GatewayPlacement()).ports
        gateways[name] = {p: slot(fixed[2] if (name, p) == fixed[:2] else have.get(p))
                          for p in server_ports}
    waypoints = {key: {t: slot(old_waypoints.get(key, WaypointPlacement()).listeners.get(t))
                       for t in targets}
                 for key, targets in waypoint_targets(spec).items()}

    missing = [i for i, port in enumerate(slots) if port is None]
    for index, port in zip(missing, ports(len(missing)) if missing else [], strict=True):
        slots[index] = port

    def port_of(index: int) -> int:
        port = slots[index]
        assert port is not None
        return port

    placed = {key: SidecarPlacement(
        app=app if isinstance(app, Address) else Address(port_of(app)),
        inbound=Address(port_of(inbound)),
        outbound={k: port_of(i) for k, i in outbound.items()})
        for key, (app, inbound, outbound) in sidecars.items()}
    identities: Mapping[str, CertFiles] = {}
    creds: Mapping[str, CertFiles] = {}
    if credentials is not None:
        identities = {sid: credentials.identity(sid)
                      for sid in required_identities(spec, placed)}
        creds = {name: credentials.credential(name, hosts)
                 for name, hosts in credential_names(spec).items()}
    return LocalPlacement(
        sidecars=placed,
        gateways={name: GatewayPlacement({p: port_of(i) for p, i in by_port.items()})
                  for name, by_port in gateways.items()},
        waypoints={key: WaypointPlacement({t: port_of(i) for t, i in by_target.items()})
                   for key, by_target in waypoints.items()},
        ca_cert=credentials.ca_cert if credentials is not None else None,
        identities=identities, credentials=creds)


def _fixed_gateway_port(wanted: Mapping[str, list[int]], port: int | None
                        ) -> tuple[str, int, int]:
    """(gateway, server port, local port) that ``--gateway-port`` fixes, or a no-match."""
    if port is None or not wanted:
        return ("", 0, 0)
    name = "istio-ingressgateway" if "istio-ingressgateway" in wanted else sorted(wanted)[0]
    return (name, min(wanted[name]), port) if wanted[name] else ("", 0, 0)

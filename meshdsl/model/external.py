"""Hosts outside the mesh's own services: Istio ServiceEntries and WorkloadEntries as DSL
values.

``mesh.external("api.example.com", ports={443: "HTTPS"}, resolution="DNS")`` puts a host in
Istio's registry; routes and DestinationRules may then name it, and validation knows it
(a route to an undeclared external host is still an error). The fields are Istio's, with
Istio's defaults (resolution NONE, location MESH_EXTERNAL) when left out.

A host served by machines outside Kubernetes (VMs, bare metal: Istio's mesh expansion)
lists them either inline (``endpoints=``) or as WorkloadEntries that its
``workload_selector`` picks by label: ``ns.workload_entry("db-1", address="10.0.0.7",
labels={"app": "db"})`` is one such machine. A WorkloadEntry has exactly the fields of an
inline endpoint (Istio uses one message for both), so one class serves both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from pydantic import Field

from meshdsl.model.base import Declared, Frozen, caller_location, dump

Resolution = Literal["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"]
Location = Literal["MESH_EXTERNAL", "MESH_INTERNAL"]


class ExternalPort(Frozen):
    number: int = Field(ge=1, le=65535)
    name: str
    protocol: str | None = None
    target_port: int | None = Field(default=None, ge=1, le=65535)


class ExternalEndpoint(Frozen):
    address: str | None = None
    ports: dict[str, int] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    network: str | None = None
    locality: str | None = None
    weight: int | None = None
    service_account: str | None = None


class WorkloadSelector(Frozen):
    labels: dict[str, str] = Field(default_factory=dict)


class WorkloadEntry(Declared, ExternalEndpoint):
    """One machine outside Kubernetes in the mesh's registry, selected by the
    ``workload_selector`` of a ServiceEntry in its namespace (by ``labels``)."""

    name: str
    namespace: str

    def spec(self) -> dict[str, Any]:
        """The WorkloadEntry's ``spec`` as Istio writes it."""
        out: dict[str, Any] = dump(self)
        for key in ("name", "namespace"):
            out.pop(key, None)
        return out


class ServiceEntry(Declared):
    name: str
    namespace: str
    hosts: list[str] = Field(min_length=1)
    addresses: list[str] = Field(default_factory=list)
    ports: list[ExternalPort] = Field(default_factory=list)
    location: Location | None = None
    resolution: Resolution | None = None
    endpoints: list[ExternalEndpoint] = Field(default_factory=list)
    export_to: list[str] = Field(default_factory=list)
    subject_alt_names: list[str] = Field(default_factory=list)
    workload_selector: WorkloadSelector | None = None

    def spec(self) -> dict[str, Any]:
        """The ServiceEntry's ``spec`` as Istio writes it."""
        out: dict[str, Any] = dump(self)
        for key in ("name", "namespace"):
            out.pop(key, None)
        return out


def external_ports(ports: Mapping[int, str] | Sequence[int | ExternalPort]
                   ) -> list[ExternalPort]:
    """``{443: "HTTPS"}`` (port -> protocol, named after the protocol), port numbers (TCP,
    named ``tcp-<n>``) or :class:`ExternalPort` values."""
    if isinstance(ports, Mapping):
        return [ExternalPort(number=n, name=p.lower(), protocol=p) for n, p in ports.items()]
    return [p if isinstance(p, ExternalPort) else
            ExternalPort(number=p, name=f"tcp-{p}", protocol="TCP") for p in ports]


def default_name(host: str) -> str:
    """The object name ``mesh.external`` gives a host: ``api.example.com`` ->
    ``api-example-com`` (``*.example.com`` -> ``wildcard-example-com``)."""
    return host.replace("*", "wildcard").replace(".", "-").strip("-").lower()


class _Registry(Protocol):
    _service_entries: list[ServiceEntry]
    _workload_entries: list[WorkloadEntry]


class _Scope(Protocol):
    @property
    def ns(self) -> str: ...

    @property
    def mesh(self) -> _Registry: ...


class ExternalHosts:
    """``scope.external(...)`` for the builder's namespace scopes (and the mesh)."""

    def external(self: _Scope, host: str, *more_hosts: str,
                 ports: Mapping[int, str] | Sequence[int | ExternalPort] = (),
                 resolution: Resolution | None = None, location: Location | None = None,
                 name: str | None = None, addresses: Sequence[str] = (),
                 endpoints: Sequence[ExternalEndpoint] = (), export_to: Sequence[str] = (),
                 subject_alt_names: Sequence[str] = (),
                 workload_selector: Mapping[str, str] | None = None) -> ServiceEntry:
        """A host outside the mesh's services (a ServiceEntry), so routes may name it.
        Its machines are ``endpoints``, or the WorkloadEntries (and pods) of this
        namespace whose labels include ``workload_selector``."""
        selector = None if workload_selector is None else WorkloadSelector(
            labels=dict(workload_selector))
        se = ServiceEntry(name=name or default_name(host), namespace=self.ns,
                          hosts=[host, *more_hosts], ports=external_ports(ports),
                          resolution=resolution, location=location, addresses=list(addresses),
                          endpoints=list(endpoints), export_to=list(export_to),
                          subject_alt_names=list(subject_alt_names),
                          workload_selector=selector, source=caller_location())
        self.mesh._service_entries.append(se)
        return se

    def workload_entry(self: _Scope, name: str, *, address: str | None = None,
                       labels: Mapping[str, str] | None = None,
                       ports: Mapping[str, int] | None = None, network: str | None = None,
                       locality: str | None = None, weight: int | None = None,
                       service_account: str | None = None) -> WorkloadEntry:
        """A machine outside Kubernetes (a WorkloadEntry): its ``address`` (an IP, a DNS
        name for a DNS-resolved ServiceEntry, or ``unix:///path``), the ``labels`` a
        ServiceEntry's ``workload_selector`` picks it by, and ``ports`` by the service
        port's name."""
        we = WorkloadEntry(name=name, namespace=self.ns, address=address,
                           labels=dict(labels or {}), ports=dict(ports or {}),
                           network=network, locality=locality, weight=weight,
                           service_account=service_account, source=caller_location())
        self.mesh._workload_entries.append(we)
        return we

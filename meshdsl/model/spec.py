"""The whole mesh as one frozen value: what validation and compilation take."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, TypeVar

from pydantic import Field

from meshdsl.model.base import Frozen, SourceLocation
from meshdsl.model.canary import CanaryPlan
from meshdsl.model.dataplane import DataPlane
from meshdsl.model.external import ServiceEntry, WorkloadEntry
from meshdsl.model.gateway import Gateway
from meshdsl.model.policy import DestinationRule
from meshdsl.model.ratelimit import LocalRateLimit
from meshdsl.model.routing import VirtualService
from meshdsl.model.security import AuthorizationPolicy, PeerAuthentication
from meshdsl.model.service import NamespaceSpec, ServiceSpec
from meshdsl.model.telemetry import Telemetry
from meshdsl.model.tenancy import Tenancy

Named = TypeVar("Named", ServiceSpec, Gateway)


def _first_by_name(objects: list[Named]) -> dict[tuple[str, str], Named]:
    """The first object of each (namespace, name): what a lookup by name finds."""
    index: dict[tuple[str, str], Named] = {}
    for obj in objects:
        index.setdefault((obj.namespace, obj.name), obj)
    return index


class MeshSpec(Frozen):
    name: str
    trust_domain: str = "cluster.local"
    root_namespace: str = "istio-system"
    namespaces: list[NamespaceSpec] = Field(default_factory=list)
    services: list[ServiceSpec] = Field(default_factory=list)
    virtual_services: list[VirtualService] = Field(default_factory=list)
    destination_rules: list[DestinationRule] = Field(default_factory=list)
    gateways: list[Gateway] = Field(default_factory=list)
    peer_authentications: list[PeerAuthentication] = Field(default_factory=list)
    authorization_policies: list[AuthorizationPolicy] = Field(default_factory=list)
    rate_limits: list[LocalRateLimit] = Field(default_factory=list)
    service_entries: list[ServiceEntry] = Field(default_factory=list)
    workload_entries: list[WorkloadEntry] = Field(default_factory=list)
    canaries: list[CanaryPlan] = Field(default_factory=list)
    telemetry: list[Telemetry] = Field(default_factory=list)
    raw: list[dict[str, object]] = Field(default_factory=list)
    raw_sources: list[SourceLocation | None] = Field(default_factory=list, exclude=True)
    raw_adopt: list[bool] = Field(default_factory=list)
    tenancy: Tenancy | None = None
    default_namespace: str = "default"      # the scope of Mesh(namespace=...): opened by it
    data_plane: DataPlane = Field(default_factory=DataPlane)

    @cached_property
    def _service_index(self) -> dict[tuple[str, str], ServiceSpec]:
        return _first_by_name(self.services)

    @cached_property
    def _subset_index(self) -> dict[tuple[str, str], set[str]]:
        index: dict[tuple[str, str], set[str]] = {}
        for dr in self.destination_rules:
            key = self.resolve_host(dr.host, dr.namespace)
            index.setdefault(key, set()).update(s.name for s in dr.subsets)
        return index

    @cached_property
    def _gateway_index(self) -> dict[tuple[str, str], Gateway]:
        return _first_by_name(self.gateways)

    def model_copy(self, *, update: Mapping[str, Any] | None = None,
                   deep: bool = False) -> MeshSpec:
        """A copy whose lookup indexes are rebuilt from its own contents."""
        copy = super().model_copy(update=update, deep=deep)
        for key in ("_service_index", "_subset_index", "_gateway_index"):
            copy.__dict__.pop(key, None)
        return copy

    def service(self, namespace: str, name: str) -> ServiceSpec | None:
        return self._service_index.get((namespace, name))

    def subsets_of(self, namespace: str, name: str) -> set[str]:
        """Subset names that DestinationRules define for a service."""
        return self._subset_index.get((namespace, name), set())

    def gateway(self, namespace: str, name: str) -> Gateway | None:
        return self._gateway_index.get((namespace, name))

    def resolve_host(self, host: str, namespace: str) -> tuple[str, str]:
        """(namespace, name) a short, namespaced or FQDN service host refers to."""
        parts = host.split(".")
        if len(parts) == 1:
            return namespace, host
        if len(parts) == 2 or (len(parts) >= 3 and parts[2] == "svc"):
            return parts[1], parts[0]
        return "", host

"""The compile-time view of the local mesh: which workloads run where, with which labels,
and which DestinationRule policy applies to each subset.

Istio learns this from the Kubernetes API (pods, labels, endpoints); here it comes from the
model plus the placement. Workload labels are what ``meshdsl.compile.kube`` puts on pods
(``app``/``version``) plus any labels declared on the version, so subset selectors,
PeerAuthentication and AuthorizationPolicy selectors match exactly as on a cluster.

In an ambient namespace the placed waypoint serves every service of the namespace
(:meth:`Topology.waypoint_of`); every other proxy reaches those services through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from meshdsl.compile.envoy import names
from meshdsl.compile.envoy.placement import (
    CertFiles,
    LocalPlacement,
    SidecarPlacement,
    WaypointKey,
    WaypointPlacement,
    WorkloadKey,
    destination_rule,
    serving_waypoint,
    waypoint_principal,
)
from meshdsl.compile.envoy.protos import EnvoyCompileError
from meshdsl.model.policy import DestinationRule, Subset, TrafficPolicy
from meshdsl.model.routing import VirtualService
from meshdsl.model.service import ServiceSpec
from meshdsl.model.spec import MeshSpec

_POLICY_FIELDS = ("connection_pool", "load_balancer", "outlier_detection", "tls")


@dataclass(frozen=True)
class PlacedWorkload:
    key: WorkloadKey
    service: ServiceSpec
    labels: Mapping[str, str]
    placement: SidecarPlacement
    principal: str


@dataclass(frozen=True)
class PlacedWaypoint:
    key: WaypointKey
    placement: WaypointPlacement
    principal: str


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Kubernetes label selection: every selector label present with the same value."""
    return all(labels.get(k) == v for k, v in selector.items())


def merge_policy(top: TrafficPolicy | None, subset: TrafficPolicy | None) -> TrafficPolicy:
    """Istio's subset override: each top-level field set on the subset replaces the DR's."""
    merged = {f: getattr(top, f) for f in _POLICY_FIELDS} if top is not None else {}
    if subset is not None:
        merged |= {f: getattr(subset, f) for f in _POLICY_FIELDS if getattr(subset, f)}
    return TrafficPolicy(**merged)


class Topology:
    """Lookups shared by every part of the compiler; built once per ``compile_local``."""

    def __init__(self, spec: MeshSpec, placement: LocalPlacement) -> None:
        self.spec = spec
        self.placement = placement
        placed: list[PlacedWorkload] = []
        for key, where in sorted(placement.sidecars.items()):
            svc = spec.service(key.namespace, key.service)
            if svc is None:
                known = ", ".join(f"{s.namespace}/{s.name}" for s in spec.services) or "none"
                raise EnvoyCompileError(
                    f"the placement runs {key.namespace}/{key.service} {key.version}, which is "
                    f"not a service of mesh {spec.name!r} (services: {known})")
            placed.append(PlacedWorkload(key=key, service=svc, labels=workload_labels(svc,
                                         key.version), placement=where,
                                         principal=names.spiffe(spec.trust_domain,
                                                                svc.namespace, svc.account)))
        self.workloads = placed
        self.waypoints = {key: PlacedWaypoint(key, where, waypoint_principal(spec, key))
                          for key, where in sorted(placement.waypoints.items())}
        for needed in sorted({k for s in spec.services if (k := serving_waypoint(spec, s))}):
            if needed not in self.waypoints and any(w.key.namespace == needed.namespace
                                                    for w in placed):
                raise EnvoyCompileError(
                    f"namespace {needed.namespace} is ambient with waypoint {needed.name!r}, but "
                    "the placement runs no such waypoint; place every waypoint of "
                    "placement.waypoint_targets(spec) (without one, its L7 policy would "
                    "not be enforced)")

    # --- services and workloads -----------------------------------------------------------

    def resolve(self, host: str, namespace: str) -> ServiceSpec | None:
        ns, name = self.spec.resolve_host(host, namespace)
        return self.spec.service(ns, name) if ns else None

    def workloads_of(self, svc: ServiceSpec) -> list[PlacedWorkload]:
        return [w for w in self.workloads
                if (w.key.namespace, w.key.service) == (svc.namespace, svc.name)]

    def mesh_routes(self, svc: ServiceSpec) -> tuple[VirtualService | None, list[str]]:
        """The VirtualService sidecars use for a service (the first one; notes if several)."""
        found = [vs for vs in self.spec.virtual_services
                 if (not vs.gateways or "mesh" in vs.gateways)
                 and any(self.spec.resolve_host(h, vs.namespace) == (svc.namespace, svc.name)
                         for h in vs.hosts)]
        notes = [f"VirtualServices {', '.join(f'{v.namespace}/{v.name}' for v in found)} all "
                 f"route {svc.fqdn}; sidecars use the first"] if len(found) > 1 else []
        return (found[0] if found else None), notes

    def is_ambient(self, namespace: str) -> bool:
        return self.spec.data_plane.is_ambient(namespace)

    def waypoint_of(self, svc: ServiceSpec) -> PlacedWaypoint | None:
        """The placed waypoint that serves ``svc`` (None: its callers reach it directly)."""
        key = serving_waypoint(self.spec, svc)
        return self.waypoints.get(key) if key is not None else None

    # --- destination rules ----------------------------------------------------------------

    def destination_rule(self, svc: ServiceSpec) -> DestinationRule | None:
        return destination_rule(self.spec, svc)

    def subset(self, svc: ServiceSpec, name: str) -> Subset | None:
        dr = self.destination_rule(svc)
        return next((s for s in dr.subsets if s.name == name), None) if dr else None

    def subsets(self, svc: ServiceSpec) -> list[Subset]:
        dr = self.destination_rule(svc)
        return list(dr.subsets) if dr else []

    def policy(self, svc: ServiceSpec, subset: str | None) -> TrafficPolicy:
        """The effective client policy for one subset (or the whole service)."""
        dr = self.destination_rule(svc)
        if dr is None:
            return TrafficPolicy()
        found = self.subset(svc, subset) if subset else None
        return merge_policy(dr.traffic_policy, found.traffic_policy if found else None)

    def subset_workloads(self, svc: ServiceSpec, subset: str | None) -> list[PlacedWorkload]:
        """Endpoints of a subset: placed workloads whose labels the subset selects.

        A subset that no DestinationRule defines has no endpoints (Istio answers 503).
        """
        every = self.workloads_of(svc)
        if subset is None:
            return every
        found = self.subset(svc, subset)
        return [] if found is None else [w for w in every if selects(found.labels, w.labels)]

    # --- certificates ---------------------------------------------------------------------

    @property
    def pki(self) -> bool:
        return self.placement.ca_cert is not None

    def identity(self, spiffe_id: str, who: str) -> CertFiles:
        files = self.placement.identities.get(spiffe_id)
        if files is None:
            raise EnvoyCompileError(
                f"{who} takes part in mutual TLS as {spiffe_id}, but the placement has no "
                "certificate for it; issue one (placement.required_identities lists them all) "
                "or leave ca_cert unset to run the local mesh without mTLS")
        return files


def workload_labels(svc: ServiceSpec, version: str) -> dict[str, str]:
    """Pod labels of one version: ``app``/``version`` plus the version's declared labels."""
    labels = {svc.app_label: svc.name, svc.version_label: version}
    for declared in svc.versions:
        if declared.name == version:
            labels |= declared.labels
    return labels

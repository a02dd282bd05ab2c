"""Compile a mesh into Envoy v3 resources for the local mesh — pure: no I/O, no processes.

Where ``meshdsl.compile`` turns a :class:`~meshdsl.model.spec.MeshSpec` into Istio
manifests for istiod to translate, this package does istiod's translation itself, for
plain Envoys on one machine: a sidecar per workload (service + version) and a proxy per
gateway deployment, each with listeners, route tables and clusters carrying Istio's
semantics (routing, resilience, mTLS, authorization, rate limits). In an ambient namespace
a workload gets an L4 proxy instead of a sidecar (:mod:`.ztunnel`) and the namespace a
waypoint (:mod:`.waypoint`) applying the L7 part for its services. The runtime
(``reconciler.targets.envoy``) allocates ports and certificates, passes them in as a
:class:`LocalPlacement`, and feeds each :class:`ProxyConfig` to one Envoy process.

``compile_local`` is the single entry point. The naming of clusters and stats — the
contract with canary analysis — is documented in :mod:`meshdsl.compile.envoy.names`.
"""

from __future__ import annotations

from meshdsl.compile import Weights, with_weights
from meshdsl.compile.envoy import gateway, names, sidecar, waypoint, ztunnel
from meshdsl.compile.envoy.placement import (
    Address,
    CertFiles,
    GatewayPlacement,
    LocalPlacement,
    SidecarPlacement,
    WaypointKey,
    WaypointPlacement,
    WorkloadKey,
    allocate,
    credential_names,
    gateway_ports,
    gateway_workloads,
    local_workloads,
    outbound_keys,
    ports_needed,
    required_identities,
    waypoint_targets,
)
from meshdsl.compile.envoy.protos import EnvoyCompileError, Resource
from meshdsl.compile.envoy.proxy import ProxyConfig, ProxyKind
from meshdsl.compile.envoy.topology import Topology
from meshdsl.model.spec import MeshSpec

__all__ = [
    "Address",
    "CertFiles",
    "EnvoyCompileError",
    "GatewayPlacement",
    "LocalPlacement",
    "ProxyConfig",
    "ProxyKind",
    "Resource",
    "SidecarPlacement",
    "WaypointKey",
    "WaypointPlacement",
    "WorkloadKey",
    "allocate",
    "compile_local",
    "credential_names",
    "gateway_ports",
    "local_workloads",
    "names",
    "outbound_keys",
    "ports_needed",
    "required_identities",
    "waypoint_targets",
]


def compile_local(spec: MeshSpec, placement: LocalPlacement, weights: Weights | None = None
                  ) -> dict[str, ProxyConfig]:
    """Every proxy's config, keyed by proxy id (``reviews-v2.bookinfo``,
    ``istio-ingressgateway.istio-system``, ``waypoint.shop``), in a stable order.

    ``weights`` is the canary override of ``meshdsl.compile.compile_mesh``: for each
    (namespace, service), the subset weights that replace its catch-all route's split.
    Gateways without an entry in ``placement.gateways`` get no proxy.
    """
    if weights:
        spec = spec.model_copy(update={"virtual_services": [
            with_weights(vs, spec, weights) for vs in spec.virtual_services]})
    topo = Topology(spec, placement)
    out: dict[str, ProxyConfig] = {}
    for workload in topo.workloads:
        build = ztunnel.build if topo.is_ambient(workload.key.namespace) else sidecar.build
        out[workload.key.proxy_id] = build(topo, workload)
    for placed in topo.waypoints.values():
        out[placed.key.proxy_id] = waypoint.build(topo, placed)
    grouped = gateway_workloads(spec)
    for name, where in sorted(placement.gateways.items()):
        gateways = grouped.get(name)
        if not gateways:
            known = ", ".join(sorted(grouped)) or "none"
            raise EnvoyCompileError(
                f"the placement has gateway {name!r}, but no Gateway selects it "
                f"(gateway deployments: {known})")
        config = gateway.build(topo, name, gateways, where)
        out[config.id] = config
    return dict(sorted(out.items()))

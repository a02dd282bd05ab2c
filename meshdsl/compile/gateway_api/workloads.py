"""What an ambient namespace runs: its labels, one Service per version, its waypoint and
the DestinationRule traffic policy that waypoints still apply.

- the Namespace carries ``istio.io/dataplane-mode: ambient`` (ztunnel captures its pods)
  and ``istio.io/use-waypoint`` (L7 goes through the waypoint), not sidecar injection;
- every version becomes a Service ``<service>-<version>`` selecting the service's and the
  version's labels, because HTTPRoute backends are Services (no subsets);
- each Service of a namespace with a waypoint is labelled
  ``istio.io/ingress-use-waypoint: "true"`` so ingress traffic also passes the waypoint
  and its policies;
- the waypoint is a Gateway of class ``istio-waypoint`` with the HBONE listener on 15008;
- a DestinationRule keeps the service's traffic policy (no subsets); a version's own
  policy, merged over the service's as Istio merges subset policies, goes to a
  DestinationRule for that version's Service.
"""

from __future__ import annotations

from typing import Any

from meshdsl.compile import kube
from meshdsl.compile.gateway_api.refs import API, NETWORKING, obj, version_service
from meshdsl.model.base import dump
from meshdsl.model.policy import DestinationRule, TrafficPolicy
from meshdsl.model.service import NamespaceSpec, ServiceSpec
from meshdsl.model.spec import MeshSpec

Manifest = dict[str, Any]
DATAPLANE_MODE = "istio.io/dataplane-mode"
USE_WAYPOINT = "istio.io/use-waypoint"
INGRESS_USE_WAYPOINT = "istio.io/ingress-use-waypoint"
WAYPOINT_FOR = "istio.io/waypoint-for"
INJECTION = "istio-injection"
HBONE_PORT = 15008


def namespace(mesh: MeshSpec, ns: NamespaceSpec, owned: dict[str, str]) -> Manifest:
    labels = {k: v for k, v in ns.labels.items() if k != INJECTION}
    labels[DATAPLANE_MODE] = "ambient"
    waypoint = mesh.data_plane.waypoint_of(ns.name)
    if waypoint is not None:
        labels[USE_WAYPOINT] = waypoint
    return kube.namespace(ns.model_copy(update={"labels": labels}), owned)


def _label_service(manifest: Manifest, waypoint: str | None) -> Manifest:
    if waypoint is not None:
        labels = manifest["metadata"].setdefault("labels", {})
        labels[INGRESS_USE_WAYPOINT] = "true"
    return manifest


def services(mesh: MeshSpec, svc: ServiceSpec, owned: dict[str, str]) -> list[Manifest]:
    """The service's own Service (when meshdsl creates it) and one per version."""
    waypoint = mesh.data_plane.waypoint_of(svc.namespace)
    out = []
    if svc.emits_kube_service():
        out.append(_label_service(kube.service(svc, owned), waypoint))
    if not svc.ports:
        return out
    for version in svc.versions:
        manifest = kube.service(svc.model_copy(update={"name": version_service(
            svc.name, version.name)}), owned)
        manifest["spec"]["selector"] = {svc.app_label: svc.name,
                                        **(version.labels or {svc.version_label: version.name})}
        out.append(_label_service(manifest, waypoint))
    return out


def waypoint(namespace: str, name: str, owned: dict[str, str]) -> Manifest:
    spec = {"gatewayClassName": "istio-waypoint",
            "listeners": [{"name": "mesh", "port": HBONE_PORT, "protocol": "HBONE"}]}
    return obj(API, "Gateway", name, namespace, {WAYPOINT_FOR: "service", **owned}, spec)


def _merged(base: TrafficPolicy | None, own: TrafficPolicy | None) -> TrafficPolicy | None:
    if own is None:
        return base
    if base is None:
        return own
    return base.model_copy(update={k: v for k, v in own if v is not None})


def _rule(name: str, namespace: str, host: str, policy: TrafficPolicy | None,
          owned: dict[str, str]) -> Manifest | None:
    if policy is None or policy.is_empty():
        return None
    spec = {"host": host, "trafficPolicy": dump(policy)}
    return obj(NETWORKING, "DestinationRule", name, namespace, owned, spec)


def destination_rules(mesh: MeshSpec, dr: DestinationRule,
                      owned: dict[str, str]) -> list[Manifest]:
    """The rule without subsets, plus one rule per version Service that has a policy."""
    out = [_rule(dr.name, dr.namespace, dr.host, dr.traffic_policy, owned)]
    ns, name = mesh.resolve_host(dr.host, dr.namespace)
    svc = mesh.service(ns, name) if ns else None
    for subset in dr.subsets if svc is not None else []:
        policy = _merged(dr.traffic_policy, subset.traffic_policy)
        host = version_service(name, subset.name)
        if dr.namespace != ns:
            host = f"{host}.{ns}.svc.cluster.local"
        out.append(_rule(version_service(dr.name, subset.name), dr.namespace, host, policy,
                         owned))
    return [m for m in out if m is not None]

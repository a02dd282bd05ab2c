"""Which model objects the builders write for you, shared by ``to_model`` and ``to_python``.

A service's versions become a DestinationRule named after it, its ``.route(...)`` calls a
VirtualService named after it, ``Mesh(mtls=...)`` a root-namespace PeerAuthentication.
The importer only gives a service versions when the DestinationRule is exactly what the
builder would write, and the generator recognises the same objects to write the short
form — one definition keeps the two sides in step.
"""

from __future__ import annotations

from typing import Any

from meshdsl.model.policy import DestinationRule, Subset
from meshdsl.model.routing import VirtualService
from meshdsl.model.security import PeerAuthentication
from meshdsl.model.service import ServiceSpec, Version
from meshdsl.model.spec import MeshSpec


def app_of(selector: dict[str, str]) -> str | None:
    """The service a workload selector names, when it is just ``{app: name}``."""
    app = selector.get("app") if set(selector) == {"app"} else None
    return app if isinstance(app, str) and app else None


def is_mesh_mtls(pa: PeerAuthentication, root_namespace: str) -> bool:
    """Written by ``Mesh(..., mtls=MODE)``."""
    return (pa.namespace == root_namespace and pa.name == "default" and not pa.selector
            and not pa.port_level_mtls and pa.mode is not None)


def version_of(subset: Subset) -> Version:
    """The version a subset stands for (the builder's default labels left out)."""
    labels = {} if subset.labels == {"version": subset.name} else dict(subset.labels)
    return Version(subset.name, labels=labels, traffic_policy=subset.traffic_policy)


def versions_from(dr: DestinationRule) -> list[Version] | None:
    """The versions that make a service's builder write ``dr``; None if none can."""
    if dr.export_to or any(not s.labels for s in dr.subsets) or dr.name != dr.host:
        return None
    return [version_of(s) for s in dr.subsets]


def is_service_dr(svc: ServiceSpec, dr: DestinationRule) -> bool:
    """``dr`` is what ``Service.destination_rule()`` writes for ``svc`` with its policy."""
    if (dr.namespace, dr.name, dr.host) != (svc.namespace, svc.name, svc.name) or dr.export_to:
        return False
    if not svc.versions and dr.traffic_policy is None:
        return False
    subsets = [Subset(name=v.name, labels=v.labels or {"version": v.name},
                      traffic_policy=v.traffic_policy) for v in svc.versions]
    return dr.subsets == subsets


def is_service_vs(svc: ServiceSpec, vs: VirtualService) -> bool:
    """``vs`` is what ``svc.route(...)`` calls declare."""
    return ((vs.namespace, vs.name) == (svc.namespace, svc.name) and vs.hosts == [svc.name]
            and not vs.gateways and not vs.export_to)


def scoped_namespaces(spec: MeshSpec, default_namespace: str) -> list[str]:
    """Namespaces a program needs a scope for (``mesh.namespace(...)``), in first-use
    order: where anything is declared, except the mesh's own namespace and the root
    namespace's ``Mesh(mtls=...)`` policy."""
    found: dict[str, None] = {}
    mesh_mtls = next((pa for pa in spec.peer_authentications
                      if is_mesh_mtls(pa, spec.root_namespace)), None)
    groups: list[list[Any]] = [
        list(spec.services), list(spec.gateways), list(spec.service_entries),
        list(spec.workload_entries),
        list(spec.virtual_services),
        list(spec.destination_rules),
        [pa for pa in spec.peer_authentications if pa is not mesh_mtls],
        list(spec.authorization_policies), list(spec.rate_limits), list(spec.canaries)]
    for group in groups:
        for obj in group:
            found.setdefault(obj.namespace, None)
    found.pop(default_namespace, None)
    return list(found)

"""Hosts outside the mesh's services and the machines behind them: ServiceEntries whose
``workload_selector`` selects nothing, and endpoint addresses Istio cannot use.

A ServiceEntry with a ``workload_selector`` has exactly the endpoints of the
WorkloadEntries and pods of its namespace whose labels include the selector's; if none
does, the host resolves but every request fails (503, no healthy upstream). Pods and
machines outside the program (another team's, auto-registered by a WorkloadGroup) may
still match, so this is a warning (MD117); the objects the program carries raw count.

An endpoint address (a WorkloadEntry's, or inline in a ServiceEntry's ``endpoints``) is
an IP address, a fully qualified DNS name without wildcards, or ``unix:///path``, and a
DNS name only where Envoy resolves it: under resolution DNS or DNS_ROUND_ROBIN. Istio
accepts a WorkloadEntry with a DNS name on its own (it cannot know which ServiceEntry
will select it) and the sidecars then fail to load a STATIC cluster, so this is an
error here (MD118). What the CRDs themselves enforce (an address or network is
required, the shape of a ``unix://`` path) is the offline CRD check's (MD140/MD141).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any

from meshdsl.model.external import ExternalEndpoint, ServiceEntry
from meshdsl.model.spec import MeshSpec
from meshdsl.validate.findings import Finding, error, warning
from meshdsl.validate.names import is_subdomain


def address_kind(address: str) -> str | None:
    """``"ip"``, ``"dns"`` or ``"unix"`` for an address Istio can use, else None."""
    if address.startswith("unix://"):
        return "unix"
    try:
        ipaddress.ip_address(address)
        return "ip"
    except ValueError:
        pass
    return "dns" if is_subdomain(address.lower().removesuffix(".")) else None


def _labels_at(value: Any, *keys: str) -> dict[str, str] | None:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else None


def raw_labels(manifest: Mapping[str, Any]) -> dict[str, str] | None:
    """The labels of the pods or machines a raw object stands for, if it stands for any."""
    kind = manifest.get("kind")
    if kind == "Pod":
        return _labels_at(manifest, "metadata", "labels")
    if kind == "WorkloadEntry":
        return _labels_at(manifest, "spec", "labels")
    if kind == "WorkloadGroup":  # the template of the entries it registers
        return _labels_at(manifest, "spec", "metadata", "labels")
    if kind == "CronJob":
        return _labels_at(manifest, "spec", "jobTemplate", "spec", "template", "metadata",
                          "labels")
    return _labels_at(manifest, "spec", "template", "metadata", "labels")


def workload_labels(mesh: MeshSpec) -> list[tuple[str, dict[str, str]]]:
    """(namespace, labels) of every pod and machine the program declares or carries."""
    out = [(svc.namespace, svc.pod_labels(wl)) for svc in mesh.services
           for wl in svc.workloads]
    out += [(we.namespace, we.labels) for we in mesh.workload_entries]
    for manifest in mesh.raw:
        labels = raw_labels(manifest)
        meta = manifest.get("metadata")
        namespace = meta.get("namespace") if isinstance(meta, dict) else None
        if labels is not None:
            out.append((namespace if isinstance(namespace, str) else
                        mesh.default_namespace, labels))
    return out


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _selected_nothing(mesh: MeshSpec) -> Iterator[Finding]:
    found = workload_labels(mesh)
    for se in mesh.service_entries:
        if se.workload_selector is None:
            continue
        selector = se.workload_selector.labels
        if any(ns == se.namespace and _selects(selector, labels) for ns, labels in found):
            continue
        yield warning("MD117", f"ServiceEntry {se.namespace}/{se.name} workloadSelector",
                      f"selects workloads labelled {selector} in {se.namespace}, but no "
                      "WorkloadEntry or pod of this mesh there carries those labels, so "
                      f"{se.hosts[0]} has no endpoints; declare the machine with "
                      f"workload_entry(..., labels={selector}) in {se.namespace!r} or fix "
                      "the selector", se.source)


def _bad_address(endpoint: ExternalEndpoint, resolution: str | None,
                 selector: ServiceEntry | None) -> str | None:
    """Why an endpoint's address is unusable (``selector``: the STATIC ServiceEntry that
    selects a WorkloadEntry), or None."""
    address = endpoint.address
    if address is None:
        return None
    kind = address_kind(address)
    if kind is None:
        return (f"address {address!r} is neither an IP address, a DNS name nor "
                "unix:///path (leave the port out: it belongs in ports=)")
    if kind == "dns" and resolution == "STATIC":
        whose = "this ServiceEntry resolves" if selector is None else \
            f"ServiceEntry {selector.namespace}/{selector.name}, which selects it, resolves"
        return (f"address {address!r} is a DNS name, but {whose} STATIC: Envoy needs an IP "
                "address there; use one, or resolution='DNS'")
    return None


def _addresses(mesh: MeshSpec) -> Iterator[Finding]:
    for se in mesh.service_entries:
        for i, endpoint in enumerate(se.endpoints):
            why = _bad_address(endpoint, se.resolution, None)
            if why is not None:
                yield error("MD118", f"ServiceEntry {se.namespace}/{se.name} "
                            f"endpoints[{i}].address", why, se.source)
    for we in mesh.workload_entries:
        static = next((se for se in mesh.service_entries
                       if se.workload_selector is not None and se.resolution == "STATIC"
                       and se.namespace == we.namespace
                       and _selects(se.workload_selector.labels, we.labels)), None)
        why = _bad_address(we, None if static is None else "STATIC", static)
        if why is not None:
            yield error("MD118", f"WorkloadEntry {we.namespace}/{we.name} address", why,
                        we.source)


def check(mesh: MeshSpec) -> Iterator[Finding]:
    yield from _selected_nothing(mesh)
    yield from _addresses(mesh)

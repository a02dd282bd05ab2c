"""ServiceEntries and WorkloadEntries: the DSL's external hosts and machines as Istio
objects."""

from __future__ import annotations

from meshdsl.compile.manifest import Manifest
from meshdsl.model.external import ServiceEntry, WorkloadEntry

API = "networking.istio.io/v1"


def _meta(name: str, namespace: str, labels: dict[str, str]) -> dict[str, object]:
    meta: dict[str, object] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    return meta


def service_entry(se: ServiceEntry, labels: dict[str, str]) -> Manifest:
    return {"apiVersion": API, "kind": "ServiceEntry",
            "metadata": _meta(se.name, se.namespace, labels), "spec": se.spec()}


def workload_entry(we: WorkloadEntry, labels: dict[str, str]) -> Manifest:
    return {"apiVersion": API, "kind": "WorkloadEntry",
            "metadata": _meta(we.name, we.namespace, labels), "spec": we.spec()}

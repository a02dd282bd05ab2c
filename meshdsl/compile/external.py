"""ServiceEntries: the DSL's external hosts as Istio objects."""

from __future__ import annotations

from meshdsl.compile.manifest import Manifest
from meshdsl.model.external import ServiceEntry

API = "networking.istio.io/v1"


def service_entry(se: ServiceEntry, labels: dict[str, str]) -> Manifest:
    meta: dict[str, object] = {"name": se.name, "namespace": se.namespace}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": API, "kind": "ServiceEntry", "metadata": meta, "spec": se.spec()}

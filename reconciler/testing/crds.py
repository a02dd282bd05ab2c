"""Serving CRDs on the local API server: create (or replace) them, then wait until each is
Established and every served version answers a LIST."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml

from reconciler.testing.components import LocalApiServerError, default_crd_files

__all__ = ["CRD_TIMEOUT", "FIELD_MANAGER", "Server", "install_crds", "wait_for_crds"]

FIELD_MANAGER = "meshdsl-local-apiserver"
CRD_TIMEOUT = 60.0


class Server(Protocol):
    """What installing CRDs needs of :class:`~reconciler.testing.apiserver.LocalApiServer`."""

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]: ...

    def get_json(self, path: str, timeout: float = 5.0) -> Any: ...

    def dynamic_client(self) -> Any: ...


def _load_crd_documents(path: Path) -> list[dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as handle:
        docs = [d for d in yaml.load_all(handle, Loader=loader) if isinstance(d, dict)]
    crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    if not crds:
        raise LocalApiServerError(f"no CustomResourceDefinition in {path}")
    return crds


def install_crds(
    server: Server,
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    *,
    timeout: float = CRD_TIMEOUT,
) -> list[str]:
    """Create (or replace) every CRD in ``path`` (one file or several) and wait until all
    are served.

    Defaults to :func:`default_crd_files` (Istio's bundle and Gateway API's standard
    channel). Nothing is validated locally: the documents go to the server as JSON, which
    (1.20) drops the ``x-kubernetes-validations`` CEL rules and keeps the structural
    schemas. Returns the CRD names.
    """
    from kubernetes.dynamic.exceptions import ConflictError

    if path is None:
        paths = default_crd_files()
    elif isinstance(path, str | os.PathLike):
        paths = [Path(path)]
    else:
        paths = [Path(p) for p in path]
    documents = []
    for crd_path in paths:
        if not crd_path.is_file():
            raise LocalApiServerError(f"CRD file not found: {crd_path} (give --crds PATH, "
                                      "or set MESHDSL_SHARED_DIR)")
        documents.extend(_load_crd_documents(crd_path))
    dyn = server.dynamic_client()
    try:
        resource = dyn.resources.get(
            api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
        )
        for doc in documents:
            try:
                dyn.create(resource, body=doc, field_manager=FIELD_MANAGER)
            except ConflictError:
                current = dyn.get(resource, name=doc["metadata"]["name"])
                replacement = dict(doc)
                replacement["metadata"] = {
                    **doc["metadata"],
                    "resourceVersion": current.metadata.resourceVersion,
                }
                dyn.replace(resource, body=replacement, field_manager=FIELD_MANAGER)
    finally:
        dyn.client.close()
    wait_for_crds(server, documents, timeout=timeout)
    return [str(doc["metadata"]["name"]) for doc in documents]

def wait_for_crds(server: Server, documents: Sequence[dict[str, Any]], *, timeout: float) -> None:
    """Wait until each CRD is Established and every served version answers a LIST."""
    deadline = time.monotonic() + timeout
    pending = {str(doc["metadata"]["name"]): doc for doc in documents}
    while pending:
        # every CRD with its schema is several MB: give a loaded machine time to send it
        listing = server.get_json("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                                  timeout=30.0)
        for item in listing.get("items", []):
            name = item["metadata"]["name"]
            doc = pending.get(name)
            conditions = item.get("status", {}).get("conditions") or []
            established = any(
                c.get("type") == "Established" and c.get("status") == "True" for c in conditions
            )
            if doc is None or not established:
                continue
            spec = doc["spec"]
            plural = spec["names"]["plural"]
            served = [v["name"] for v in spec["versions"] if v.get("served", True)]
            if all(
                server.get(f"/apis/{spec['group']}/{version}/{plural}?limit=1")[0] == 200
                for version in served
            ):
                del pending[name]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise LocalApiServerError(
                f"CRDs not established/served within {timeout:.0f} s: "
                f"{', '.join(sorted(pending))}"
            )
        time.sleep(0.2)

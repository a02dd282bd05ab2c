"""Where the offline CRD check gets its CRDs: files, a live cluster, or the bundles.

``--crds`` files and directories come first (so a user's newer Istio shadows the bundled
one), then the cluster's CRDs when a kubeconfig or context is given, then the bundles
that ship with meshdsl for every kind still missing. Reading is the I/O edge; the check
itself is ``meshdsl.crdcheck``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from meshdsl.crdcheck import Catalog, default_catalog
from meshdsl.crds import bundled

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CrdSourceError(Exception):
    """CRDs could not be read (a missing or broken file, an unreachable cluster)."""


def _files(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            out += sorted(p for p in path.rglob("*")
                          if p.suffix in {".yaml", ".yml", ".json"} and p.is_file())
        elif path.is_file():
            out.append(path)
        else:
            raise CrdSourceError(f"--crds {name}: no such file or directory")
    return out


def read_files(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions in YAML/JSON files and directories (others skipped)."""
    out: list[dict[str, Any]] = []
    for path in _files(paths):
        try:
            text = path.read_text(encoding="utf-8")
            docs = json.loads(text) if path.suffix == ".json" else \
                list(yaml.load_all(text, Loader=_Loader))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise CrdSourceError(f"--crds {path}: {exc}".splitlines()[0]) from exc
        for doc in docs if isinstance(docs, list) else [docs]:
            items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == \
                "CustomResourceDefinitionList" else [doc]
            out += [d for d in items or [] if isinstance(d, dict)
                    and d.get("kind") == "CustomResourceDefinition"]
    return out


def read_cluster(kubeconfig: str | None, context: str | None) -> list[dict[str, Any]]:
    """The cluster's CustomResourceDefinitions, as the API server serves them."""
    from kubernetes import client as k8s_client
    from urllib3.exceptions import HTTPError

    from reconciler.runtime.leader import LeaseError, api_client
    try:
        api: Any = k8s_client.ApiextensionsV1Api(api_client(kubeconfig, context=context))
        response = api.list_custom_resource_definition(_preload_content=False,
                                                       _request_timeout=(5, 30))
        items = json.loads(response.data).get("items") or []
    except (LeaseError, OSError, ValueError, HTTPError, k8s_client.ApiException) as exc:
        raise CrdSourceError(f"cannot read the cluster's CRDs: {exc}".splitlines()[0]) \
            from exc
    for item in items:
        item.setdefault("kind", "CustomResourceDefinition")
    return [i for i in items if isinstance(i, dict)]


def catalog(crds: Sequence[str] = (), *, kubeconfig: str | None = None,
            context: str | None = None) -> Catalog:
    """The catalog for a command's ``--crds``/``--kubeconfig``/``--context``."""
    if not crds and kubeconfig is None and context is None:
        return default_catalog()
    documents = read_files(crds)
    if kubeconfig is not None or context is not None:
        documents += read_cluster(kubeconfig, context)
    return Catalog([*documents, *bundled()])

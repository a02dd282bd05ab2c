"""What a live cluster returns beside the objects a user applied, and is left out of an import.

``kubectl get all -o yaml`` (or a List of every kind in a namespace) returns objects that
no one wrote and no mesh program should declare: what controllers make from others (the
ReplicaSets of a Deployment, their Pods: a ``controller`` ownerReference), what the
cluster keeps in every namespace (the ``default`` ServiceAccount, the ``kube-root-ca.crt``
ConfigMap), and the API server's own Service ``default/kubernetes``. Carried raw, each
would be a write a reconciler is refused (they are not its own) or, worse, a fight with
the controller that owns it; so each is left out with one warning saying why. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from meshdsl.compile.defaults import without_defaults
from meshdsl.importer.errors import ImporterWarning
from meshdsl.importer.yamlsource import Document

__all__ = ["cluster_made", "left_out"]

_ROOT_CA = "kube-root-ca.crt"


def _meta(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = manifest.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _controller(meta: Mapping[str, Any]) -> str | None:
    refs = meta.get("ownerReferences")
    for ref in refs if isinstance(refs, list) else []:
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            return f"{ref.get('kind')} {ref.get('name')}"
    return None


def _empty_account(manifest: Mapping[str, Any]) -> bool:
    """A ServiceAccount holding nothing but what the cluster gave it (token Secrets)."""
    return set(without_defaults(dict(manifest))) <= {"apiVersion", "kind", "metadata"}


def cluster_made(manifest: Mapping[str, Any]) -> str | None:
    """Why an object is the cluster's rather than a user's, or None when it may be a user's."""
    meta = _meta(manifest)
    api, kind = manifest.get("apiVersion"), manifest.get("kind")
    owner = _controller(meta)
    if owner is not None:
        return f"made and kept by its controller, {owner}"
    key = (api, kind, meta.get("namespace"), meta.get("name"))
    labels = meta.get("labels")
    if key == ("v1", "Service", "default", "kubernetes") and isinstance(labels, Mapping) and (
            labels.get("component"), labels.get("provider")) == ("apiserver", "kubernetes"):
        return "the API server's own Service, no part of a mesh"
    if key[:2] == ("v1", "ServiceAccount") and key[3] == "default" and \
            _empty_account(manifest):
        return "the ServiceAccount the cluster makes in every namespace"
    if key[:2] == ("v1", "ConfigMap") and key[3] == _ROOT_CA:
        return "the cluster's CA bundle, published in every namespace"
    return None


def left_out(documents: Sequence[Document]) -> tuple[list[Document], list[ImporterWarning]]:
    """The documents a user may have written, and a warning for each one left out."""
    kept, warnings = [], []
    for doc in documents:
        why = cluster_made(doc.manifest)
        if why is None:
            kept.append(doc)
            continue
        meta = _meta(doc.manifest)
        ns, name = meta.get("namespace"), meta.get("name")
        ref = f"{ns}/{name}" if ns else str(name)
        warnings.append(ImporterWarning(f"{doc.manifest.get('kind')} {ref}", "",
                                        f"{why}: left out", doc.where()))
    return kept, warnings

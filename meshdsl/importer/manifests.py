"""Which objects the importer understands, and the objects as the user meant them.

Every input object is one of: *modelled* (the DSL has a typed form for it), *carried*
(a well-known Istio or Kubernetes kind that travels through ``mesh.raw`` unchanged), or
unknown — an error, since a typo in ``kind`` or ``apiVersion`` would otherwise be carried
to the cluster unnoticed.

Objects are read as a user would apply them, so that importing rendered output or what a
live cluster returns (``kubectl get -o yaml``, a ``List``) gives back the program: the
fields the server sets (``status``, ``metadata.uid``, ``managedFields``, …) are removed
without a word, as are meshdsl's own labels and annotations (the reconciler's and the
desired hash), the fields equal to their server default (``meshdsl.compile.defaults``)
and ``null`` values, the unset fields they are.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from meshdsl.compile.compare import normalize
from meshdsl.compile.defaults import without_defaults
from meshdsl.compile.manifest import (
    DESIRED_HASH,
    LAST_APPLIED,
    MANAGED_BY,
    MANAGER,
    MESH_LABEL,
    OWNER_LABEL,
    SERVER_METADATA,
)
from meshdsl.importer.errors import ImporterWarning, InputError
from meshdsl.importer.yamlsource import Document
from meshdsl.model.base import SourceLocation

NETWORKING, SECURITY = "networking.istio.io", "security.istio.io"

_ISTIO_VERSIONS = {
    NETWORKING: ("v1", "v1beta1", "v1alpha3"),
    SECURITY: ("v1", "v1beta1"),
    "telemetry.istio.io": ("v1", "v1alpha1"),
    "extensions.istio.io": ("v1alpha1",),
}

MODELLED = {
    (NETWORKING, "VirtualService"), (NETWORKING, "DestinationRule"), (NETWORKING, "Gateway"),
    (NETWORKING, "EnvoyFilter"), (NETWORKING, "ServiceEntry"), (NETWORKING, "WorkloadEntry"),
    (SECURITY, "PeerAuthentication"),
    (SECURITY, "AuthorizationPolicy"), ("", "Namespace"), ("", "Service"),
    ("", "ServiceAccount"), ("apps", "Deployment"),
}

CARRIED = {
    (NETWORKING, "Sidecar"), (NETWORKING, "WorkloadGroup"), (NETWORKING, "ProxyConfig"),
    (SECURITY, "RequestAuthentication"), ("telemetry.istio.io", "Telemetry"),
    ("extensions.istio.io", "WasmPlugin"),
    ("", "ConfigMap"), ("", "Secret"), ("", "Pod"), ("", "PersistentVolumeClaim"),
    ("", "LimitRange"), ("", "ResourceQuota"), ("", "Endpoints"),
    ("apps", "StatefulSet"), ("apps", "DaemonSet"), ("apps", "ReplicaSet"),
    ("batch", "Job"), ("batch", "CronJob"), ("autoscaling", "HorizontalPodAutoscaler"),
    ("policy", "PodDisruptionBudget"), ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "NetworkPolicy"), ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"), ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("gateway.networking.k8s.io", "Gateway"), ("gateway.networking.k8s.io", "HTTPRoute"),
    ("gateway.networking.k8s.io", "GRPCRoute"), ("gateway.networking.k8s.io", "TCPRoute"),
    ("gateway.networking.k8s.io", "TLSRoute"), ("gateway.networking.k8s.io", "GatewayClass"),
    ("gateway.networking.k8s.io", "ReferenceGrant"),
}

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "GatewayClass",
                  "ClusterIssuer", "PodSecurityPolicy", "CustomResourceDefinition",
                  "StorageClass", "PriorityClass", "IngressClass", "PersistentVolume",
                  "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
                  "RuntimeClass", "APIService", "CSIDriver", "Node"}
# what kubectl, the Deployment controller and meshdsl's reconciler write beside the user
_SERVER_ANNOTATIONS = (LAST_APPLIED, "deployment.kubernetes.io/revision", DESIRED_HASH)


@dataclass
class Resource:
    """An input object after cleaning, with its identity and its YAML lines."""

    doc: Document
    manifest: dict[str, Any]
    group: str
    kind: str
    name: str
    namespace: str
    modelled: bool
    mesh_label: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else \
            f"{self.kind} {self.name}"

    @property
    def spec(self) -> dict[str, Any]:
        return self.mapping(self.manifest.get("spec", {}), ("spec",))

    def where(self, path: Sequence[str | int] = ()) -> SourceLocation:
        return self.doc.where(path)

    def error(self, path: Sequence[str | int], message: str) -> InputError:
        shown = dotted(path)
        return InputError(f"{self.ref}{' ' + shown if shown else ''}: {message}",
                          self.where(path))

    def warning(self, path: Sequence[str | int], message: str) -> ImporterWarning:
        return ImporterWarning(self.ref, dotted(path), message, self.where(path))

    def mapping(self, value: Any, path: Sequence[str | int]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"must be a mapping, not {type_name(value)}")
        return value

    def listing(self, value: Any, path: Sequence[str | int]) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(path, f"must be a list, not {type_name(value)}")
        return value

    def string(self, value: Any, path: Sequence[str | int]) -> str:
        if not isinstance(value, str):
            raise self.error(path, f"must be a string, not {type_name(value)}")
        return value


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def dotted(path: Sequence[str | int]) -> str:
    """``spec.http[0].route`` for ``("spec", "http", 0, "route")``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _split_api(doc: Document, api: Any) -> tuple[str, str]:
    if not isinstance(api, str) or not api:
        raise InputError("the object has no apiVersion (a string like "
                         "'networking.istio.io/v1')", doc.where(("apiVersion",)))
    group, _, version = api.rpartition("/")
    return group, version


def _classify(doc: Document) -> tuple[str, str, bool]:
    group, version = _split_api(doc, doc.manifest.get("apiVersion"))
    kind = doc.manifest.get("kind")
    if not isinstance(kind, str) or not kind:
        raise InputError("the object has no kind (like VirtualService)", doc.where(("kind",)))
    known = {k for g, k in MODELLED | CARRIED if g == group}
    if (group, kind) not in MODELLED | CARRIED:
        # A near miss of a kind we know in its group is a typo; anything else (a
        # ClusterIssuer, an IstioOperator, a PodSecurityPolicy) is carried through raw.
        close = difflib.get_close_matches(kind, sorted(known), n=1, cutoff=0.8)
        if close:
            raise InputError(f"unknown kind {kind!r} in apiVersion "
                             f"{doc.manifest['apiVersion']!r}; did you mean {close[0]}?",
                             doc.where(("kind",)))
        return group, kind, False
    allowed = _ISTIO_VERSIONS.get(group)
    if allowed is not None and version not in allowed:
        raise InputError(f"unknown apiVersion {doc.manifest['apiVersion']!r} for {kind}; "
                         f"use {' or '.join(f'{group}/{v}' for v in allowed)}",
                         doc.where(("apiVersion",)))
    if (group, kind) in {("", "Namespace"), ("", "Service"), ("", "ServiceAccount")} | {
            ("apps", "Deployment")} and version != "v1":
        return group, kind, False
    return group, kind, (group, kind) in MODELLED


def _without_nulls(doc: Document, value: Any, path: tuple[str | int, ...] = ()) -> Any:
    """``key: null`` means the key is unset, to the API server as to the DSL; a null list
    item means nothing and is an error."""
    if isinstance(value, dict):
        return {k: _without_nulls(doc, v, (*path, k)) for k, v in value.items()
                if v is not None}
    if isinstance(value, list):
        if None in value:
            raise InputError(f"{dotted(path)}: a list item is empty (null); remove it or "
                             "fill it in", doc.where((*path, value.index(None))))
        return [_without_nulls(doc, v, (*path, i)) for i, v in enumerate(value)]
    return value


def applied(doc: Document) -> Document:
    """``doc`` as a user would apply it: without the fields the server sets, the
    annotations kubectl, controllers and meshdsl's reconciler add, and null values
    (meshdsl's ownership labels but the reconciler's stay: they name the mesh, see
    :func:`resource`). An object read from a cluster (it has server-set metadata) also
    loses the fields equal to their server default; one written by hand keeps what its
    author wrote (comparisons ignore defaults on both sides anyway)."""
    manifest = _without_nulls(doc, copy.deepcopy(doc.manifest))
    manifest.pop("status", None)
    meta = manifest.get("metadata")
    live = isinstance(meta, dict) and any(key in meta for key in SERVER_METADATA)
    if isinstance(meta, dict):
        for key in SERVER_METADATA:
            meta.pop(key, None)
        annotations = meta.get("annotations")
        if isinstance(annotations, dict):
            for key in _SERVER_ANNOTATIONS:
                annotations.pop(key, None)
            if not annotations:
                meta.pop("annotations")
        labels = meta.get("labels")
        if isinstance(labels, dict) and labels.get(MANAGED_BY) == MANAGER:
            labels.pop(OWNER_LABEL, None)
    return replace(doc, manifest=without_defaults(manifest) if live else manifest)


def _clean(doc: Document, kind: str) -> tuple[dict[str, Any], str | None]:
    """The manifest as applied (:func:`applied`), without meshdsl's ownership labels, and
    the mesh they name."""
    manifest = applied(doc).manifest
    meta = manifest.get("metadata")
    if not isinstance(meta, dict):
        raise InputError(f"the {kind} has no metadata (a mapping with a name)",
                         doc.where(("metadata",)))
    mesh_label = None
    labels = meta.get("labels")
    if isinstance(labels, dict):
        if labels.get(MANAGED_BY) == MANAGER:
            labels.pop(MANAGED_BY)
            mesh_label = labels.pop(MESH_LABEL, None)
        if not labels:
            meta.pop("labels")
    return manifest, mesh_label if isinstance(mesh_label, str) else None


def resource(doc: Document, default_namespace: str) -> Resource:
    """Classify and clean one input object; :class:`InputError` when it is not one we know."""
    group, kind, modelled = _classify(doc)
    manifest, mesh_label = _clean(doc, kind)
    meta = manifest["metadata"]
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"the {kind} has no metadata.name", doc.where(("metadata",)))
    namespace = meta.get("namespace", None if kind in CLUSTER_SCOPED else default_namespace)
    if namespace is not None and not isinstance(namespace, str):
        raise InputError(f"metadata.namespace of {kind} {name} must be a string",
                         doc.where(("metadata", "namespace")))
    return Resource(doc, manifest, group, kind, name, namespace or "", modelled, mesh_label)


def expected(res: Resource) -> dict[str, Any]:
    """The object as compared with compiled output: ownership labels and Istio API
    versions normalized (see ``meshdsl.compile.compare``), the namespace made explicit."""
    out = normalize(res.manifest)
    if res.namespace:
        out["metadata"]["namespace"] = res.namespace
    return out

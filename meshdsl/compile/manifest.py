"""Compiled resources: plain dicts with a stable identity, a stable order and YAML output.

``ResourceKey`` pairs desired and live objects (group, kind, namespace, name) and names
one object to a target (``GroupKind``, a kind of them); the order puts what others depend
on first (Namespaces, Services, DestinationRules before the VirtualServices that use their
subsets), and rendering is byte-for-byte deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from meshdsl.compile import yamltext

Manifest = dict[str, Any]

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "meshdsl"
MESH_LABEL = "meshdsl.io/mesh"
# Written by the reconciler on what it applies; defined here, below both the reconciler
# and the importer, which drops them when reading live objects back.
OWNER_LABEL = "meshdsl.io/reconciler"  # which reconciler owns the object
ROLE_LABEL = "meshdsl.io/role"  # what a reconciler's own state object holds
DESIRED_HASH = "meshdsl.io/desired-hash"  # the hash of the manifest last applied
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# metadata only the API server writes: never the user's, never compared
SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp",
                   "managedFields", "selfLink", "deletionTimestamp",
                   "deletionGracePeriodSeconds")

# Apply order: what is referenced comes before what references it.
KIND_ORDER = {
    "Namespace": 0,
    "ServiceAccount": 1,
    "Service": 2,
    "Deployment": 3,
    "DestinationRule": 4,
    "Gateway": 5,
    "ReferenceGrant": 5,
    "VirtualService": 6,
    "HTTPRoute": 6,
    "GRPCRoute": 6,
    "TCPRoute": 6,
    "PeerAuthentication": 7,
    "AuthorizationPolicy": 8,
    "EnvoyFilter": 9,
    "Telemetry": 10,
}


@dataclass(frozen=True, order=True)
class GroupKind:
    """A kind of object by API group (``""``: the core group), whatever version serves it.

    Versions are representations of one stored object; which one to read is the store's
    business (the kube target asks discovery for the served, preferred one, as kubectl
    does), so identities name a kind without one."""

    group: str
    kind: str

    def key(self, namespace: str, name: str) -> ResourceKey:
        """The object of this kind named ``name`` in ``namespace`` (``""``: cluster-scoped)."""
        return ResourceKey(self.group, self.kind, namespace, name)

    def __str__(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


CONFIG_MAP = GroupKind("", "ConfigMap")
NAMESPACE = GroupKind("", "Namespace")


@dataclass(frozen=True, order=True)
class ResourceKey:
    """One object's identity: group, kind, namespace (``""`` when cluster-scoped), name."""

    group: str
    kind: str
    namespace: str
    name: str

    @property
    def group_kind(self) -> GroupKind:
        return GroupKind(self.group, self.kind)

    @classmethod
    def of(cls, manifest: Manifest) -> ResourceKey:
        api = str(manifest.get("apiVersion", ""))
        group = api.rsplit("/", 1)[0] if "/" in api else ""
        meta = manifest.get("metadata", {})
        return cls(group, str(manifest.get("kind", "")), str(meta.get("namespace", "")),
                   str(meta.get("name", "")))

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{ns}{self.name}"


def order_key(manifest: Manifest) -> tuple[int, str, str, str]:
    key = ResourceKey.of(manifest)
    return (KIND_ORDER.get(key.kind, 50), key.kind, key.namespace, key.name)


def sort_manifests(manifests: Iterable[Manifest]) -> list[Manifest]:
    return sorted(manifests, key=order_key)


def ownership_labels(mesh: str) -> dict[str, str]:
    """Labels on everything meshdsl creates, so a reconciler can find what it owns."""
    return {MANAGED_BY: MANAGER, MESH_LABEL: mesh}


def to_yaml(manifests: Sequence[Manifest]) -> str:
    """One YAML stream, ``---`` between documents; keys in the order they were built."""
    return yamltext.dump_all(manifests)


def file_name(manifest: Manifest) -> str:
    """Where ``meshctl render -o DIR`` writes a manifest: ``<namespace>/<kind>-<name>.yaml``."""
    key = ResourceKey.of(manifest)
    ns = key.namespace or "_cluster"
    return f"{ns}/{key.kind.lower()}-{key.name}.yaml"

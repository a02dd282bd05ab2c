"""What istioctl's analyzers look things up in, built once from the input objects.

Istio's registry semantics, not meshdsl's: a short host is FQDN-qualified with the
referring object's namespace, but a host with any dot (``reviews.default``) is taken as
written; Services and ServiceEntries are visible to the namespaces their ``exportTo``
(the ``networking.istio.io/exportTo`` annotation for a Service) names, ``*`` or ``.``;
wildcard ServiceEntry hosts cover every host with their suffix. Kinds are told apart by
API group as istioctl's collections are (an Istio ``Gateway`` is not a Gateway API
``Gateway``, a Knative ``Service`` is not a Service), and objects in the namespaces
istioctl never reads (``kube-system``, ``kube-public``, ``kube-node-lease``,
``local-path-storage``) are left out. One deliberate difference: see ``Registry.judges``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshdsl.crdcheck import Placed

ALL = "*"
LOCAL = "."
DOMAIN = "svc.cluster.local"
_FQDN = re.compile(r"^(.+)\.(.+)\.svc\.cluster\.local$")
ISTIO = "networking.istio.io"
GATEWAY_API = "gateway.networking.k8s.io"
# The API group each kind the analyzers read is taken from ("" is the core group).
GROUPS = {"Service": "", "Pod": "", "Deployment": "apps", "StatefulSet": "apps",
          "DaemonSet": "apps", "ReplicaSet": "apps", "Job": "batch", "Gateway": ISTIO,
          "VirtualService": ISTIO, "DestinationRule": ISTIO, "ServiceEntry": ISTIO}
IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease",
                                "local-path-storage"})


@dataclass(frozen=True)
class Obj:
    """One input object with its namespace resolved."""

    doc: Placed
    kind: str
    namespace: str
    name: str

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.doc.manifest.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.doc.manifest.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def group(self) -> str:
        api_version = str(self.doc.manifest.get("apiVersion", ""))
        return api_version.rpartition("/")[0]

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return f"{self.kind} {self.full_name}"


def fqdn(namespace: str, host: str) -> str:
    """Istio's ConvertHostToFQDN: only a dot-less, non-wildcard host is qualified."""
    if host.startswith("*") or "." in host:
        return host
    return f"{host}.{namespace}.{DOMAIN}"


def service_name(namespace: str, host: str) -> tuple[str, str]:
    """(namespace, name) a host refers to: an FQDN's own, else the referrer's namespace."""
    found = _FQDN.match(host)
    return (found.group(2), found.group(1)) if found else (namespace, host)


def host_matches(a: str, b: str) -> bool:
    """Istio's host.Name.Matches: equal, or a wildcard covering the other (either way)."""
    if a.startswith("*"):
        if b.startswith("*"):
            return b[1:].endswith(a[1:]) if len(a) < len(b) else a[1:].endswith(b[1:])
        return b.endswith(a[1:])
    if b.startswith("*"):
        return a.endswith(b[1:])
    return a == b


def strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


@dataclass(frozen=True)
class Entry:
    """A host in the registry: the object that declared it and its ports."""

    owner: Obj
    ports: tuple[int, ...]


@dataclass
class Registry:
    objects: list[Obj]
    hosts: dict[tuple[str, str], Entry] = field(default_factory=dict)
    subsets: set[tuple[str, str, str]] = field(default_factory=set)

    def of(self, *kinds: str, group: str | None = None) -> list[Obj]:
        """The objects of these kinds, each of its own API group (``GROUPS``) unless
        ``group`` names another."""
        return [o for o in self.objects if o.kind in kinds and
                o.group == (GROUPS.get(o.kind, o.group) if group is None else group)]

    def judges(self, namespace: str, host: str) -> bool:
        """Whether a missing host is a finding. Input that has no Service in a namespace
        shows that namespace's routing only, its Services live elsewhere (the cluster,
        the application's chart): then a cluster-local host there (short, or
        ``name.ns.svc.cluster.local``) is not judged, where ``istioctl analyze
        --use-kube=false`` would flag every one."""
        if "." in host and not host.endswith("." + DOMAIN):
            return True
        target, _ = service_name(namespace, host)
        return any(s.namespace == target for s in self.of("Service"))

    def lookup(self, namespace: str, export_to: Sequence[str], host: str) -> Entry | None:
        """Istio's GetDestinationHost: exact scoped FQDN first, then wildcard entries."""
        name = fqdn(namespace, host)
        if (ALL, name) in self.hosts:
            return self.hosts[(ALL, name)]
        scopes = [namespace if s == LOCAL else s for s in export_to] or [namespace]
        for scope in scopes:
            if (scope, name) in self.hosts:
                return self.hosts[(scope, name)]
        bare = host[1:] if host.startswith("*") else host
        for (scope, entry_host), entry in sorted(self.hosts.items(), key=lambda kv: kv[0]):
            if entry_host.startswith("*") and scope in (ALL, namespace) and \
                    bare.endswith(entry_host[1:]):
                return entry
        return None


def _ports(value: Any) -> tuple[int, ...]:
    return tuple(p["number"] if "number" in p else p.get("port", 0) for p in dicts(value)
                 if isinstance(p.get("number", p.get("port")), int))


def _scopes(export_to: Iterable[str], namespace: str) -> list[str]:
    scopes = list(export_to)
    if not scopes or ALL in scopes:
        return [ALL]
    return [namespace if s == LOCAL else s for s in scopes]


def build(documents: Iterable[Placed], default_namespace: str) -> Registry:
    objects = []
    for doc in documents:
        meta = doc.manifest.get("metadata") or {}
        kind = doc.manifest.get("kind")
        if isinstance(kind, str) and isinstance(meta, dict):
            obj = Obj(doc, kind, str(meta.get("namespace") or default_namespace),
                      str(meta.get("name", "")))
            if (obj.name if kind == "Namespace" else obj.namespace) not in IGNORED_NAMESPACES:
                objects.append(obj)
    registry = Registry(objects)
    for entry in registry.of("ServiceEntry"):
        ports = _ports(entry.spec.get("ports"))
        for scope in _scopes(strings(entry.spec.get("exportTo")), entry.namespace):
            for host in strings(entry.spec.get("hosts")):
                registry.hosts[(scope, fqdn(entry.namespace, host))] = Entry(entry, ports)
    for svc in registry.of("Service"):
        annotations: Mapping[str, Any] = svc.metadata.get("annotations") or {}
        export = str(annotations.get("networking.istio.io/exportTo", ""))
        scopes = _scopes([s.strip() for s in export.split(",") if s.strip()], svc.namespace)
        for scope in scopes:
            registry.hosts[(scope, fqdn(svc.namespace, svc.name))] = \
                Entry(svc, _ports(svc.spec.get("ports")))
    for dr in registry.of("DestinationRule"):
        ns, name = service_name(dr.namespace, fqdn(dr.namespace, str(dr.spec.get("host", ""))))
        registry.subsets |= {(ns, name, str(s.get("name"))) for s in dicts(dr.spec.get("subsets"))}
    return registry

"""Ambient namespaces written in the Gateway API, read back into the DSL.

The inverse of ``meshdsl.compile.gateway_api``: before the classic import runs, the
objects of each ambient namespace (a Namespace labelled ``istio.io/dataplane-mode:
ambient``) are rewritten into the classic objects they compile from — routes into
VirtualServices (``gateway_routes``), version Services (``reviews-v1``) into the subsets
of the service's DestinationRule, an ingress ``Gateway`` of class ``istio`` into an Istio
Gateway — and what the compiler adds by itself (the waypoint Gateway, ReferenceGrants,
the ambient labels) is dropped. The caller then declares those namespaces
``mode="ambient"`` and verifies that the program renders the *original* objects; when it
does not, the import falls back to carrying them through ``mesh.raw``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from meshdsl.compile.gateway_api.workloads import (
    DATAPLANE_MODE,
    HBONE_PORT,
    INGRESS_USE_WAYPOINT,
    USE_WAYPOINT,
    WAYPOINT_FOR,
)
from meshdsl.importer.errors import ImporterWarning
from meshdsl.importer.gateway_routes import Versions, virtual_service
from meshdsl.importer.to_model import ImportResult
from meshdsl.importer.yamlsource import Document
from meshdsl.model.dataplane import DataPlane, NamespaceMode

Manifest = dict[str, Any]
_GROUP = "gateway.networking.k8s.io"
_ROUTES = ("HTTPRoute", "GRPCRoute", "TCPRoute")
_TLS = {"Terminate": "SIMPLE", "Passthrough": "PASSTHROUGH"}


@dataclass
class Ambient:
    """The rewritten documents and the data plane of the namespaces found ambient."""

    documents: list[Document]
    data_plane: DataPlane = field(default_factory=DataPlane)

    @property
    def found(self) -> bool:
        return bool(self.data_plane.namespaces)


def _group(m: Manifest) -> str:
    return str(m.get("apiVersion", "")).rpartition("/")[0]


def _labels(m: Manifest) -> dict[str, Any]:
    meta = m.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return labels if isinstance(labels, dict) else {}


def _ns(m: Manifest, default: str) -> str:
    return str(m.get("metadata", {}).get("namespace", default))


def _is_waypoint(m: Manifest, waypoint: str | None) -> bool:
    spec = m.get("spec", {})
    return (m["metadata"].get("name") == waypoint and _labels(m).get(WAYPOINT_FOR) == "service"
            and spec == {"gatewayClassName": "istio-waypoint", "listeners": [
                {"name": "mesh", "port": HBONE_PORT, "protocol": "HBONE"}]})


def _gateway(m: Manifest) -> Manifest | None:
    """An ingress Gateway of class ``istio`` as the Istio Gateway it compiles from."""
    spec = m.get("spec", {})
    if set(spec) != {"gatewayClassName", "listeners"} or spec["gatewayClassName"] != "istio":
        return None
    servers = []
    for lis in spec["listeners"]:
        if set(lis) - {"name", "hostname", "port", "protocol", "tls", "allowedRoutes"}:
            return None
        protocol = lis["protocol"]
        server: dict[str, Any] = {"port": {"number": lis["port"], "name": lis["name"],
                                           "protocol": "HTTPS" if protocol == "TLS"
                                           else protocol},
                                  "hosts": [lis.get("hostname", "*")]}
        tls = lis.get("tls")
        if tls is not None:
            if set(tls) - {"mode", "certificateRefs"} or tls.get("mode") not in _TLS:
                return None
            server["tls"] = {"mode": _TLS[tls["mode"]]}
            refs = tls.get("certificateRefs", [])
            if len(refs) > 1:
                return None
            if refs:
                server["tls"]["credentialName"] = refs[0]["name"]
        servers.append(server)
    meta = {k: v for k, v in m["metadata"].items() if k in ("name", "namespace", "labels")}
    return {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": meta,
            "spec": {"selector": {"istio": "ingressgateway"}, "servers": servers}}


def _policy_diff(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in own.items() if base.get(k) != v}


class _Rewrite:
    def __init__(self, documents: Sequence[Document], namespace: str) -> None:
        self.docs = list(documents)
        self.default = namespace
        self.modes: dict[str, NamespaceMode] = {}
        for doc in self.docs:
            m = doc.manifest
            if (m.get("kind"), _group(m)) == ("Namespace", "") and \
                    _labels(m).get(DATAPLANE_MODE) == "ambient":
                self.modes[m["metadata"]["name"]] = NamespaceMode(
                    mode="ambient", waypoint=_labels(m).get(USE_WAYPOINT))
        self.services = {(_ns(d.manifest, namespace), d.manifest["metadata"].get("name")): d
                         for d in self.docs if (d.manifest.get("kind"), _group(d.manifest))
                         == ("Service", "")}
        self.versions: Versions = {}
        for (ns, name), doc in self.services.items():
            selector = doc.manifest.get("spec", {}).get("selector", {})
            app = selector.get("app")
            version = selector.get("version")
            if ns in self.modes and isinstance(app, str) and isinstance(version, str) and \
                    name == f"{app}-{version}" and (ns, app) in self.services:
                self.versions[(ns, name)] = (app, version)

    def ambient(self, m: Manifest) -> bool:
        return _ns(m, self.default) in self.modes or (
            m.get("kind") == "Namespace" and m["metadata"].get("name") in self.modes)

    def rewrite(self, m: Manifest) -> Manifest | None:
        """The classic object, or None when the compiler adds it by itself."""
        kind, group, ns = m.get("kind"), _group(m), _ns(m, self.default)
        name = m["metadata"].get("name")
        if (kind, group) == ("Namespace", ""):
            out = copy.deepcopy(m)
            labels = _labels(out)
            for key in (DATAPLANE_MODE, USE_WAYPOINT):
                labels.pop(key, None)
            labels["istio-injection"] = "enabled"
            out["metadata"]["labels"] = labels
            return out
        if (kind, group) == ("Service", ""):
            if (ns, name) in self.versions:
                return None
            out = copy.deepcopy(m)
            _labels(out).pop(INGRESS_USE_WAYPOINT, None)
            if "labels" in out["metadata"] and not out["metadata"]["labels"]:
                out["metadata"].pop("labels")
            return out
        if group == _GROUP and kind == "Gateway":
            if _is_waypoint(m, self.modes[ns].waypoint):
                return None
            return _gateway(m) or m
        if group == _GROUP and kind == "ReferenceGrant":
            return None if str(name).startswith("from-") else m
        if group == _GROUP and kind in _ROUTES:
            return virtual_service(m, ns, self.versions) or m
        return m

    def destination_rules(self, docs: list[Document]) -> list[Document]:
        """Fold each version's DestinationRule into its service's, with one subset per
        version Service (HTTPRoute has no subsets; the classic rule keeps them)."""
        by_key = {(_ns(d.manifest, self.default), d.manifest["metadata"].get("name")): d
                  for d in docs if d.manifest.get("kind") == "DestinationRule"}
        by_service: dict[tuple[str, str], list[str]] = {}
        for (ns, _), (app, version) in self.versions.items():
            by_service.setdefault((ns, app), []).append(version)
        out = []
        folded = set()
        for (ns, app), versions in by_service.items():
            base_doc = by_key.get((ns, app))
            base: Manifest = copy.deepcopy(base_doc.manifest) if base_doc else {
                "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                "metadata": {"name": app, "namespace": ns}, "spec": {"host": app}}
            policy = base["spec"].get("trafficPolicy", {})
            subsets = []
            for version in versions:
                subset: dict[str, Any] = {"name": version, "labels": {"version": version}}
                own = by_key.get((ns, f"{app}-{version}"))
                if own is not None and own.manifest["spec"].get("host") == f"{app}-{version}":
                    folded.add(id(own))
                    diff = _policy_diff(policy, own.manifest["spec"].get("trafficPolicy", {}))
                    if diff:
                        subset["trafficPolicy"] = diff
                subsets.append(subset)
            base["spec"]["subsets"] = subsets
            if base_doc is not None:
                folded.add(id(base_doc))
            out.append(Document(base, *(base_doc.file, base_doc.line) if base_doc else
                                ("<ambient>", 0)))
        return [d for d in docs if id(d) not in folded] + out


def read_ambient(documents: Sequence[Document], namespace: str) -> Ambient:
    """The documents with every ambient namespace's objects in their classic form
    (unchanged when malformed: the classic import reports what is wrong, and where)."""
    try:
        return _read(documents, namespace)
    except (AttributeError, KeyError, TypeError, ValueError):
        return Ambient(list(documents))


def _read(documents: Sequence[Document], namespace: str) -> Ambient:
    run = _Rewrite(documents, namespace)
    if not run.modes:
        return Ambient(list(documents))
    out = []
    for doc in run.docs:
        m = doc.manifest
        if not isinstance(m, dict) or not isinstance(m.get("metadata"), dict) or \
                not run.ambient(m):
            out.append(doc)
            continue
        new = run.rewrite(m)
        if new is not None:
            out.append(Document(new, doc.file, doc.line, doc.lines if new is m else {}))
    return Ambient(run.destination_rules(out), DataPlane(namespaces=run.modes))


def policies_raw(result: ImportResult, data_plane: DataPlane) -> ImportResult:
    """Authorization in ambient namespaces carried through ``mesh.raw``: the DSL writes
    it with ``targetRefs`` and adds the waypoint-only policy, so a typed policy read from
    rendered output would not render back the same (one warning each)."""
    spec = result.spec
    moved = [ap for ap in spec.authorization_policies if data_plane.is_ambient(ap.namespace)]
    if not moved:
        return result
    keys = {(ap.namespace, ap.name) for ap in moved}
    found = [m for m in result.manifests if m.get("kind") == "AuthorizationPolicy"
             and (m["metadata"].get("namespace", result.namespace),
                  m["metadata"]["name"]) in keys]
    warnings = [ImporterWarning(f"AuthorizationPolicy {ap.namespace}/{ap.name}", "",
                                "authorization in an ambient namespace is not read back "
                                "into the DSL; carried through unchanged (mesh.raw)", ap.source)
                for ap in moved]
    spec = spec.model_copy(update={
        "authorization_policies": [ap for ap in spec.authorization_policies
                                   if (ap.namespace, ap.name) not in keys],
        "raw": [*spec.raw, *found]})
    notes = [f"AuthorizationPolicy {ap.namespace}/{ap.name}: ambient authorization"
             for ap in moved]
    return replace(result, spec=spec, warnings=(*result.warnings, *warnings),
                   notes=(*result.notes, *notes))

"""Ambient namespaces written in the Gateway API, read back into the DSL.

The inverse of ``meshdsl.compile.gateway_api``: before the classic import runs, the
objects of each ambient namespace (a Namespace labelled ``istio.io/dataplane-mode:
ambient``) are rewritten into the classic objects they compile from — routes into
VirtualServices (``gateway_routes``), version Services (``reviews-v1``) into the subsets
of the service's DestinationRule, an ingress ``Gateway`` of class ``istio`` into an Istio
Gateway (its https-redirect HTTPRoute into ``httpsRedirect`` on the server),
AuthorizationPolicies with ``targetRefs`` into selectors (``gateway_security``) — and what
the compiler adds by itself (the waypoint Gateway, ReferenceGrants, ``<waypoint>-only``,
the ambient labels) is dropped. What has no classic form is left as it is and named in
``Ambient.raw`` with the reason. The caller then declares those namespaces
``mode="ambient"`` and verifies, object by object, that the program renders the
*original* objects; an object it does not reproduce is carried through ``mesh.raw``.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshdsl.compile.defaults import without_defaults
from meshdsl.compile.gateway_api.workloads import (
    DATAPLANE_MODE,
    HBONE_PORT,
    INGRESS_USE_WAYPOINT,
    USE_WAYPOINT,
    WAYPOINT_FOR,
)
from meshdsl.importer.gateway_routes import Versions, virtual_service
from meshdsl.importer.gateway_security import classic_policy, is_waypoint_only
from meshdsl.importer.yamlsource import Document
from meshdsl.model.dataplane import DataPlane, NamespaceMode

Manifest = dict[str, Any]
_GROUP = "gateway.networking.k8s.io"
_ROUTES = ("HTTPRoute", "GRPCRoute", "TCPRoute")
_TLS = {"Terminate": "SIMPLE", "Passthrough": "PASSTHROUGH"}


@dataclass
class Ambient:
    """The rewritten documents, the data plane of the namespaces found ambient, and the
    documents left as they are (index in the input -> why): those must travel raw."""

    documents: list[Document]
    data_plane: DataPlane = field(default_factory=DataPlane)
    raw: dict[int, str] = field(default_factory=dict)

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


def _gateway(m: Manifest, redirects: Collection[str]) -> Manifest | str:
    """An ingress Gateway of class ``istio`` as the Istio Gateway it compiles from (the
    listeners named in ``redirects`` answer with the https redirect), or why not."""
    spec = m.get("spec", {})
    if set(spec) != {"gatewayClassName", "listeners"} or spec["gatewayClassName"] != "istio":
        return "only a Gateway of class istio with listeners has a DSL form"
    servers = []
    for lis in spec["listeners"]:
        extra = set(lis) - {"name", "hostname", "port", "protocol", "tls", "allowedRoutes"}
        if extra:
            return f"listener fields {', '.join(sorted(extra))} have no DSL form"
        protocol = lis["protocol"]
        server: dict[str, Any] = {"port": {"number": lis["port"], "name": lis["name"],
                                           "protocol": "HTTPS" if protocol == "TLS"
                                           else protocol},
                                  "hosts": [lis.get("hostname", "*")]}
        tls = lis.get("tls")
        if tls is not None:
            mode = tls.get("mode", "Terminate")  # the CRD's default (read from a cluster)
            if set(tls) - {"mode", "certificateRefs"} or mode not in _TLS:
                return "listener TLS other than Terminate or Passthrough has no DSL form"
            server["tls"] = {"mode": _TLS[mode]}
            refs = tls.get("certificateRefs", [])
            if len(refs) > 1:
                return "a listener with more than one certificate has no DSL form"
            if refs:
                server["tls"]["credentialName"] = refs[0]["name"]
        elif lis["name"] in redirects and protocol == "HTTP":
            server["tls"] = {"httpsRedirect": True}
        servers.append(server)
    meta = {k: v for k, v in m["metadata"].items() if k in ("name", "namespace", "labels")}
    return {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": meta,
            "spec": {"selector": {"istio": "ingressgateway"}, "servers": servers}}


def _redirected(route: Manifest) -> tuple[str, list[str]] | None:
    """(gateway, listeners) when ``route`` is the https redirect the compiler writes for
    ``gateway.http(..., https_redirect=True)``: ``<gateway>-https-redirect``, 301 to https
    on those listeners."""
    spec = route.get("spec")
    name = str(route["metadata"].get("name", ""))
    if route.get("kind") != "HTTPRoute" or not isinstance(spec, dict) or \
            not name.endswith("-https-redirect"):
        return None
    gateway = name.removesuffix("-https-redirect")
    parents = spec.get("parentRefs")
    listeners = [ref.get("sectionName") for ref in parents or [] if isinstance(ref, dict)]
    expected = {"parentRefs": [{"group": _GROUP, "kind": "Gateway", "name": gateway,
                                "sectionName": n} for n in listeners],
                "rules": [{"filters": [{"type": "RequestRedirect", "requestRedirect": {
                    "scheme": "https", "statusCode": 301}}]}]}
    if not listeners or without_defaults({**route, "spec": spec})["spec"] != \
            without_defaults({**route, "spec": expected})["spec"]:
        return None
    return gateway, [str(n) for n in listeners]


def _policy_diff(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in own.items() if base.get(k) != v}


class _Rewrite:
    def __init__(self, documents: Sequence[Document], namespace: str,
                 raw: Mapping[int, str]) -> None:
        self.docs = list(documents)
        self.default = namespace
        self.raw = dict(raw)
        self.modes: dict[str, NamespaceMode] = {}
        for doc in self.docs:
            m = doc.manifest
            if (m.get("kind"), _group(m)) == ("Namespace", "") and \
                    _labels(m).get(DATAPLANE_MODE) == "ambient":
                self.modes[m["metadata"]["name"]] = NamespaceMode(
                    mode="ambient", waypoint=_labels(m).get(USE_WAYPOINT))
        kept = [(i, d.manifest) for i, d in enumerate(self.docs) if i not in self.raw]
        self.services = {(_ns(m, namespace), m["metadata"].get("name")): m
                         for _, m in kept if (m.get("kind"), _group(m)) == ("Service", "")}
        self.versions: Versions = {}
        for (ns, name), m in self.services.items():
            selector = m.get("spec", {}).get("selector", {})
            app = selector.get("app")
            version = selector.get("version")
            if ns in self.modes and isinstance(app, str) and isinstance(version, str) and \
                    name == f"{app}-{version}" and (ns, app) in self.services:
                self.versions[(ns, name)] = (app, version)
        redirects = {(_ns(m, namespace), found[0]): (i, found[1]) for i, m in kept
                     if (found := _redirected(m)) is not None}
        self.gateways: dict[tuple[str, str], Manifest | str] = {}  # ingress, or why not
        for i, doc in enumerate(self.docs):
            m = doc.manifest
            key = (_ns(m, namespace), m["metadata"].get("name"))
            if (m.get("kind"), _group(m)) == ("Gateway", _GROUP) and key[0] in self.modes \
                    and not _is_waypoint(m, self.modes[key[0]].waypoint):
                self.gateways[key] = "carried raw" if i in self.raw else _gateway(
                    m, redirects.get(key, (0, []))[1])
        self.redirects = {i: key for key, (i, _) in redirects.items() if key in self.gateways}

    def ambient(self, m: Manifest) -> bool:
        return _ns(m, self.default) in self.modes or (
            m.get("kind") == "Namespace" and m["metadata"].get("name") in self.modes)

    def rewrite(self, index: int, m: Manifest) -> Manifest | None:
        """The classic object, or None when the compiler adds it by itself; what has no
        classic form is recorded in ``raw`` with the reason, and returned as it is."""
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
            return self._classic(index, m, self.gateways[(ns, name)])
        if group == _GROUP and kind == "ReferenceGrant":
            if str(name).startswith("from-"):
                return None
            return self._classic(index, m, "only the ReferenceGrants the compiler writes "
                                 "(from-<namespace>) have a DSL form")
        if index in self.redirects:
            gw_ns, gw_name = self.redirects[index]
            return None if isinstance(self.gateways[(gw_ns, gw_name)], dict) else self._classic(
                index, m, f"the https redirect of Gateway {gw_ns}/{gw_name}, which is carried "
                "raw")
        if group == _GROUP and kind in _ROUTES:
            route, why = virtual_service(m, ns, self.versions)
            return self._classic(index, m, route if route is not None else why)
        if (kind, group) == ("AuthorizationPolicy", "security.istio.io"):
            waypoint = self.modes[ns].waypoint
            if is_waypoint_only(m, ns, waypoint):
                return None
            gateways = {n: isinstance(g, dict) for (g_ns, n), g in self.gateways.items()
                        if g_ns == ns}
            return self._classic(index, m, classic_policy(m, waypoint=waypoint,
                                                          gateways=gateways))
        return m

    def _classic(self, index: int, m: Manifest, found: Manifest | str) -> Manifest:
        if isinstance(found, str):
            self.raw[index] = found
            return m
        return found

    def destination_rules(self, docs: list[Document]) -> list[Document]:
        """Fold each version's DestinationRule into its service's, with one subset per
        version Service (HTTPRoute has no subsets; the classic rule keeps them)."""
        raw = {id(self.docs[i]) for i in self.raw}
        by_key = {(_ns(d.manifest, self.default), d.manifest["metadata"].get("name")): d
                  for d in docs if d.manifest.get("kind") == "DestinationRule"
                  and id(d) not in raw}
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


def read_ambient(documents: Sequence[Document], namespace: str,
                 raw: Mapping[int, str] | None = None) -> Ambient:
    """The documents with every ambient namespace's objects in their classic form
    (unchanged when malformed: the classic import reports what is wrong, and where).

    ``raw`` (index of a document -> why) names documents to leave as they are; the
    result's ``raw`` adds those that have no classic form."""
    try:
        return _read(documents, namespace, raw or {})
    except (AttributeError, KeyError, TypeError, ValueError):
        return Ambient(list(documents))


def _read(documents: Sequence[Document], namespace: str, raw: Mapping[int, str]) -> Ambient:
    run = _Rewrite(documents, namespace, raw)
    if not run.modes:
        return Ambient(list(documents))
    out = []
    for i, doc in enumerate(run.docs):
        m = doc.manifest
        if i in run.raw or not isinstance(m, dict) or \
                not isinstance(m.get("metadata"), dict) or not run.ambient(m):
            out.append(doc)
            continue
        new = run.rewrite(i, m)
        if i in run.raw or new is m:
            out.append(doc)
        elif new is not None:
            out.append(Document(new, doc.file, doc.line))
    return Ambient(run.destination_rules(out), DataPlane(namespaces=run.modes), run.raw)

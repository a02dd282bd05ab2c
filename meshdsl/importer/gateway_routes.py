"""Gateway API routes read back as the classic routes they compile from.

The inverse of ``meshdsl.compile.gateway_api.routes``/``matches``/``filters``: an
HTTPRoute, GRPCRoute or TCPRoute becomes the Istio-shaped VirtualService that, in an
ambient namespace, compiles to it. A backendRef to a version Service (``reviews-v1``)
becomes a destination with a subset; ``hostnames`` beside Service parents become hosts that
name no Service (what the compiler writes them from). Anything this does not know gives
the reason instead: the route then travels through ``mesh.raw`` unchanged, with a warning
saying why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Manifest = dict[str, Any]
Versions = dict[tuple[str, str], tuple[str, str]]  # (ns, version Service) -> (service, v)
_GROUP = "gateway.networking.k8s.io"
_ANCHORED = re.compile(r"^\^((?:\\.|[^\\.*+?()\[\]{}|^$])*)\.\*$")


class _Unknown(Exception):
    """A part of the route the DSL has no form for (the message says which)."""


def _only(value: Any, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Unknown(f"{value!r} where a mapping was expected")
    extra = sorted(set(value) - keys)
    if extra:
        raise _Unknown(f"{', '.join(extra)} {'has' if len(extra) == 1 else 'have'} no DSL form")
    return value


def _host(name: str, namespace: str, route_ns: str) -> str:
    return name if namespace == route_ns else f"{name}.{namespace}.svc.cluster.local"


def _string_match(kind: str, value: Any) -> dict[str, str]:
    if not isinstance(value, str):
        raise _Unknown(f"a {kind} match on {value!r}, not a string")
    if kind == "Exact":
        return {"exact": value}
    if kind == "PathPrefix":
        return {"prefix": value}
    if kind == "RegularExpression":
        found = _ANCHORED.match(value)
        if found is not None:
            return {"prefix": re.sub(r"\\(.)", r"\1", found.group(1))}
        return {"regex": value}
    raise _Unknown(f"a match of type {kind} has no DSL form")


def _named(items: Any) -> dict[str, dict[str, str]]:
    out = {}
    for item in items if isinstance(items, list) else []:
        item = _only(item, {"name", "type", "value"})
        kind = item.get("type", "Exact")
        if kind == "PathPrefix":
            raise _Unknown("a PathPrefix header or query match has no DSL form")
        out[item["name"]] = _string_match(kind, item.get("value"))
    return out


def _http_match(match: Any, grpc: bool) -> dict[str, Any]:
    match = _only(match, {"headers", "method"} if grpc else
                  {"path", "headers", "queryParams", "method"})
    out: dict[str, Any] = {}
    if grpc and "method" in match:
        method = _only(match["method"], {"service", "method"})
        if "method" in method:
            out["uri"] = {"exact": f"/{method['service']}/{method['method']}"}
        else:
            out["uri"] = {"prefix": f"/{method['service']}/"}
    elif "method" in match:
        out["method"] = {"exact": match["method"]}
    if "path" in match:
        path = _only(match["path"], {"type", "value"})
        out["uri"] = _string_match(path.get("type", "PathPrefix"), path.get("value"))
    if "headers" in match:
        out["headers"] = _named(match["headers"])
    if "queryParams" in match:
        out["queryParams"] = _named(match["queryParams"])
    return out


class _Routes:
    def __init__(self, namespace: str, versions: Versions) -> None:
        self.namespace, self.versions = namespace, versions

    def destination(self, ref: Any) -> dict[str, Any]:
        ref = _only(ref, {"group", "kind", "name", "namespace", "port", "weight"})
        if ref.get("group", "") != "" or ref.get("kind", "Service") != "Service":
            raise _Unknown(f"a backend of kind {ref.get('kind')} (not a Service) has no DSL "
                           "form")
        ns = ref.get("namespace", self.namespace)
        name, subset = self.versions.get((ns, ref["name"]), (ref["name"], None))
        out: dict[str, Any] = {"host": _host(name, ns, self.namespace)}
        if subset is not None:
            out["subset"] = subset
        if "port" in ref:
            out["port"] = {"number": ref["port"]}
        return out

    def weighted(self, ref: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"destination": self.destination(
            {k: v for k, v in _only(ref, {"group", "kind", "name", "namespace", "port",
                                         "weight"}).items() if k != "weight"})}
        if "weight" in ref:
            out["weight"] = ref["weight"]
        return out

    def filters(self, items: Any, out: dict[str, Any]) -> None:
        headers: dict[str, Any] = {}
        for item in items:
            kind = _only(item, {"type", "requestHeaderModifier", "responseHeaderModifier",
                                "requestMirror", "urlRewrite", "requestRedirect"})["type"]
            if kind in ("RequestHeaderModifier", "ResponseHeaderModifier"):
                ops = _only(item[kind[0].lower() + kind[1:]], {"set", "add", "remove"})
                side: dict[str, Any] = {k: {e["name"]: e["value"] for e in ops[k]}
                                        for k in ("set", "add") if k in ops}
                if "remove" in ops:
                    side["remove"] = list(ops["remove"])
                headers["request" if kind.startswith("Request") else "response"] = side
            elif kind == "RequestMirror":
                mirror = _only(item["requestMirror"], {"backendRef", "percent", "fraction"})
                out["mirror"] = self.destination(mirror["backendRef"])
                if "percent" in mirror:
                    out["mirrorPercentage"] = {"value": mirror["percent"]}
                elif "fraction" in mirror:
                    frac = _only(mirror["fraction"], {"numerator", "denominator"})
                    if frac.get("denominator") != 10000:
                        raise _Unknown("a mirror fraction of other than 10000ths has no DSL "
                                       "form")
                    out["mirrorPercentage"] = {"value": frac["numerator"] / 100}
            elif kind == "URLRewrite":
                rewrite = _only(item["urlRewrite"], {"hostname", "path"})
                out["rewrite"] = {}
                if "hostname" in rewrite:
                    out["rewrite"]["authority"] = rewrite["hostname"]
                if "path" in rewrite:
                    path = rewrite["path"]
                    out["rewrite"]["uri"] = path.get("replacePrefixMatch",
                                                     path.get("replaceFullPath"))
            elif kind == "RequestRedirect":
                red = _only(item["requestRedirect"], {"scheme", "hostname", "path", "port",
                                                      "statusCode"})
                redirect: dict[str, Any] = {k2: red[k1] for k1, k2 in (
                    ("scheme", "scheme"), ("hostname", "authority"), ("port", "port"),
                    ("statusCode", "redirectCode")) if k1 in red}
                if "path" in red:
                    redirect["uri"] = _only(red["path"], {"type", "replaceFullPath"})[
                        "replaceFullPath"]
                out["redirect"] = redirect
            else:
                raise _Unknown(f"the filter {kind} has no DSL form")
        if headers:
            out["headers"] = headers

    def http_rule(self, rule: Any, grpc: bool) -> dict[str, Any]:
        rule = _only(rule, {"name", "matches", "filters", "backendRefs", "timeouts", "retry"})
        out: dict[str, Any] = {}
        if "name" in rule:
            out["name"] = rule["name"]
        if "matches" in rule:
            out["match"] = [_http_match(m, grpc) for m in rule["matches"]]
        self.filters(rule.get("filters", []), out)
        if "backendRefs" in rule:
            out["route"] = [self.weighted(r) for r in rule["backendRefs"]]
        timeouts = _only(rule.get("timeouts", {}), {"request", "backendRequest"})
        if "request" in timeouts:
            out["timeout"] = timeouts["request"]
        if "retry" in rule:
            retry = _only(rule["retry"], {"attempts", "codes"})
            retries: dict[str, Any] = {"attempts": retry["attempts"]}
            if "backendRequest" in timeouts:
                retries["perTryTimeout"] = timeouts["backendRequest"]
            if retry.get("codes"):
                retries["retryOn"] = ",".join(str(c) for c in retry["codes"])
            out["retries"] = retries
        elif "backendRequest" in timeouts:
            raise _Unknown("a backendRequest timeout without retry has no DSL form")
        return out

    def parents(self, spec: dict[str, Any]) -> tuple[list[str], list[str], list[int]]:
        hosts: list[str] = []
        gateways: list[str] = []
        ports: list[int] = []
        for ref in spec.get("parentRefs", []):
            ref = _only(ref, {"group", "kind", "name", "namespace", "port", "sectionName"})
            ns = ref.get("namespace", self.namespace)
            if (ref.get("group"), ref.get("kind")) == ("", "Service"):
                host = _host(ref["name"], ns, self.namespace)
                hosts += [] if host in hosts else [host]
                ports += [ref["port"]] if "port" in ref and ref["port"] not in ports else []
            elif (ref.get("group", _GROUP), ref.get("kind", "Gateway")) == (_GROUP, "Gateway") \
                    and "sectionName" not in ref and "port" not in ref:
                gateways.append(ref["name"] if ns == self.namespace else f"{ns}/{ref['name']}")
            elif "sectionName" in ref or "port" in ref:
                raise _Unknown("a parentRef to a Gateway's listener or port has no DSL form")
            else:
                raise _Unknown(f"a parentRef to a {ref.get('kind')} has no DSL form")
        if gateways and hosts:
            gateways.insert(0, "mesh")
        return hosts, gateways, ports


def _outside(host: Any) -> bool:
    """A host that names no Service (``shop.example.com``, not ``reviews`` or
    ``reviews.shop``): see ``MeshSpec.resolve_host``."""
    parts = host.split(".") if isinstance(host, str) else []
    return len(parts) >= 3 and parts[2] != "svc"


def _virtual_service(route: Manifest, spec: dict[str, Any]) -> Manifest:
    meta = {k: v for k, v in route["metadata"].items() if k in ("name", "namespace", "labels")}
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": meta, "spec": spec}


def _http(route: Manifest, conv: _Routes) -> Manifest:
    spec = _only(route.get("spec"), {"parentRefs", "hostnames", "rules"})
    hosts, gateways, ports = conv.parents(spec)
    if ports:
        raise _Unknown("a Service parent with a port has no DSL form for HTTP routes")
    names = spec.get("hostnames") or []
    if gateways and not hosts:
        hosts = list(names or ["*"])
    else:
        for name in names:
            if not _outside(name) or name in hosts:
                raise _Unknown(f"the hostname {name!r} beside Service parents would name a "
                               "Service: only names outside the mesh have a DSL form there")
            hosts.append(name)
    grpc = route["kind"] == "GRPCRoute"
    out: dict[str, Any] = {"hosts": hosts}
    if gateways:
        out["gateways"] = gateways
    out["http"] = [conv.http_rule(r, grpc) for r in spec.get("rules", [])]
    return _virtual_service(route, out)


def _tcp(route: Manifest, conv: _Routes) -> Manifest:
    spec = _only(route.get("spec"), {"parentRefs", "rules"})
    hosts, gateways, ports = conv.parents(spec)
    rules = spec.get("rules", [])
    if len(rules) != 1:
        raise _Unknown(f"a TCPRoute with {len(rules)} rules has no DSL form (one VirtualService "
                       "tcp route is one TCPRoute)")
    rule = _only(rules[0], {"backendRefs"})
    tcp: dict[str, Any] = {}
    if ports:
        tcp["match"] = [{"port": p} for p in ports]
    tcp["route"] = [conv.weighted(r) for r in rule.get("backendRefs", [])]
    out: dict[str, Any] = {"hosts": hosts or ["*"]}
    if gateways:
        out["gateways"] = gateways
    out["tcp"] = [tcp]
    return _virtual_service(route, out)


_KINDS: dict[str, Callable[[Manifest, _Routes], Manifest]] = {
    "HTTPRoute": _http, "GRPCRoute": _http, "TCPRoute": _tcp}


def virtual_service(route: Manifest, namespace: str, versions: Versions
                    ) -> tuple[Manifest | None, str]:
    """The VirtualService ``route`` compiles from in an ambient namespace, or None and
    why the route has no DSL form."""
    convert = _KINDS.get(route.get("kind", ""))
    if convert is None:
        return None, f"a {route.get('kind')} has no DSL form"
    try:
        return convert(route, _Routes(namespace, versions)), ""
    except _Unknown as e:
        return None, str(e)
    except (KeyError, TypeError, AttributeError):
        return None, "a field in a form the DSL does not read"

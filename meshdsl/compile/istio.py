"""Istio resources from the model: VirtualService, DestinationRule, Gateway,
PeerAuthentication, AuthorizationPolicy and the EnvoyFilter form of a local rate limit.

Output uses ``networking.istio.io/v1`` and ``security.istio.io/v1`` (EnvoyFilter exists
only as ``v1alpha3``). Unset fields are left out, so the YAML reads like hand-written Istio.
"""

from __future__ import annotations

from typing import Any

from meshdsl.compile.manifest import Manifest
from meshdsl.model.base import clean, dump
from meshdsl.model.gateway import Gateway
from meshdsl.model.policy import DestinationRule
from meshdsl.model.ratelimit import LocalRateLimit
from meshdsl.model.routing import Destination, HttpRoute, TcpRoute, VirtualService
from meshdsl.model.security import AuthorizationPolicy, PeerAuthentication, Rule
from meshdsl.model.spec import MeshSpec
from meshdsl.model.telemetry import Telemetry

NETWORKING = "networking.istio.io/v1"
SECURITY = "security.istio.io/v1"
ENVOYFILTER = "networking.istio.io/v1alpha3"


def _object(api: str, kind: str, name: str, namespace: str, labels: dict[str, str],
            spec: dict[str, Any]) -> Manifest:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}


def destination(dest: Destination) -> dict[str, Any]:
    out: dict[str, Any] = {"host": dest.host}
    if dest.subset is not None:
        out["subset"] = dest.subset
    if dest.port is not None:
        out["port"] = {"number": dest.port}
    return out


def _weighted(dest: Destination) -> dict[str, Any]:
    out: dict[str, Any] = {"destination": destination(dest)}
    if dest.weight is not None:
        out["weight"] = dest.weight
    return out


def _percent(value: float | None) -> dict[str, float] | None:
    return None if value is None else {"value": value}


def http_route(route: HttpRoute) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if route.name:
        out["name"] = route.name
    if route.match:
        out["match"] = [dump(m) for m in route.match]
    if route.to:
        out["route"] = [_weighted(d) for d in route.to]
    if route.redirect is not None:
        out["redirect"] = dump(route.redirect)
    if route.rewrite is not None:
        out["rewrite"] = dump(route.rewrite)
    if route.timeout is not None:
        out["timeout"] = route.timeout
    if route.retries is not None:
        out["retries"] = dump(route.retries)
    if route.fault is not None:
        fault: dict[str, Any] = {}
        if route.fault.delay is not None:
            fault["delay"] = {"fixedDelay": route.fault.delay.fixed,
                              "percentage": _percent(route.fault.delay.percent)}
        if route.fault.abort is not None:
            fault["abort"] = {"httpStatus": route.fault.abort.status,
                              "percentage": _percent(route.fault.abort.percent)}
        out["fault"] = clean(fault)
    if route.mirror is not None:
        out["mirror"] = destination(route.mirror)
        if route.mirror_percent is not None:
            out["mirrorPercentage"] = {"value": route.mirror_percent}
    if route.headers is not None:
        out["headers"] = dump(route.headers)
    if route.cors is not None:
        cors = dump(route.cors)
        if "allowOrigins" in cors:
            cors["allowOrigins"] = [dump(o) for o in route.cors.allow_origins]
        out["corsPolicy"] = cors
    return out


def tcp_route(route: TcpRoute) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if route.match:
        out["match"] = [dump(m) for m in route.match]
    out["route"] = [_weighted(d) for d in route.to]
    return out


def virtual_service(vs: VirtualService, labels: dict[str, str]) -> Manifest:
    spec: dict[str, Any] = {"hosts": list(vs.hosts)}
    if vs.gateways:
        spec["gateways"] = list(vs.gateways)
    if vs.export_to:
        spec["exportTo"] = list(vs.export_to)
    if vs.http:
        spec["http"] = [http_route(r) for r in vs.http]
    if vs.tcp:
        spec["tcp"] = [tcp_route(r) for r in vs.tcp]
    return _object(NETWORKING, "VirtualService", vs.name, vs.namespace, labels, spec)


def destination_rule(dr: DestinationRule, labels: dict[str, str]) -> Manifest:
    spec: dict[str, Any] = {"host": dr.host}
    if dr.traffic_policy is not None and not dr.traffic_policy.is_empty():
        spec["trafficPolicy"] = dump(dr.traffic_policy)
    if dr.subsets:
        spec["subsets"] = [dump(s) for s in dr.subsets]
    if dr.export_to:
        spec["exportTo"] = list(dr.export_to)
    return _object(NETWORKING, "DestinationRule", dr.name, dr.namespace, labels, spec)


def gateway(gw: Gateway, labels: dict[str, str]) -> Manifest:
    spec = {"selector": dict(gw.selector), "servers": [dump(s) for s in gw.servers]}
    return _object(NETWORKING, "Gateway", gw.name, gw.namespace, labels, spec)


def peer_authentication(pa: PeerAuthentication, labels: dict[str, str]) -> Manifest:
    spec: dict[str, Any] = {}
    if pa.selector:
        spec["selector"] = {"matchLabels": dict(pa.selector)}
    if pa.mode is not None:
        spec["mtls"] = {"mode": pa.mode}
    if pa.port_level_mtls:
        spec["portLevelMtls"] = {str(port): {"mode": mode}
                                 for port, mode in sorted(pa.port_level_mtls.items())}
    return _object(SECURITY, "PeerAuthentication", pa.name, pa.namespace, labels, spec)


_SERVICES = frozenset({"services"})  # named callers become principals instead


def _rule(rule: Rule, mesh: MeshSpec, namespace: str) -> dict[str, Any]:
    sources = []
    for frm in rule.from_:
        source = dump(frm, exclude=_SERVICES)
        derived = []
        for ref in frm.services:
            ns = ref.namespace or namespace
            svc = mesh.service(ns, ref.name)
            account = svc.account if svc is not None else ref.name
            derived.append(f"{mesh.trust_domain}/ns/{ns}/sa/{account}")
        if derived:
            source["principals"] = list(dict.fromkeys([*derived, *source.get("principals", [])]))
        sources.append({"source": source})
    out: dict[str, Any] = {}
    if sources:
        out["from"] = sources
    if rule.to:
        out["to"] = [{"operation": {k: [str(x) for x in v] for k, v in dump(op).items()}}
                     for op in rule.to]
    if rule.when:
        out["when"] = [dump(w) for w in rule.when]
    return out


def authorization_policy(ap: AuthorizationPolicy, mesh: MeshSpec,
                         labels: dict[str, str]) -> Manifest:
    spec: dict[str, Any] = {}
    if ap.selector:
        spec["selector"] = {"matchLabels": dict(ap.selector)}
    if ap.action is not None:
        spec["action"] = ap.action
    if ap.provider is not None:
        spec["provider"] = {"name": ap.provider}
    if ap.rules:  # an ALLOW policy without rules (an empty spec) allows nothing
        spec["rules"] = [_rule(r, mesh, ap.namespace) for r in ap.rules]
    return _object(SECURITY, "AuthorizationPolicy", ap.name, ap.namespace, labels, spec)


def _runtime_percent(key: str, percent: int) -> dict[str, Any]:
    return {"runtime_key": key,
            "default_value": {"numerator": percent, "denominator": "HUNDRED"}}


def local_rate_limit(rl: LocalRateLimit, labels: dict[str, str]) -> Manifest:
    value = {
        "stat_prefix": rl.stat_prefix,
        "token_bucket": {"max_tokens": rl.max_tokens, "tokens_per_fill": rl.tokens_per_fill,
                         "fill_interval": rl.fill_interval},
        "filter_enabled": _runtime_percent("local_rate_limit_enabled", rl.enabled_percent),
        "filter_enforced": _runtime_percent("local_rate_limit_enforced", rl.enforced_percent),
    }
    spec = {
        "workloadSelector": {"labels": dict(rl.selector)},
        "configPatches": [{
            "applyTo": "HTTP_FILTER",
            "match": {"context": "SIDECAR_INBOUND", "listener": {"filterChain": {"filter": {
                "name": "envoy.filters.network.http_connection_manager",
                "subFilter": {"name": "envoy.filters.http.router"}}}}},
            "patch": {"operation": "INSERT_BEFORE", "value": {
                "name": "envoy.filters.http.local_ratelimit",
                "typedConfig": {
                    "@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
                    "typeUrl": "type.googleapis.com/envoy.extensions.filters.http."
                               "local_ratelimit.v3.LocalRateLimit",
                    "value": value}}},
        }],
    }
    return _object(ENVOYFILTER, "EnvoyFilter", rl.name, rl.namespace, labels, spec)


TELEMETRY = "telemetry.istio.io/v1"


def telemetry(t: Telemetry, labels: dict[str, str]) -> Manifest:
    """``telemetry.istio.io/v1`` Telemetry: one tracing and one access-logging entry."""
    spec: dict[str, Any] = {}
    if t.selector:
        spec["selector"] = {"matchLabels": dict(t.selector)}
    if t.tracing is not None:
        spec["tracing"] = [{"providers": [{"name": t.tracing.provider}],
                            "randomSamplingPercentage": float(t.tracing.sampling),
                            "disableSpanReporting": t.tracing.disable_span_reporting}]
    if t.access_logging is not None:
        spec["accessLogging"] = [{"providers": [{"name": t.access_logging.provider}],
                                  "disabled": t.access_logging.disabled}]
    return _object(TELEMETRY, "Telemetry", t.name, t.namespace, labels, spec)

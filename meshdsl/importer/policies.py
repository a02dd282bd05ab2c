"""DestinationRule, Gateway, PeerAuthentication, AuthorizationPolicy and the rate-limit
EnvoyFilter → their typed forms.

Most of these have the model's own shape (its fields carry Istio's camelCase aliases), so
they are fitted directly; only selectors, ``mtls.mode``/``portLevelMtls`` and the
``from[].source``/``to[].operation`` wrappers are unwrapped by hand. The EnvoyFilter is
only recognised in the exact form ``svc.rate_limit(...)`` compiles to: other filters are
Envoy configuration the DSL does not model.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from meshdsl.importer.fields import NOT_EXPRESSIBLE, Problem, build, pick
from meshdsl.importer.manifests import Resource
from meshdsl.importer.yamlsource import YamlPath
from meshdsl.model.gateway import Gateway, Server
from meshdsl.model.policy import DestinationRule, Subset, TrafficPolicy
from meshdsl.model.ratelimit import LocalRateLimit
from meshdsl.model.security import AuthorizationPolicy, From, PeerAuthentication, Rule, To, When


def _only(res: Resource, keys: tuple[str, ...], problems: list[Problem]) -> dict[str, Any]:
    spec = res.spec
    problems += [(("spec", k), NOT_EXPRESSIBLE) for k in spec if k not in keys]
    return spec


def destination_rule(res: Resource, problems: list[Problem]) -> DestinationRule | None:
    spec = _only(res, ("host", "trafficPolicy", "subsets", "exportTo"), problems)
    host = res.string(spec.get("host"), ("spec", "host"))
    policy = None
    if "trafficPolicy" in spec:
        policy = build(res, TrafficPolicy, spec["trafficPolicy"], ("spec", "trafficPolicy"),
                       problems)
    subsets = [build(res, Subset, s, ("spec", "subsets", i), problems)
               for i, s in enumerate(res.listing(spec.get("subsets"), ("spec", "subsets")))]
    export_to = [res.string(v, ("spec", "exportTo", i))
                 for i, v in enumerate(res.listing(spec.get("exportTo"), ("spec", "exportTo")))]
    if export_to:
        problems.append((("spec", "exportTo"), "not expressible with the DSL's builders"))
    return DestinationRule(name=res.name, namespace=res.namespace, host=host,
                           traffic_policy=policy, subsets=[s for s in subsets if s is not None],
                           export_to=export_to, source=res.where())


def gateway(res: Resource, problems: list[Problem]) -> Gateway | None:
    spec = _only(res, ("selector", "servers"), problems)
    servers = [build(res, Server, s, ("spec", "servers", i), problems)
               for i, s in enumerate(res.listing(spec.get("servers"), ("spec", "servers")))]
    for i, server in enumerate(servers):
        if server is not None and server.name is not None:
            problems.append((("spec", "servers", i, "name"),
                             "server names are not expressible with the DSL's builders"))
    data: dict[str, Any] = {"name": res.name, "namespace": res.namespace,
                            "servers": [s for s in servers if s is not None]}
    if "selector" in spec:
        data["selector"] = spec["selector"]
        if spec["selector"] == {}:
            problems.append((("spec", "selector"), "an empty selector is not expressible "
                             "with the DSL's builders"))
    gw = build(res, Gateway, data, ("spec",), problems, fitted=True)
    return None if gw is None else gw.model_copy(update={"source": res.where()})


def _selector(res: Resource, value: Any, path: YamlPath, problems: list[Problem]) -> Any:
    data, _ = pick(res, value, path, {"matchLabels": "labels"}, problems)
    return data.get("labels", {})


def peer_authentication(res: Resource, problems: list[Problem]) -> PeerAuthentication | None:
    spec = _only(res, ("selector", "mtls", "portLevelMtls"), problems)
    data: dict[str, Any] = {"name": res.name, "namespace": res.namespace}
    locs: dict[str, YamlPath] = {"selector": ("spec", "selector", "matchLabels"),
                                 "mode": ("spec", "mtls", "mode"),
                                 "port_level_mtls": ("spec", "portLevelMtls")}
    if "selector" in spec:
        data["selector"] = _selector(res, spec["selector"], ("spec", "selector"), problems)
    if "mtls" in spec:
        data.update(pick(res, spec["mtls"], ("spec", "mtls"), {"mode": "mode"}, problems)[0])
    ports: dict[int, Any] = {}
    for key, value in res.mapping(spec.get("portLevelMtls"), ("spec", "portLevelMtls")).items():
        here = ("spec", "portLevelMtls", key)
        if not key.isdigit():
            raise res.error(here, "port-level mTLS is keyed by port number")
        mode = pick(res, value, here, {"mode": "mode"}, problems)[0]
        if "mode" not in mode:
            problems.append((here, "a port without a mode is not expressible in the DSL"))
            continue
        ports[int(key)] = mode["mode"]
    data["port_level_mtls"] = ports
    pa = build(res, PeerAuthentication, data, ("spec",), problems, locs=locs, fitted=True)
    return None if pa is None else pa.model_copy(update={"source": res.where()})


def _rule(res: Resource, value: Any, path: YamlPath, problems: list[Problem]) -> Rule | None:
    parts, _ = pick(res, value, path, {"from": "from", "to": "to", "when": "when"}, problems)
    out: dict[str, list[Any]] = {"from": [], "to": [], "when": []}
    for key, wrapper, cls in (("from", "source", From), ("to", "operation", To),
                              ("when", None, When)):
        for i, item in enumerate(res.listing(parts.get(key), (*path, key))):
            here: YamlPath = (*path, key, i)
            if wrapper is not None:
                inner, _ = pick(res, item, here, {wrapper: wrapper}, problems)
                item, here = inner.get(wrapper, {}), (*here, wrapper)
            model = build(res, cls, item, here, problems)
            if model is None:
                return None
            out[key].append(model)
    return Rule.model_validate(out)


def authorization_policy(res: Resource, problems: list[Problem]
                         ) -> AuthorizationPolicy | None:
    spec = _only(res, ("selector", "action", "provider", "rules"), problems)
    data: dict[str, Any] = {"name": res.name, "namespace": res.namespace}
    locs: dict[str, YamlPath] = {"selector": ("spec", "selector", "matchLabels"),
                                 "action": ("spec", "action"),
                                 "provider": ("spec", "provider", "name")}
    if "selector" in spec:
        data["selector"] = _selector(res, spec["selector"], ("spec", "selector"), problems)
    if "action" in spec:
        data["action"] = spec["action"]
    if "provider" in spec:
        data.update(pick(res, spec["provider"], ("spec", "provider"), {"name": "provider"},
                         problems)[0])
        problems.append((("spec", "provider"), "not expressible with the DSL's builders"))
    rules = [_rule(res, r, ("spec", "rules", i), problems)
             for i, r in enumerate(res.listing(spec.get("rules"), ("spec", "rules")))]
    data["rules"] = [r for r in rules if r is not None]
    ap = build(res, AuthorizationPolicy, data, ("spec",), problems, locs=locs, fitted=True)
    return None if ap is None else ap.model_copy(update={"source": res.where()})


_MISSING = object()


def _dig(value: Any, *keys: str | int) -> Any:
    for key in keys:
        if isinstance(key, int):
            if not isinstance(value, list) or len(value) <= key:
                return _MISSING
        elif not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def rate_limit(res: Resource, problems: list[Problem]) -> LocalRateLimit | None:
    """The typed form of an EnvoyFilter that is a local rate limit, else None."""
    spec = res.spec
    patches = _dig(spec, "configPatches")
    value = _dig(patches, 0, "patch", "value", "typedConfig", "value")
    fields = {
        "selector": _dig(spec, "workloadSelector", "labels"),
        "stat_prefix": _dig(value, "stat_prefix"),
        "max_tokens": _dig(value, "token_bucket", "max_tokens"),
        "tokens_per_fill": _dig(value, "token_bucket", "tokens_per_fill"),
        "fill_interval": _dig(value, "token_bucket", "fill_interval"),
        "enabled_percent": _dig(value, "filter_enabled", "default_value", "numerator"),
        "enforced_percent": _dig(value, "filter_enforced", "default_value", "numerator"),
    }
    reason = ("only the local rate-limit form of EnvoyFilter (what svc.rate_limit(...) "
              "writes) is expressible in the DSL")
    if not isinstance(patches, list) or len(patches) != 1 or _MISSING in fields.values():
        problems.append((("spec",), reason))
        return None
    try:
        return LocalRateLimit.model_validate(
            {"name": res.name, "namespace": res.namespace, **fields, "source": res.where()},
            strict=True)
    except ValidationError:
        problems.append((("spec",), reason))
        return None

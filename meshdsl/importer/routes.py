"""VirtualService → :class:`VirtualService`: hosts, HTTP and TCP routes.

Istio nests what the model keeps flat (``route[].destination.port.number`` is
``Destination.port``, ``fault.delay.percentage.value`` is ``Delay.percent``), so routes
are read field by field; every other part fits the model's camelCase aliases directly.
Each route keeps the line it was written on, so findings point at the route.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from meshdsl.importer.fields import NOT_EXPRESSIBLE, Problem, build, pick
from meshdsl.importer.manifests import Resource
from meshdsl.importer.yamlsource import YamlPath
from meshdsl.model.matching import L4Match, Match
from meshdsl.model.routing import (
    Abort,
    Cors,
    Delay,
    Destination,
    Fault,
    Headers,
    HttpRoute,
    Redirect,
    Retries,
    Rewrite,
    TcpRoute,
    VirtualService,
)

_MISSING = object()


def destination(res: Resource, value: Any, path: YamlPath, problems: list[Problem],
                weight: Any = _MISSING, weight_path: YamlPath = ()) -> Destination | None:
    """An Istio ``Destination`` (host, subset, port.number), with an optional weight."""
    data, locs = pick(res, value, path, {"host": "host", "subset": "subset", "port": "port"},
                      problems)
    if "port" in data:
        port, port_locs = pick(res, data.pop("port"), (*path, "port"), {"number": "port"},
                               problems)
        data.update(port)
        locs.update(port_locs)
    if weight is not _MISSING:
        data["weight"], locs["weight"] = weight, weight_path
    return build(res, Destination, data, path, problems, locs=locs, fitted=True)


def _weighted(res: Resource, value: Any, path: YamlPath, problems: list[Problem]
              ) -> Destination | None:
    entry = res.mapping(value, path)
    for key in entry:
        if key not in ("destination", "weight"):
            problems.append(((*path, key), NOT_EXPRESSIBLE))
    weight = entry.get("weight", _MISSING)
    return destination(res, entry.get("destination"), (*path, "destination"), problems,
                       weight=weight, weight_path=(*path, "weight"))


def _percent(res: Resource, data: dict[str, Any], locs: dict[str, YamlPath],
             path: YamlPath, problems: list[Problem]) -> None:
    if "percentage" in data:
        pct, pct_locs = pick(res, data.pop("percentage"), (*path, "percentage"),
                             {"value": "percent"}, problems)
        data.update(pct)
        locs.update(pct_locs)


def _fault(res: Resource, value: Any, path: YamlPath, problems: list[Problem]
           ) -> Fault | None:
    parts, _ = pick(res, value, path, {"delay": "delay", "abort": "abort"}, problems)
    out: dict[str, Any] = {}
    for key, fields, cls in (("delay", {"fixedDelay": "fixed", "percentage": "percentage"},
                              Delay),
                             ("abort", {"httpStatus": "status", "percentage": "percentage"},
                              Abort)):
        if key not in parts:
            continue
        here = (*path, key)
        data, locs = pick(res, parts[key], here, fields, problems)
        _percent(res, data, locs, here, problems)
        out[key] = build(res, cls, data, here, problems, locs=locs, fitted=True)
        if out[key] is None:
            return None
    return Fault(**out)


def _many(res: Resource, route: dict[str, Any], key: str, path: YamlPath) -> list[Any]:
    return res.listing(route.get(key), (*path, key))


_HTTP_KEYS = {"name", "match", "route", "redirect", "rewrite", "timeout", "retries", "fault",
              "mirror", "mirrorPercentage", "headers", "corsPolicy"}


def http_route(res: Resource, value: Any, path: YamlPath, problems: list[Problem]
               ) -> HttpRoute | None:
    route = res.mapping(value, path)
    problems += [((*path, k), NOT_EXPRESSIBLE) for k in route if k not in _HTTP_KEYS]
    fields: dict[str, Any] = {
        "match": [build(res, Match, m, (*path, "match", i), problems)
                  for i, m in enumerate(_many(res, route, "match", path))],
        "to": [_weighted(res, d, (*path, "route", i), problems)
               for i, d in enumerate(_many(res, route, "route", path))],
    }
    for key, cls, name in (("redirect", Redirect, "redirect"), ("rewrite", Rewrite, "rewrite"),
                           ("retries", Retries, "retries"), ("headers", Headers, "headers"),
                           ("corsPolicy", Cors, "cors")):
        if key in route:
            fields[name] = build(res, cls, route[key], (*path, key), problems)
    for key in ("name", "timeout"):
        if key in route:
            fields[key] = res.string(route[key], (*path, key))
    if "fault" in route:
        fields["fault"] = _fault(res, route["fault"], (*path, "fault"), problems)
    if "mirror" in route:
        fields["mirror"] = destination(res, route["mirror"], (*path, "mirror"), problems)
    if "mirrorPercentage" in route:
        pct, _ = pick(res, route["mirrorPercentage"], (*path, "mirrorPercentage"),
                      {"value": "mirror_percent"}, problems)
        if "mirror_percent" in pct:
            fields["mirror_percent"] = pct["mirror_percent"]
    # keep what could be read: the typed form is still useful to analysis when it is
    # carried raw, and the problems recorded above make it raw
    fields = {k: [x for x in v if x is not None] if isinstance(v, list) else v
              for k, v in fields.items() if v is not None}
    try:
        return HttpRoute(**fields, source=res.where(path))
    except ValidationError as exc:
        problems.append((path, "not expressible in the DSL: " + "; ".join(
            e["msg"].removeprefix("Value error, ") for e in exc.errors())))
        return None


def tcp_route(res: Resource, value: Any, path: YamlPath, problems: list[Problem]
              ) -> TcpRoute | None:
    route = res.mapping(value, path)
    problems += [((*path, k), NOT_EXPRESSIBLE) for k in route if k not in ("match", "route")]
    match = [build(res, L4Match, m, (*path, "match", i), problems)
             for i, m in enumerate(_many(res, route, "match", path))]
    to = [_weighted(res, d, (*path, "route", i), problems)
          for i, d in enumerate(_many(res, route, "route", path))]
    try:
        return TcpRoute(match=[m for m in match if m is not None],
                        to=[d for d in to if d is not None], source=res.where(path))
    except ValidationError:
        problems.append((path, "not expressible in the DSL: a TCP route needs a destination"))
        return None


def _strings(res: Resource, spec: dict[str, Any], key: str) -> list[str]:
    return [res.string(v, ("spec", key, i))
            for i, v in enumerate(res.listing(spec.get(key), ("spec", key)))]


def virtual_service(res: Resource, problems: list[Problem]) -> VirtualService | None:
    """The typed form as far as it goes; ``problems`` lists what it leaves out."""
    spec = res.spec
    problems += [(("spec", k), NOT_EXPRESSIBLE) for k in spec
                 if k not in ("hosts", "gateways", "http", "tcp", "exportTo")]
    if "exportTo" in spec:
        problems.append((("spec", "exportTo"), "not expressible with the DSL's builders"))
    http = [http_route(res, r, ("spec", "http", i), problems)
            for i, r in enumerate(res.listing(spec.get("http"), ("spec", "http")))]
    tcp = [tcp_route(res, r, ("spec", "tcp", i), problems)
           for i, r in enumerate(res.listing(spec.get("tcp"), ("spec", "tcp")))]
    if not any(http) and not any(tcp) and not problems:
        problems.append((("spec",), "a VirtualService without http or tcp routes is not "
                         "expressible with the DSL's builders"))
    try:
        return VirtualService(
            name=res.name, namespace=res.namespace, hosts=_strings(res, spec, "hosts"),
            gateways=_strings(res, spec, "gateways"),
            export_to=_strings(res, spec, "exportTo"),
            http=[r for r in http if r is not None], tcp=[r for r in tcp if r is not None],
            source=res.where())
    except ValidationError:
        problems.append((("spec", "hosts"), "not expressible in the DSL: a VirtualService "
                         "needs at least one host"))
        return None

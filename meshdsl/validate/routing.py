"""Routing sanity: weights, overlapping hosts, unreachable routes, durations, unique names
and one canary plan per service."""

from __future__ import annotations

import functools
import re
import typing
from collections import defaultdict
from collections.abc import Iterator, Sequence

from pydantic import BaseModel

from meshdsl.model.base import Declared, SourceLocation
from meshdsl.model.matching import Match
from meshdsl.model.routing import HttpRoute, TcpRoute, VirtualService
from meshdsl.model.spec import MeshSpec
from meshdsl.validate import hosts
from meshdsl.validate.findings import Finding, error, warning

_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(h|m|s|ms|us|µs|ns))+$")
DURATION_FIELDS = {
    "timeout", "per_try_timeout", "fixed", "max_age", "connect_timeout", "idle_timeout",
    "interval", "base_ejection_time", "ttl", "fill_interval", "pause",
}


def _weights(mesh: MeshSpec) -> Iterator[Finding]:
    for vs in mesh.virtual_services:
        kinds: tuple[tuple[str, Sequence[HttpRoute | TcpRoute]], ...] = (
            ("http", vs.http), ("tcp", vs.tcp))
        for where, routes in kinds:
            for i, route in enumerate(routes):
                dests = route.to
                if not dests or (len(dests) == 1 and dests[0].weight is None):
                    continue  # the common case: one destination, no weight
                problem = _weights_problem([d.weight for d in dests])
                if problem is not None:
                    yield error("MD103", f"VirtualService {vs.namespace}/{vs.name} "
                                f"{where}[{i}]", problem, route.source)


def _weights_problem(weights: list[int | None]) -> str | None:
    """What is wrong with a route's destination weights, or None."""
    if any(w is not None and w < 0 for w in weights):
        return f"negative weight in {weights}; weights are percentages from 0 to 100"
    if len(weights) > 1 and any(w is None for w in weights):
        return "several destinations need a weight each: use to={a: 90, b: 10}"
    total = sum(w or 0 for w in weights)
    if any(w is not None for w in weights) and total != 100:
        return f"weights add up to {total}, not 100 ({', '.join(str(w) for w in weights)})"
    return None


def _conflicts(mesh: MeshSpec) -> Iterator[Finding]:
    claimed: dict[tuple[str, str], VirtualService] = {}
    for vs in mesh.virtual_services:
        scopes = vs.gateways or ["mesh"]
        for scope in scopes:
            gw = scope if scope == "mesh" or "/" in scope else f"{vs.namespace}/{scope}"
            for host in vs.hosts:
                key = (gw, hosts.fqdn(mesh, host, vs.namespace) if gw == "mesh" else host)
                first = claimed.get(key)
                if first is None:
                    claimed[key] = vs
                else:
                    yield error("MD104", f"VirtualService {vs.namespace}/{vs.name} hosts",
                                f"host {host!r} is already routed by VirtualService "
                                f"{first.namespace}/{first.name} "
                                f"({'the mesh' if gw == 'mesh' else gw}); "
                                "Istio would merge them unpredictably — put the routes in "
                                "one place", vs.source)


def _shadowed(mesh: MeshSpec) -> Iterator[Finding]:
    """Which routes of a VirtualService are never used depends only on its routes' match
    lists; builders share one Match object among the routes that repeat it, so the 10,000
    VirtualServices of 10,000 similar services have a handful of shapes (the identities of
    their matches, route by route), each judged once. Keyed by identity, the verdicts live
    only while the spec holds every match."""
    verdicts: dict[tuple[tuple[int, ...], ...], list[tuple[int, str]]] = {}
    for vs in mesh.virtual_services:
        routes = vs.http
        shape = tuple(tuple(map(id, route.match)) for route in routes)
        unused = verdicts.get(shape)
        if unused is None:
            unused = verdicts[shape] = list(_unused(routes))
        for i, why in unused:
            yield warning("MD105", f"VirtualService {vs.namespace}/{vs.name} http[{i}]", why,
                          routes[i].source)


def _unused(routes: list[HttpRoute]) -> Iterator[tuple[int, str]]:
    """(index, why) of each route that no request reaches: below a catch-all, or with
    the same match as a route above."""
    seen: list[tuple[int, list[Match]]] = []
    catch_all: int | None = None
    for i, route in enumerate(routes):
        if catch_all is not None:
            yield i, (f"this route is never used: http[{catch_all}] above matches every "
                      "request; move the catch-all route last")
            continue
        matches = route.match  # frozen models compare by value, field by field
        same = [j for j, earlier in seen if matches and earlier == matches]
        if same:
            yield i, f"this route is never used: http[{same[0]}] above has the same match"
        seen.append((i, matches))
        if route.is_catch_all():
            catch_all = i


def _model_classes(annotation: object) -> list[type[BaseModel]]:
    """The pydantic model classes an annotation can hold (through unions and lists)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [cls for arg in typing.get_args(annotation) for cls in _model_classes(arg)]


@functools.cache
def _walk_plan(cls: type[BaseModel]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """For a model class: its duration fields, and the fields whose models (transitively)
    have any — the rest cannot hold a duration and are not walked."""
    durations, nested = [], []
    for name, field in cls.model_fields.items():
        if name in DURATION_FIELDS and "str" in str(field.annotation):
            durations.append(name)
        elif any(any(_walk_plan(inner)) for inner in _model_classes(field.annotation)
                 if inner is not cls):
            nested.append(name)
    return tuple(durations), tuple(nested)


Path = tuple[object, ...]


def _text(path: Path) -> str:
    """``VirtualService ns/name.http[0].retries.per_try_timeout`` from its parts, built only
    for a finding: walking 10,000 services formats no path for the ones that are fine."""
    out = str(path[0])
    for part in path[1:]:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _durations(model: BaseModel, path: Path, src: SourceLocation | None,
               out: list[Finding]) -> None:
    """Append the bad durations of ``model`` (and of the models it holds) to ``out``."""
    durations, nested = _walk_plan(type(model))
    fields = model.__dict__
    for name in durations:
        value = fields[name]
        if isinstance(value, str) and not _DURATION.match(value):
            out.append(error("MD109", _text((*path, name)),
                             f"{value!r} is not a duration; write it like '10s', '250ms' or "
                             "'1m'", src))
    for name in nested:
        value = fields[name]
        if value is None:
            continue
        if isinstance(value, BaseModel):
            _durations(value, (*path, name), src, out)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    _durations(item, (*path, name, i), _source(item, src), out)


def _source(obj: object, default: SourceLocation | None = None) -> SourceLocation | None:
    src = getattr(obj, "source", None)
    return src if isinstance(src, SourceLocation) else default


# The spec's lists by the kind their objects are reported as.
_LISTS = {"Service": "services", "VirtualService": "virtual_services",
          "DestinationRule": "destination_rules", "Gateway": "gateways",
          "PeerAuthentication": "peer_authentications",
          "AuthorizationPolicy": "authorization_policies", "RateLimit": "rate_limits",
          "EnvoyFilter": "rate_limits", "Canary": "canaries", "ServiceEntry": "service_entries",
          "WorkloadEntry": "workload_entries"}


def _objects(mesh: MeshSpec, *kinds: str) -> Iterator[tuple[str, list[BaseModel]]]:
    for kind in kinds:
        yield kind, list(getattr(mesh, _LISTS[kind]))


def _clean(model: BaseModel, shared: set[int]) -> bool:
    """True when ``model`` and the models it holds have no malformed duration: the quick
    pass over every object, which builds no path (:func:`_durations` then says where).
    ``shared`` holds the ids of list items already found clean: builders share values
    such as a service's subsets, so 10,000 DestinationRules hold a handful."""
    durations, nested = _walk_plan(type(model))
    fields = model.__dict__
    for name in durations:
        value = fields[name]
        if value is not None and isinstance(value, str) and _DURATION.match(value) is None:
            return False
    for name in nested:
        value = fields[name]
        if value is None:
            continue
        if isinstance(value, list):
            for item in value:
                if id(item) in shared or not isinstance(item, BaseModel):
                    continue
                if not _clean(item, shared):
                    return False
                if not isinstance(item, Declared):  # a route is its own, a value shared
                    shared.add(id(item))
        elif isinstance(value, BaseModel) and not _clean(value, shared):
            return False
    return True


def _all_durations(mesh: MeshSpec) -> Iterator[Finding]:
    out: list[Finding] = []
    shared: set[int] = set()  # ids, so only while the spec holds every model
    for kind, objects in _objects(mesh, "VirtualService", "DestinationRule", "RateLimit",
                                  "Canary"):
        for obj in objects:
            if not _clean(obj, shared):
                _durations(obj, (_Named(kind, obj),), _source(obj), out)
    yield from out


class _Named:
    """The head of a finding's path (``VirtualService ns/name``), formatted on demand."""

    __slots__ = ("kind", "obj")

    def __init__(self, kind: str, obj: BaseModel) -> None:
        self.kind, self.obj = kind, obj

    def __str__(self) -> str:
        name = getattr(self.obj, "name", None) or getattr(self.obj, "service", "")
        return f"{self.kind} {getattr(self.obj, 'namespace', '')}/{name}"


def _duplicates(mesh: MeshSpec) -> Iterator[Finding]:
    for kind, objects in _objects(mesh, "Service", "VirtualService", "DestinationRule",
                                  "Gateway", "PeerAuthentication", "AuthorizationPolicy",
                                  "EnvoyFilter", "ServiceEntry", "WorkloadEntry"):
        seen: set[tuple[str, str]] = set()
        for obj in objects:
            key = (str(getattr(obj, "namespace", "")), str(getattr(obj, "name", "")))
            if key in seen:
                yield error("MD113", f"{kind} {key[0]}/{key[1]}",
                            f"two {kind} objects named {key[1]!r} in namespace {key[0]!r}; "
                            "names must be unique", _source(obj))
            seen.add(key)


def _duplicate_canaries(mesh: MeshSpec) -> Iterator[Finding]:
    """One plan per (namespace, service): the rollout driver cannot run two at once."""
    first: dict[tuple[str, str], SourceLocation | None] = {}
    count: dict[tuple[str, str], int] = defaultdict(int)
    for plan in mesh.canaries:
        key = (plan.namespace, plan.service)
        count[key] += 1
        if count[key] == 1:
            first[key] = plan.source
            continue
        earlier = first[key]
        which = "a second" if count[key] == 2 else "another"
        where = f"at {earlier}" if earlier is not None else "declared earlier"
        yield error("MD115", f"Canary {plan.namespace}/{plan.service}",
                    f"{which} canary plan for {plan.service!r} (the first is {where}); "
                    "keep one", plan.source)


def check(mesh: MeshSpec) -> Iterator[Finding]:
    yield from _weights(mesh)
    yield from _conflicts(mesh)
    yield from _shadowed(mesh)
    yield from _all_durations(mesh)
    yield from _duplicates(mesh)
    yield from _duplicate_canaries(mesh)

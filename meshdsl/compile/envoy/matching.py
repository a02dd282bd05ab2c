"""Request matching: Istio's HTTPMatchRequest as Envoy ``RouteMatch``, and which matches
apply to which proxy at all.

Some conditions are about the *caller* (``sourceLabels``, ``sourceNamespace``,
``gateways``, ``port``), not the request. Istio resolves those when it builds each proxy's
config — a route whose matches all name other callers does not exist in this proxy — and so
do we: :func:`applies` filters, :func:`route_match` compiles what is left.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from meshdsl.compile.envoy.protos import Resource
from meshdsl.compile.envoy.topology import selects
from meshdsl.model.matching import L4Match, Match, StringMatch

MESH = "mesh"


@dataclass(frozen=True)
class Source:
    """The proxy a route table is compiled for, as route matches see it.

    ``gateways`` holds ``mesh`` for a sidecar, ``<namespace>/<name>`` of each Gateway a
    gateway proxy serves on this port; ``port`` is the service or server port number.
    """

    namespace: str
    labels: Mapping[str, str]
    gateways: frozenset[str]
    port: int


def gateway_ref(ref: str, namespace: str) -> str:
    """``name`` (in the VirtualService's namespace), ``ns/name`` or ``mesh`` → canonical."""
    if ref == MESH or "/" in ref:
        return ref
    return f"{namespace}/{ref}"


def bound_gateways(refs: list[str], namespace: str) -> frozenset[str]:
    """Where a VirtualService applies: its gateways, or the mesh when it names none."""
    return frozenset(gateway_ref(r, namespace) for r in refs) if refs else frozenset({MESH})


def applies(match: Match | L4Match, source: Source, vs_gateways: frozenset[str],
            vs_namespace: str) -> bool:
    """Whether a match can ever be true for requests through ``source``."""
    gateways = (frozenset(gateway_ref(g, vs_namespace) for g in match.gateways)
                if match.gateways else vs_gateways)
    if not gateways & source.gateways:
        return False
    if match.source_labels and not selects(match.source_labels, source.labels):
        return False
    if match.source_namespace is not None and match.source_namespace != source.namespace:
        return False
    return match.port is None or match.port == source.port


def string_matcher(sm: StringMatch) -> Resource:
    """An Envoy ``StringMatcher`` (regexes are RE2, matched against the whole value)."""
    if sm.exact is not None:
        return {"exact": sm.exact}
    if sm.prefix is not None:
        return {"prefix": sm.prefix}
    return {"safe_regex": {"regex": sm.regex}}


def header_matcher(name: str, sm: StringMatch, *, invert: bool = False) -> Resource:
    out: Resource = {"name": name, "string_match": string_matcher(sm)}
    if invert:
        out["invert_match"] = True
    return out


def route_match(match: Match | None) -> Resource:
    """Envoy's RouteMatch for one Istio match (None: everything)."""
    out: Resource = {}
    uri = match.uri if match is not None else None
    if uri is None or uri.prefix is not None:
        out["prefix"] = uri.prefix if uri is not None and uri.prefix is not None else "/"
    elif uri.exact is not None:
        out["path"] = uri.exact
    else:
        out["safe_regex"] = {"regex": uri.regex}
    if match is None:
        return out
    if match.ignore_uri_case:
        out["case_sensitive"] = False
    headers = [header_matcher(name, sm) for name, sm in sorted(match.headers.items())]
    pseudo = ((":method", match.method), (":authority", match.authority),
              (":scheme", match.scheme))
    headers += [header_matcher(name, sm) for name, sm in pseudo if sm is not None]
    headers += [header_matcher(name, sm, invert=True)
                for name, sm in sorted(match.without_headers.items())]
    if headers:
        out["headers"] = headers
    if match.query_params:
        out["query_parameters"] = [{"name": name, "string_match": string_matcher(sm)}
                                   for name, sm in sorted(match.query_params.items())]
    return out

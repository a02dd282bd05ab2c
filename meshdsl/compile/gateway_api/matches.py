"""Request matching in the Gateway API's terms.

A classic ``Match`` becomes one HTTPRouteMatch (path, headers, query parameters, method);
the Gateway API has no prefix match for headers or query parameters, so a prefix is
written as the equivalent anchored regular expression. For a GRPCRoute a path match on
``/package.Service/Method`` becomes a method match. Fields with no equivalent
(``without_headers``, ``authority``, ``scheme``, ``source_labels``…) are left out here
and reported by ``meshdsl.validate.ambient`` before anything is compiled.

Note the one difference in meaning that stays: Gateway API ``PathPrefix`` matches whole
path segments (``/users`` matches ``/users/1`` but not ``/usersx``).
"""

from __future__ import annotations

import re
from typing import Any

from meshdsl.model.matching import Match, StringMatch

# Match fields the Gateway API cannot express (attribute name -> what to use instead).
UNSUPPORTED = {
    "without_headers": "a header match on the values to accept (the Gateway API has no "
                       "negative match)",
    "authority": "the route's hostnames (gateway routes) or one route per Service",
    "scheme": "a separate listener per scheme on the Gateway",
    "source_labels": "an AuthorizationPolicy, or a separate Service for those callers",
    "source_namespace": "an AuthorizationPolicy on the caller's namespace",
    "gateways": "one route per parent (parentRefs)",
    "port": "a route per Service port (parentRefs port)",
    "ignore_uri_case": "a case-insensitive RegularExpression path match",
}
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")


def _value_match(sm: StringMatch) -> tuple[str, str]:
    if sm.exact is not None:
        return "Exact", sm.exact
    if sm.regex is not None:
        return "RegularExpression", sm.regex
    return "RegularExpression", f"^{re.escape(sm.prefix or '')}.*"


def _path(sm: StringMatch) -> dict[str, str]:
    if sm.exact is not None:
        return {"type": "Exact", "value": sm.exact}
    if sm.prefix is not None:
        return {"type": "PathPrefix", "value": sm.prefix}
    return {"type": "RegularExpression", "value": sm.regex or ""}


def _named(items: dict[str, StringMatch]) -> list[dict[str, str]]:
    out = []
    for name, sm in items.items():
        kind, value = _value_match(sm)
        out.append({"name": name, "type": kind, "value": value} if kind != "Exact"
                   else {"name": name, "value": value})
    return out


def http_match(match: Match) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if match.uri is not None:
        out["path"] = _path(match.uri)
    if match.headers:
        out["headers"] = _named(match.headers)
    if match.query_params:
        out["queryParams"] = _named(match.query_params)
    if match.method is not None and match.method.exact is not None:
        out["method"] = match.method.exact
    return out


def grpc_method(uri: StringMatch) -> dict[str, str] | None:
    """``/pkg.Service/Method`` (exact) or ``/pkg.Service/`` (prefix) as a gRPC method match."""
    text = uri.exact if uri.exact is not None else uri.prefix
    if text is None or not text.startswith("/"):
        return None
    service, slash, method = text[1:].partition("/")
    if not service or (uri.prefix is not None and (method or not slash)):
        return None
    out = {"service": service}
    if uri.exact is not None:
        if not method:
            return None
        out["method"] = method
    return out


def grpc_match(match: Match) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if match.uri is not None:
        method = grpc_method(match.uri)
        if method is not None:
            out["method"] = method
    if match.headers:
        out["headers"] = _named(match.headers)
    return out


def unsupported(match: Match) -> list[str]:
    """Names of the fields of ``match`` that have no Gateway API equivalent."""
    found = [f for f in UNSUPPORTED if getattr(match, f) not in (None, {}, [])]
    for f in ("method",):
        sm = getattr(match, f)
        if sm is not None and (sm.exact is None or sm.exact not in METHODS):
            found.append(f)
    return found

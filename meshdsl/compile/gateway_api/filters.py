"""What a matched request goes through: Gateway API filters, timeouts and retries.

Header edits become Request/ResponseHeaderModifier, a rewrite URLRewrite (a prefix
rewrite when every match of the rule is a path prefix, as Istio does), a redirect
RequestRedirect (status 301 unless set, Istio's default — the Gateway API's is 302), a
mirror RequestMirror, CORS the CORS filter. ``timeout`` is ``timeouts.request``, a retry's
per-try timeout ``timeouts.backendRequest``, and retries the ``retry`` field (experimental
channel; Istio reads it). Fault injection has no Gateway API form: the validator stops it.
"""

from __future__ import annotations

import math
from typing import Any

from meshdsl.compile.gateway_api.refs import Backend, duration, millis
from meshdsl.model.routing import Cors, HeaderOps, HttpRoute

_STANDARD_CODES = {301, 302, 303, 307, 308}


def _header_modifier(ops: HeaderOps) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ops.set:
        out["set"] = [{"name": k, "value": v} for k, v in ops.set.items()]
    if ops.add:
        out["add"] = [{"name": k, "value": v} for k, v in ops.add.items()]
    if ops.remove:
        out["remove"] = list(ops.remove)
    return out


def _seconds(text: str) -> int:
    return math.ceil((millis(text) or 0) / 1000)


def cors(policy: Cors) -> dict[str, Any]:
    out: dict[str, Any] = {}
    origins = [o.exact for o in policy.allow_origins if o.exact is not None]
    if origins:
        out["allowOrigins"] = origins
    if policy.allow_methods:
        out["allowMethods"] = list(policy.allow_methods)
    if policy.allow_headers:
        out["allowHeaders"] = list(policy.allow_headers)
    if policy.expose_headers:
        out["exposeHeaders"] = list(policy.expose_headers)
    if policy.max_age is not None:
        out["maxAge"] = _seconds(policy.max_age)
    if policy.allow_credentials is not None:
        out["allowCredentials"] = policy.allow_credentials
    return out


def _mirror(route: HttpRoute, mirror: Backend, namespace: str) -> dict[str, Any]:
    out: dict[str, Any] = {"backendRef": mirror.ref(namespace)}
    percent = route.mirror_percent
    if percent is not None:
        if float(percent).is_integer():
            out["percent"] = int(percent)
        else:
            out["fraction"] = {"numerator": round(percent * 100), "denominator": 10000}
    return out


def http_filters(route: HttpRoute, *, namespace: str, mirror: Backend | None,
                 grpc: bool = False) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    headers = route.headers
    if headers is not None and headers.request is not None:
        out.append({"type": "RequestHeaderModifier",
                    "requestHeaderModifier": _header_modifier(headers.request)})
    if headers is not None and headers.response is not None:
        out.append({"type": "ResponseHeaderModifier",
                    "responseHeaderModifier": _header_modifier(headers.response)})
    if mirror is not None:
        out.append({"type": "RequestMirror", "requestMirror": _mirror(route, mirror, namespace)})
    if grpc:
        return out
    if route.rewrite is not None:
        rewrite: dict[str, Any] = {}
        if route.rewrite.authority is not None:
            rewrite["hostname"] = route.rewrite.authority
        if route.rewrite.uri is not None:
            prefixes = bool(route.match) and all(
                m.uri is not None and m.uri.prefix is not None for m in route.match)
            rewrite["path"] = (
                {"type": "ReplacePrefixMatch", "replacePrefixMatch": route.rewrite.uri}
                if prefixes else {"type": "ReplaceFullPath", "replaceFullPath": route.rewrite.uri})
        out.append({"type": "URLRewrite", "urlRewrite": rewrite})
    if route.redirect is not None:
        red = route.redirect
        redirect: dict[str, Any] = {}
        if red.scheme is not None:
            redirect["scheme"] = red.scheme
        if red.authority is not None:
            redirect["hostname"] = red.authority
        if red.uri is not None:
            redirect["path"] = {"type": "ReplaceFullPath", "replaceFullPath": red.uri}
        if red.port is not None:
            redirect["port"] = red.port
        redirect["statusCode"] = red.redirect_code or 301
        out.append({"type": "RequestRedirect", "requestRedirect": redirect})
    if route.cors is not None:
        out.append({"type": "CORS", "cors": cors(route.cors)})
    return out


def timeouts(route: HttpRoute) -> dict[str, str]:
    out: dict[str, str] = {}
    if route.timeout is not None:
        out["request"] = duration(route.timeout)
    if route.retries is not None and route.retries.per_try_timeout is not None:
        out["backendRequest"] = duration(route.retries.per_try_timeout)
    return out


def retry(route: HttpRoute) -> dict[str, Any] | None:
    if route.retries is None:
        return None
    out: dict[str, Any] = {"attempts": route.retries.attempts}
    codes = [int(c) for c in (route.retries.retry_on or "").split(",") if c.strip().isdigit()]
    if codes:
        out["codes"] = codes
    return out


def redirect_code_supported(code: int | None) -> bool:
    return code is None or code in _STANDARD_CODES

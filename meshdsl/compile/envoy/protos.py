"""Envoy's wire vocabulary: type URLs, durations, percentages and the error of this package.

Compiled resources are plain JSON-like dicts in Envoy's v3 proto-JSON form. Everything
that has a spelling Envoy is strict about (an ``@type``, a ``Duration``, a
``FractionalPercent``) is written in exactly one place, here.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from meshdsl.errors import MeshdslError

Resource = dict[str, Any]
"""One Envoy v3 resource (Listener, Cluster, RouteConfiguration, ...) as plain data."""

_T = "type.googleapis.com/"
LISTENER = _T + "envoy.config.listener.v3.Listener"
CLUSTER = _T + "envoy.config.cluster.v3.Cluster"
ROUTE_CONFIGURATION = _T + "envoy.config.route.v3.RouteConfiguration"
HCM = _T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
TCP_PROXY = _T + "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
ROUTER = _T + "envoy.extensions.filters.http.router.v3.Router"
FAULT = _T + "envoy.extensions.filters.http.fault.v3.HTTPFault"
CORS = _T + "envoy.extensions.filters.http.cors.v3.Cors"
CORS_POLICY = _T + "envoy.extensions.filters.http.cors.v3.CorsPolicy"
RBAC = _T + "envoy.extensions.filters.http.rbac.v3.RBAC"
NETWORK_RBAC = _T + "envoy.extensions.filters.network.rbac.v3.RBAC"
LOCAL_RATELIMIT = _T + "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
TLS_INSPECTOR = _T + "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
UPSTREAM_TLS = _T + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
DOWNSTREAM_TLS = _T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
RAW_BUFFER = _T + "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
HTTP_PROTOCOL_OPTIONS = _T + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
PREVIOUS_HOSTS = _T + "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"

# Filter names: a route's typed_per_filter_config is keyed by the HCM filter's name.
FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"
RBAC_FILTER = "envoy.filters.http.rbac"
NETWORK_RBAC_FILTER = "envoy.filters.network.rbac"
LOCAL_RATELIMIT_FILTER = "envoy.filters.http.local_ratelimit"
ROUTER_FILTER = "envoy.filters.http.router"
HCM_FILTER = "envoy.filters.network.http_connection_manager"
TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"
TLS_SOCKET = "envoy.transport_sockets.tls"
HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

UNLIMITED = 4294967295
"""Istio's "no limit" for circuit breakers (Envoy's own defaults are 1024 and 3 retries)."""

MILLION = 1_000_000


class EnvoyCompileError(MeshdslError):
    """The mesh or the placement cannot become Envoy config; the message says how to fix it."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_UNIT_SECONDS = {"h": Decimal(3600), "m": Decimal(60), "s": Decimal(1),
                 "ms": Decimal("0.001"), "us": Decimal("0.000001"),
                 "µs": Decimal("0.000001"), "ns": Decimal("0.000000001")}


def seconds(duration: str) -> Decimal:
    """Seconds in an Istio (Go-style) duration such as ``10s``, ``1.5s``, ``100ms``, ``1h30m``."""
    text = duration.strip()
    pos, total = 0, Decimal(0)
    while pos < len(text):
        part = _DURATION_PART.match(text, pos)
        if part is None:
            raise EnvoyCompileError(
                f"cannot read duration {duration!r}; write it like '10s', '250ms' or '1m30s'")
        total += Decimal(part.group(1)) * _UNIT_SECONDS[part.group(2)]
        pos = part.end()
    if not text:
        raise EnvoyCompileError("empty duration; write it like '10s'")
    return total


def duration(value: str) -> str:
    """A protobuf-JSON ``Duration`` (``"2s"``, ``"0.100s"``) from an Istio duration."""
    total = seconds(value)
    if total == total.to_integral_value():
        return f"{int(total)}s"
    return f"{total.normalize():f}s"


def whole_seconds(value: str) -> str:
    """A duration as a count of whole seconds (CORS ``max_age`` is a string of seconds)."""
    return str(int(seconds(value)))


def fraction(percent: float | None) -> Resource:
    """A ``FractionalPercent`` in millionths; ``None`` means all requests (Istio's default)."""
    value = 100.0 if percent is None else percent
    return {"numerator": round(value * MILLION / 100), "denominator": "MILLION"}


def runtime_fraction(percent: float | None, key: str | None = None) -> Resource:
    """A ``RuntimeFractionalPercent`` with a fixed default (no runtime key unless named)."""
    out: Resource = {"default_value": fraction(percent)}
    if key is not None:
        out["runtime_key"] = key
    return out


def typed(type_url: str, **fields: Any) -> Resource:
    """A ``typed_config`` value: ``@type`` first, then the fields."""
    return {"@type": type_url, **fields}


def filter_entry(name: str, type_url: str, **fields: Any) -> Resource:
    """An HTTP/network/listener filter entry: ``{name, typed_config}``."""
    return {"name": name, "typed_config": typed(type_url, **fields)}


def socket_address(host: str, port: int) -> Resource:
    return {"socket_address": {"address": host, "port_value": port}}

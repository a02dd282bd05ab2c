"""Where the graph's traffic comes from: Prometheus (Kiali's queries) or the Envoys' stats.

Both answer :class:`TrafficSource`: ``edges()`` → a list of
:class:`~reconciler.core.graph.EdgeStats` over the last ``window`` seconds.

- :class:`PrometheusTraffic` — a cluster running Istio (or the local mesh's bridge). The
  queries are Kiali's: ``istio_requests_total`` and
  ``istio_request_duration_milliseconds_bucket`` summed by source and destination workload,
  ``reporter="destination"`` (the callee's proxy, which also knows whether the connection
  was mutual TLS: ``connection_security_policy``), then ``reporter="waypoint"`` (an ambient
  service's waypoint: there is no destination sidecar), then ``reporter="source"`` filling in
  pairs no other proxy reported (a destination outside the mesh).
- :class:`EnvoyTraffic` — the local mesh without Prometheus: each proxy's
  ``/stats/prometheus``, read as the caller's view (its outbound subset clusters name the
  destination service and version; the proxy itself is the source), with mTLS from the
  cluster's TLS handshakes. A waypoint's ``inbound-vip`` subset clusters give an ambient
  service's split between its workloads (its callers are not named there). Rates are differences between two scrapes ``window`` apart,
  latency quantiles interpolated like ``histogram_quantile``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from meshdsl.model.spec import MeshSpec
from reconciler.core.graph import EdgeStats, source_node
from reconciler.metrics.envoy_stats import (
    Samples,
    fetch_stats,
    histogram_quantile,
    increase,
    parse_exposition,
)
from reconciler.metrics.prometheus import PrometheusSource
from reconciler.metrics.recording_rules import CLUSTER_PATTERN
from reconciler.ports import MetricsError

__all__ = ["EnvoyTraffic", "PrometheusTraffic", "TrafficSource", "kiali_queries"]

ENVOY_FILTER = (r"^cluster\.(outbound|inbound-vip)\|.*\.(upstream_rq_[0-9]{3}|upstream_rq_time|"
                r"ssl\.handshake)$")
_BY = ("source_workload, source_workload_namespace, destination_service_name, "
       "destination_service_namespace, destination_version")


class TrafficSource(Protocol):
    def edges(self) -> list[EdgeStats]: ...

    def describe(self) -> str: ...


def kiali_queries(window: str, reporter: str) -> dict[str, str]:
    """The PromQL for one refresh (Kiali's graph queries, by workload pair)."""
    sel = f'reporter="{reporter}"'
    return {
        "requests": f"sum(rate(istio_requests_total{{{sel}}}[{window}])) by ({_BY}, "
                    "response_code, connection_security_policy) > 0",
        "p50": f"histogram_quantile(0.5, sum(rate(istio_request_duration_milliseconds_bucket"
               f"{{{sel}}}[{window}])) by (le, {_BY}))",
        "p99": f"histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket"
               f"{{{sel}}}[{window}])) by (le, {_BY}))",
    }


Pair = tuple[str, str, str, str, str]   # source ns, source workload, dest ns, service, version


def _pair(metric: dict[str, str]) -> Pair:
    return (metric.get("source_workload_namespace", ""), metric.get("source_workload", ""),
            metric.get("destination_service_namespace", ""),
            metric.get("destination_service_name", ""),
            metric.get("destination_version", ""))


@dataclass
class _Acc:
    rps: float = 0.0
    errors: float = 0.0
    mtls: bool | None = None
    p50: float | None = None
    p99: float | None = None


class PrometheusTraffic:
    def __init__(self, url: str, spec: Callable[[], MeshSpec | None], *,
                 window: str = "1m", timeout: float = 5.0) -> None:
        self.window, self._spec = window, spec
        self._source = PrometheusSource(url, timeout=timeout)
        self.url = self._source.url

    def describe(self) -> str:
        return f"Prometheus {self.url} (istio_requests_total, {self.window} window)"

    def _collect(self, reporter: str) -> dict[Pair, _Acc]:
        queries = kiali_queries(self.window, reporter)
        found: dict[Pair, _Acc] = {}
        for metric, value in self._source.vector(queries["requests"]):
            acc = found.setdefault(_pair(metric), _Acc())
            acc.rps += value
            if metric.get("response_code", "").startswith("5"):
                acc.errors += value
            policy = metric.get("connection_security_policy")
            if policy in ("mutual_tls", "none"):
                acc.mtls = (acc.mtls is not False) and policy == "mutual_tls"
        for name in ("p50", "p99"):
            for metric, value in self._source.vector(queries[name]):
                if _pair(metric) in found:
                    setattr(found[_pair(metric)], name, value)
        return found

    def edges(self) -> list[EdgeStats]:
        seen = self._collect("destination")
        for reporter in ("waypoint", "source"):
            for pair, acc in self._collect(reporter).items():
                seen.setdefault(pair, acc)
        spec = self._spec()
        return [EdgeStats(source_node(spec, p[0], p[1]), p[2], p[3], p[4], a.rps, a.errors,
                          a.p50, a.p99, a.mtls)
                for p, a in sorted(seen.items()) if p[3] and p[4]]

    def close(self) -> None:
        self._source.close()


class EnvoyTraffic:
    """``proxies()`` names each proxy's node id and admin URL (a gateway or a workload)."""

    def __init__(self, proxies: Callable[[], Iterable[tuple[str, str]]], *,
                 window: float = 10.0, timeout: float = 2.0) -> None:
        self._proxies, self.window = proxies, window
        self._client = httpx.Client(timeout=timeout, trust_env=False)
        self._history: list[tuple[float, dict[str, Samples]]] = []
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"Envoy stats ({self.window:g} s window)"

    def _scrape(self) -> dict[str, Samples]:
        out: dict[str, Samples] = {}
        for node, admin in self._proxies():
            try:
                text = fetch_stats(self._client, admin, only=ENVOY_FILTER)
            except MetricsError:
                continue   # a proxy restarting: it is back at the next refresh
            out[node] = parse_exposition(text)
        return out

    def edges(self) -> list[EdgeStats]:
        with self._lock:
            now = time.monotonic()
            current = self._scrape()
            self._history = [h for h in self._history if now - h[0] <= 4 * self.window]
            older = [h for h in self._history if now - h[0] >= self.window]
            base = older[-1] if older else (self._history[0] if self._history else None)
            self._history.append((now, current))
        if base is None or now - base[0] <= 0:
            return []
        elapsed = now - base[0]
        out: list[EdgeStats] = []
        for node, samples in sorted(current.items()):
            before = base[1].get(node, {})
            out += _proxy_edges(node, before, samples, elapsed)
        return out

    def close(self) -> None:
        self._client.close()


def _proxy_edges(node: str, before: Samples, after: Samples, elapsed: float
                 ) -> list[EdgeStats]:
    per: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for (name, labels), value in after.items():
        label = dict(labels)
        match = re.fullmatch(CLUSTER_PATTERN, label.get("envoy_cluster_name", ""))
        if match is None or match.group(1) == "inbound":
            continue   # a sidecar's inbound: its callers' outbound clusters already count it
        # outbound: this proxy calls; inbound-vip: a waypoint passes its callers' requests on
        source = node if match.group(1) == "outbound" else ""
        version, service, namespace = match.group(3), match.group(4), match.group(5)
        old = before.get((name, labels))
        delta = increase(old, value)
        acc = per.setdefault((source, namespace, service, version),
                             {"rq": 0.0, "err": 0.0, "buckets": {}, "tls": 0.0})
        if name == "envoy_cluster_upstream_rq" and "envoy_response_code" in label:
            acc["rq"] += delta
            if label["envoy_response_code"].startswith("5"):
                acc["err"] += delta
        elif name == "envoy_cluster_upstream_rq_time_bucket" and "le" in label:
            bound = float(label["le"])
            acc["buckets"][bound] = acc["buckets"].get(bound, 0.0) + delta
        elif name == "envoy_cluster_ssl_handshake":
            acc["tls"] += value
    out = []
    for (source, namespace, service, version), acc in sorted(per.items()):
        if acc["rq"] <= 0:
            continue
        buckets = tuple(sorted(acc["buckets"].items()))
        out.append(EdgeStats(source, namespace, service, version, acc["rq"] / elapsed,
                             acc["err"] / elapsed, histogram_quantile(0.5, buckets),
                             histogram_quantile(0.99, buckets), acc["tls"] > 0))
    return out

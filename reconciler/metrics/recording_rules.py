"""The Envoy -> Istio bridge: Prometheus config that gives the local mesh Istio's metrics —
so one set of queries serves both a real Istio cluster and plain Envoys on a laptop.

Istio's proxies export ``istio_requests_total`` and
``istio_request_duration_milliseconds_bucket``; plain Envoy exports
``envoy_cluster_upstream_rq{envoy_response_code}`` and
``envoy_cluster_upstream_rq_time_bucket`` per cluster. The local mesh names its clusters
like Istio does (``meshdsl.compile.envoy.names``), and the name says everything the Istio
labels need::

    outbound|9080|v2|reviews_bookinfo_svc_cluster_local     caller's view    reporter="source"
    inbound|9080|v2|reviews_bookinfo_svc_cluster_local      callee's view    reporter="destination"
    inbound-vip|9080|v2|reviews_shop_svc_cluster_local      waypoint's view  reporter="waypoint"

(In an ambient namespace the workloads have no sidecar; the waypoint in front of them
reports, as Istio's waypoints do with ``reporter="waypoint"``.)

(``.`` appears as ``_`` because the local mesh's ``alt_stat_name`` keeps Envoy's tag
extraction from cutting the name at the first dot; both spellings are accepted.)

The bridge has two halves, both needed:

- :func:`istio_bridge_relabel_configs` — ``metric_relabel_configs`` for the job scraping the
  Envoys. At scrape time they parse the cluster name into ``destination_workload``
  (``<service>-<version>``, the Deployment name), ``destination_workload_namespace``,
  ``destination_service_name``, ``destination_version``, ``destination_service`` and
  ``reporter``, copy the code into ``response_code``, and rename the latency histogram to
  ``istio_request_duration_milliseconds_*``. Relabelling costs nothing per query and adds
  no delay: a scraped sample is queryable at once.
- :func:`istio_bridge_rule_groups` — one recording rule for ``istio_requests_total``.

**Counters start at zero.** Envoy creates a per-code counter (``upstream_rq_503``) at the
first response with that code, and ``rate()``/``increase()`` never count a series' first
sample: the first 5xx of a canary would be invisible to the success-rate check until a
second one came — an analysis interval lost (on Istio as well). Following Prometheus'
instrumentation advice (export 0 for label values known in advance), the rule records
``istio_requests_total`` as 0 for the codes in :data:`ZERO_CODES` on every subset cluster
from the moment the cluster exists (its eager ``upstream_rq_total``), so the first such
response is an increase from 0. Only a rule can add series, which is why requests are
recorded rather than renamed; a code outside the set behaves as before. A canary with no
traffic then has a request count of 0 (not an empty result): still *no data* for the
builtin checks (0 < ``min_requests``; a 0/0 success rate and the p99 of nothing are NaN),
but a custom query such as "5xx count <= 0" with ``min_requests=0`` passes on silence.

Each series maps one Envoy series 1:1 (nothing is summed), so counters stay counters
across Envoy restarts and ``rate()`` works as on Istio. Evaluate the rule as often as
Prometheus scrapes (``interval``): a recorded sample is then at most one scrape behind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = [
    "CLUSTER_PATTERN",
    "ENVOY_STATS_FILTER",
    "GROUP_NAME",
    "ZERO_CODES",
    "istio_bridge_relabel_configs",
    "istio_bridge_rule_groups",
    "parse_cluster",
    "rules_file",
]

GROUP_NAME = "meshdsl-istio-bridge"

ZERO_CODES: tuple[str, ...] = ("200", "500", "502", "503", "504")
"""Response codes recorded as 0 before their first request: the success a canary serves,
and the 5xx codes servers and Envoy itself answer with (500, 502, 503 no healthy upstream
or overflow, 504 upstream timeout)."""

ENVOY_STATS_FILTER = (r"^cluster\.(inbound|outbound|inbound-vip)\|.*"
                      r"\.upstream_rq(_total|_[0-9]{3}|_time)$")
"""The Envoy stats the bridge reads, as Envoy's ``/stats/prometheus?filter=`` regex: per
cluster the request counters by code, their eager total, and the latency histogram. A
scrape with it carries a few dozen series instead of a few thousand."""

_SEP = "[._]"
_DIRECTION = {"source": "outbound", "destination": "inbound", "waypoint": "inbound-vip"}
_REPORTER = {direction: reporter for reporter, direction in _DIRECTION.items()}


def _pattern(direction: str) -> str:
    # groups: 1 port, 2 version (subset), 3 service, 4 namespace
    return (rf"{direction}\|([0-9]+)\|([^|]+)\|([^._|]+){_SEP}([^._|]+){_SEP}svc{_SEP}"
            rf"cluster{_SEP}local")


CLUSTER_PATTERN = rf"(outbound|inbound|inbound-vip)\|([0-9]+)\|([^|]*)\|([^._|]+){_SEP}([^._|]+){_SEP}" \
                  rf"svc{_SEP}cluster{_SEP}local"
"""Any Istio-style cluster name (groups: direction, port, subset, service, namespace)."""

_LABELS: Mapping[str, str] = {
    "destination_workload": "${3}-${2}",
    "destination_workload_namespace": "${4}",
    "destination_service_name": "${3}",
    "destination_service_namespace": "${4}",
    "destination_service": "${3}.${4}.svc.cluster.local",
    "destination_version": "${2}",
    "destination_app": "${3}",
    "destination_canonical_service": "${3}",
    "destination_canonical_revision": "${2}",
}

_HISTOGRAM = r"envoy_cluster_upstream_rq_time_(bucket|sum|count)"


def parse_cluster(name: str) -> tuple[str, int, str, str, str] | None:
    """``(reporter, port, version, service, namespace)`` of an Istio-style subset cluster
    name, or None (other clusters, or the whole-service ``outbound|9080||...``)."""
    match = re.fullmatch(CLUSTER_PATTERN, name)
    if match is None or not match.group(3):
        return None
    return (_REPORTER[match.group(1)], int(match.group(2)), match.group(3), match.group(4),
            match.group(5))


def istio_bridge_relabel_configs() -> list[dict[str, Any]]:
    """The ``metric_relabel_configs`` of the scrape job reading the Envoys: Istio's labels
    on every series of a subset cluster, and the latency histogram under Istio's name.
    (Prometheus anchors each regex; a series it does not match is left as it is.)"""
    configs: list[dict[str, Any]] = [
        {"source_labels": ["envoy_cluster_name"], "regex": _pattern(direction),
         "target_label": "reporter", "replacement": reporter}
        for reporter, direction in _DIRECTION.items()
    ]
    subset = _pattern("(?:outbound|inbound|inbound-vip)")
    configs += [{"source_labels": ["envoy_cluster_name"], "regex": subset,
                 "target_label": label, "replacement": replacement}
                for label, replacement in _LABELS.items()]
    configs.append({"source_labels": ["reporter", "envoy_response_code"], "regex": "[a-z]+;(.+)",
                    "target_label": "response_code", "replacement": "$1"})
    configs.append({"source_labels": ["reporter", "__name__"], "regex": f"[a-z]+;{_HISTOGRAM}",
                    "target_label": "__name__",
                    "replacement": "istio_request_duration_milliseconds_$1"})
    return configs


def _requests() -> str:
    """Envoy's per-code request counters of subset clusters (relabelled: they carry
    ``reporter``), plus a 0 for each of :data:`ZERO_CODES` a cluster has not answered yet.
    ``or`` keeps the real series where both exist: their labels are the same."""
    zeros = [f'label_replace(label_replace(envoy_cluster_upstream_rq_total{{reporter!=""}} * 0, '
             f'"envoy_response_code", "{code}", "", ""), "response_code", "{code}", "", "")'
             for code in ZERO_CODES]
    return " or ".join(['envoy_cluster_upstream_rq{reporter!=""}', *zeros])


def istio_bridge_rule_groups(*, interval: str | None = None) -> list[dict[str, Any]]:
    """The rule group(s) to load into Prometheus (``rule_files``), evaluated every
    ``interval`` (default: Prometheus' ``evaluation_interval``). They read series
    relabelled by :func:`istio_bridge_relabel_configs`."""
    group: dict[str, Any] = {"name": GROUP_NAME,
                             "rules": [{"record": "istio_requests_total", "expr": _requests()}]}
    if interval is not None:
        group["interval"] = interval
    return [group]


def rules_file(*, interval: str | None = None) -> str:
    """The groups as a Prometheus rules file (``promtool check rules`` accepts it)."""
    return yaml.safe_dump({"groups": istio_bridge_rule_groups(interval=interval)},
                          sort_keys=False, width=10_000)

"""Recording rules that give the local mesh Istio's metrics — so one set of queries serves
both a real Istio cluster and plain Envoys on a laptop.

Istio's proxies export ``istio_requests_total`` and
``istio_request_duration_milliseconds_bucket``; plain Envoy exports
``envoy_cluster_upstream_rq{envoy_response_code}`` and
``envoy_cluster_upstream_rq_time_bucket`` per cluster. The local mesh names its clusters
like Istio does (``meshdsl.compile.envoy.names``), and the name says everything the Istio
labels need::

    outbound|9080|v2|reviews_bookinfo_svc_cluster_local   caller's view   reporter="source"
    inbound|9080|v2|reviews_bookinfo_svc_cluster_local    callee's view   reporter="destination"

(``.`` appears as ``_`` because the local mesh's ``alt_stat_name`` keeps Envoy's tag
extraction from cutting the name at the first dot; both spellings are accepted.)
``label_replace`` parses the name into ``destination_workload`` (``<service>-<version>``,
the Deployment name), ``destination_workload_namespace``, ``destination_service_name``,
``destination_version``, ``destination_service``, and ``reporter``; the response code is
copied into ``response_code``. Each recorded series maps one source series 1:1 (nothing is
summed), so counters stay counters across Envoy restarts and ``rate()`` works as on Istio.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = [
    "CLUSTER_PATTERN",
    "GROUP_NAME",
    "istio_bridge_rule_groups",
    "parse_cluster",
    "rules_file",
]

GROUP_NAME = "meshdsl-istio-bridge"

_SEP = "[._]"
_DIRECTION = {"source": "outbound", "destination": "inbound"}


def _pattern(direction: str) -> str:
    # groups: 1 port, 2 version (subset), 3 service, 4 namespace
    return (rf"{direction}\|([0-9]+)\|([^|]+)\|([^._|]+){_SEP}([^._|]+){_SEP}svc{_SEP}"
            rf"cluster{_SEP}local")


CLUSTER_PATTERN = rf"(outbound|inbound)\|([0-9]+)\|([^|]*)\|([^._|]+){_SEP}([^._|]+){_SEP}" \
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


def parse_cluster(name: str) -> tuple[str, int, str, str, str] | None:
    """``(reporter, port, version, service, namespace)`` of an Istio-style subset cluster
    name, or None (other clusters, or the whole-service ``outbound|9080||...``)."""
    match = re.fullmatch(CLUSTER_PATTERN, name)
    if match is None or not match.group(3):
        return None
    reporter = "source" if match.group(1) == "outbound" else "destination"
    return reporter, int(match.group(2)), match.group(3), match.group(4), match.group(5)


def _bridged(metric: str, reporter: str, *, response_code: bool) -> str:
    """``metric`` of the reporter's clusters with Istio's labels added (one PromQL line)."""
    pattern = _pattern(_DIRECTION[reporter])
    expr = f"{metric}{{envoy_cluster_name=~`{pattern}`}}"
    for label, replacement in {**_LABELS, "reporter": reporter}.items():
        expr = f'label_replace({expr}, "{label}", "{replacement}", "envoy_cluster_name", ' \
               f"`{pattern}`)"
    if response_code:
        expr = f'label_replace({expr}, "response_code", "$1", "envoy_response_code", "(.*)")'
    return expr


def istio_bridge_rule_groups(*, interval: str | None = None) -> list[dict[str, Any]]:
    """The rule group(s) to load into Prometheus (``rule_files``), evaluated every
    ``interval`` (default: Prometheus' ``evaluation_interval``)."""
    rules: list[dict[str, Any]] = []
    for reporter in ("source", "destination"):
        rules.append({"record": "istio_requests_total",
                      "expr": _bridged("envoy_cluster_upstream_rq", reporter,
                                       response_code=True)})
        for suffix in ("bucket", "sum", "count"):
            rules.append({"record": f"istio_request_duration_milliseconds_{suffix}",
                          "expr": _bridged(f"envoy_cluster_upstream_rq_time_{suffix}",
                                           reporter, response_code=False)})
    group: dict[str, Any] = {"name": GROUP_NAME, "rules": rules}
    if interval is not None:
        group["interval"] = interval
    return [group]


def rules_file(*, interval: str | None = None) -> str:
    """The groups as a Prometheus rules file (``promtool check rules`` accepts it)."""
    return yaml.safe_dump({"groups": istio_bridge_rule_groups(interval=interval)},
                          sort_keys=False, width=10_000)

"""The Envoy -> Istio bridge, as data (Prometheus runs it in integration)."""

from __future__ import annotations

import re

import pytest
import yaml

from reconciler.metrics.recording_rules import (
    CLUSTER_PATTERN,
    ENVOY_STATS_FILTER,
    GROUP_NAME,
    ZERO_CODES,
    istio_bridge_relabel_configs,
    istio_bridge_rule_groups,
    parse_cluster,
    rules_file,
)


@pytest.mark.parametrize(("name", "parsed"), [
    ("outbound|9080|v2|reviews_bookinfo_svc_cluster_local",
     ("source", 9080, "v2", "reviews", "bookinfo")),
    ("outbound|9080|v2|reviews.bookinfo.svc.cluster.local",
     ("source", 9080, "v2", "reviews", "bookinfo")),
    ("inbound|8080|canary-1|my-svc_my-ns_svc_cluster_local",
     ("destination", 8080, "canary-1", "my-svc", "my-ns")),
    ("inbound-vip|9080|v2|reviews_shop_svc_cluster_local",
     ("waypoint", 9080, "v2", "reviews", "shop")),
    ("inbound-vip|9080||reviews_shop_svc_cluster_local", None),
    ("inbound-l4|9080|v2|reviews_shop_svc_cluster_local", None),  # TCP, no requests
    ("outbound|9080||reviews_bookinfo_svc_cluster_local", None),
    ("outbound|443||api.example.com", None),
    ("prometheus_stats", None),
    ("outbound|9080|v2|reviews_bookinfo_svc_cluster_local_extra", None),
])
def test_cluster_names(name: str, parsed: tuple[str, int, str, str, str] | None) -> None:
    assert parse_cluster(name) == parsed


def relabel(labels: dict[str, str]) -> dict[str, str]:
    """Prometheus' ``replace`` relabelling (anchored regex, ``;``-joined sources), enough to
    run the bridge's configs on one series in Python."""
    out = dict(labels)
    for config in istio_bridge_relabel_configs():
        assert config.get("action", "replace") == "replace"
        value = ";".join(out.get(label, "") for label in config["source_labels"])
        match = re.fullmatch(config["regex"], value)
        if match is not None:
            out[config["target_label"]] = match.expand(
                re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", config["replacement"]))
    return out


def test_relabelling_gives_a_subset_cluster_istios_labels() -> None:
    series = relabel({"__name__": "envoy_cluster_upstream_rq", "envoy_response_code": "503",
                      "envoy_cluster_name": "inbound|9080|v2|reviews_shop_svc_cluster_local"})
    assert series == {
        "__name__": "envoy_cluster_upstream_rq", "envoy_response_code": "503",
        "envoy_cluster_name": "inbound|9080|v2|reviews_shop_svc_cluster_local",
        "reporter": "destination", "response_code": "503",
        "destination_workload": "reviews-v2", "destination_workload_namespace": "shop",
        "destination_service_name": "reviews", "destination_service_namespace": "shop",
        "destination_service": "reviews.shop.svc.cluster.local", "destination_version": "v2",
        "destination_app": "reviews", "destination_canonical_service": "reviews",
        "destination_canonical_revision": "v2"}
    caller = relabel({"__name__": "envoy_cluster_upstream_rq_time_bucket", "le": "5",
                      "envoy_cluster_name": "outbound|9080|v1|reviews.shop.svc.cluster.local"})
    assert caller["__name__"] == "istio_request_duration_milliseconds_bucket"
    assert (caller["reporter"], caller["destination_workload"], caller["le"]) == (
        "source", "reviews-v1", "5")
    assert "response_code" not in caller


def test_a_waypoints_series_report_as_the_waypoint_with_the_destination_labels() -> None:
    cluster = "inbound-vip|9080|v2|reviews_shop_svc_cluster_local"
    series = relabel({"__name__": "envoy_cluster_upstream_rq", "envoy_response_code": "503",
                      "envoy_cluster_name": cluster})
    sidecar = relabel({"__name__": "envoy_cluster_upstream_rq", "envoy_response_code": "503",
                       "envoy_cluster_name": "inbound|9080|v2|reviews_shop_svc_cluster_local"})
    assert series["reporter"] == "waypoint"
    assert {k: v for k, v in series.items() if k not in ("reporter", "envoy_cluster_name")} \
        == {k: v for k, v in sidecar.items() if k not in ("reporter", "envoy_cluster_name")}
    latency = relabel({"__name__": "envoy_cluster_upstream_rq_time_bucket", "le": "5",
                       "envoy_cluster_name": cluster})
    assert (latency["__name__"], latency["reporter"], latency["destination_workload"]) == (
        "istio_request_duration_milliseconds_bucket", "waypoint", "reviews-v2")


@pytest.mark.parametrize("labels", [
    {"__name__": "envoy_cluster_upstream_rq_time_bucket",
     "envoy_cluster_name": "outbound|9080||reviews_shop_svc_cluster_local"},
    {"__name__": "envoy_http_downstream_rq_xx", "envoy_response_code_class": "5"},
    {"__name__": "envoy_cluster_upstream_rq", "envoy_response_code": "200",
     "envoy_cluster_name": "outbound|443||api.example.com"},
])
def test_relabelling_leaves_other_series_alone(labels: dict[str, str]) -> None:
    assert relabel(labels) == labels


def test_one_rule_records_requests_with_a_zero_for_each_known_code() -> None:
    (group,) = istio_bridge_rule_groups(interval="250ms")
    assert group["name"] == GROUP_NAME and group["interval"] == "250ms"
    (rule,) = group["rules"]
    assert rule["record"] == "istio_requests_total"
    branches = rule["expr"].split(" or ")
    assert branches[0] == 'envoy_cluster_upstream_rq{reporter!=""}'
    assert len(branches) == 1 + len(ZERO_CODES)
    for code, branch in zip(ZERO_CODES, branches[1:], strict=True):
        assert "envoy_cluster_upstream_rq_total" in branch and "* 0" in branch
        assert f'"envoy_response_code", "{code}"' in branch
        assert f'"response_code", "{code}"' in branch
    assert "500" in ZERO_CODES and "503" in ZERO_CODES and "200" in ZERO_CODES


def test_the_patterns_in_the_relabelling_are_the_python_ones() -> None:
    patterns = {c["regex"] for c in istio_bridge_relabel_configs()
                if c["source_labels"] == ["envoy_cluster_name"]}
    name = "outbound|9080|v2|reviews_bookinfo_svc_cluster_local"
    assert sum(1 for p in patterns if re.fullmatch(p, name)) == 2  # its reporter + the rest
    assert CLUSTER_PATTERN.startswith("(outbound|inbound|inbound-vip)")


@pytest.mark.parametrize(("stat", "read"), [
    ("cluster.inbound|9080|v2|reviews_shop_svc_cluster_local.upstream_rq_503", True),
    ("cluster.outbound|9080|v2|reviews_shop_svc_cluster_local.upstream_rq_total", True),
    ("cluster.inbound|9080|v2|reviews_shop_svc_cluster_local.upstream_rq_time", True),
    ("cluster.inbound-vip|9080|v2|reviews_shop_svc_cluster_local.upstream_rq_503", True),
    ("cluster.inbound-vip|9080|v2|reviews_shop_svc_cluster_local.upstream_rq_time", True),
    ("cluster.inbound|9080|v2|reviews_shop_svc_cluster_local.upstream_rq_timeout", False),
    ("cluster.inbound|9080|v2|reviews_shop_svc_cluster_local.upstream_cx_total", False),
    ("http.inbound|9080|v2|reviews_shop_svc_cluster_local.downstream_rq_5xx", False),
])
def test_envoy_is_asked_only_for_the_stats_the_bridge_reads(stat: str, read: bool) -> None:
    assert bool(re.search(ENVOY_STATS_FILTER, stat)) is read


def test_rules_file_is_a_prometheus_rules_document() -> None:
    document = yaml.safe_load(rules_file())
    assert set(document) == {"groups"}
    assert "interval" not in document["groups"][0]
    assert len(document["groups"][0]["rules"]) == 1

"""The Envoy -> Istio recording rules, as data (Prometheus runs them in integration)."""

from __future__ import annotations

import re

import pytest
import yaml

from reconciler.metrics.recording_rules import (
    CLUSTER_PATTERN,
    GROUP_NAME,
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
    ("outbound|9080||reviews_bookinfo_svc_cluster_local", None),
    ("outbound|443||api.example.com", None),
    ("prometheus_stats", None),
    ("outbound|9080|v2|reviews_bookinfo_svc_cluster_local_extra", None),
])
def test_cluster_names(name: str, parsed: tuple[str, int, str, str, str] | None) -> None:
    assert parse_cluster(name) == parsed


def test_rules_cover_both_reporters_and_every_istio_series() -> None:
    (group,) = istio_bridge_rule_groups(interval="5s")
    assert group["name"] == GROUP_NAME and group["interval"] == "5s"
    records = [(r["record"], 'reporter", "source"' in r["expr"]) for r in group["rules"]]
    assert records == [
        ("istio_requests_total", True),
        ("istio_request_duration_milliseconds_bucket", True),
        ("istio_request_duration_milliseconds_sum", True),
        ("istio_request_duration_milliseconds_count", True),
        ("istio_requests_total", False),
        ("istio_request_duration_milliseconds_bucket", False),
        ("istio_request_duration_milliseconds_sum", False),
        ("istio_request_duration_milliseconds_count", False),
    ]
    requests = group["rules"][0]["expr"]
    for label in ("destination_workload", "destination_workload_namespace",
                  "destination_service_name", "destination_service", "reporter",
                  "response_code"):
        assert f'"{label}"' in requests
    assert '"${3}-${2}"' in requests
    assert "envoy_cluster_upstream_rq{envoy_cluster_name=~`outbound" in requests
    assert "inbound" in group["rules"][4]["expr"]
    assert "response_code" not in group["rules"][1]["expr"]


def test_the_pattern_in_the_rules_is_the_python_one() -> None:
    expr = istio_bridge_rule_groups()[0]["rules"][0]["expr"]
    (pattern,) = set(re.findall(r"`([^`]+)`", expr))
    assert re.fullmatch(pattern, "outbound|9080|v2|reviews_bookinfo_svc_cluster_local")
    assert not re.fullmatch(pattern, "inbound|9080|v2|reviews_bookinfo_svc_cluster_local")
    assert CLUSTER_PATTERN.startswith("(outbound|inbound)")


def test_rules_file_is_a_prometheus_rules_document() -> None:
    document = yaml.safe_load(rules_file())
    assert set(document) == {"groups"}
    assert "interval" not in document["groups"][0]
    assert len(document["groups"][0]["rules"]) == 8

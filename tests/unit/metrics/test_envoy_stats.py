"""Computing the builtin checks from Envoy's own stats: parsing, windows, quantiles."""

from __future__ import annotations

import math

import pytest

from meshdsl.model.canary import MetricCheck
from reconciler.delivery.queries import MetricQuery, metric_queries
from reconciler.metrics.envoy_stats import (
    EnvoyStatsSource,
    histogram_quantile,
    parse_exposition,
    window,
)
from reconciler.ports import MetricsError, MetricsSource
from tests.unit.delivery.scenario import make_plan

V2_IN = "inbound|9080|v2|reviews_shop_svc_cluster_local"
V2_OUT = "outbound|9080|v2|reviews_shop_svc_cluster_local"
V1_IN = "inbound|9080|v1|reviews_shop_svc_cluster_local"
BOUNDS = ["0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "+Inf"]


def exposition(counts: dict[str, tuple[int, int]], latency: dict[str, list[int]]) -> str:
    """Envoy-like text: per cluster (2xx, 5xx) responses and cumulative bucket counts."""
    lines = ["# TYPE envoy_cluster_upstream_rq_xx counter"]
    for cluster, (ok, bad) in counts.items():
        lines.append(f'envoy_cluster_upstream_rq_xx{{envoy_response_code_class="2",'
                     f'envoy_cluster_name="{cluster}"}} {ok}')
        lines.append(f'envoy_cluster_upstream_rq_xx{{envoy_response_code_class="5",'
                     f'envoy_cluster_name="{cluster}"}} {bad}')
        lines.append(f'envoy_cluster_upstream_rq_total{{envoy_cluster_name="{cluster}"}} '
                     f"{ok + bad}")
    lines.append("# TYPE envoy_cluster_upstream_rq_time histogram")
    for cluster, buckets in latency.items():
        for bound, count in zip(BOUNDS, buckets, strict=True):
            lines.append(f'envoy_cluster_upstream_rq_time_bucket{{envoy_cluster_name='
                         f'"{cluster}",le="{bound}"}} {count}')
    lines.append('envoy_server_live{} 1')
    return "\n".join(lines) + "\n"


def query(builtin: str, interval: str = "1m") -> MetricQuery:
    plan = make_plan(checks=[MetricCheck(name="x", builtin=builtin, interval=interval)]
                     if builtin != "request-count" else [MetricCheck(name="y", query="1")])
    (found,) = [q for q in metric_queries(plan) if q.builtin == builtin]
    return found


def test_parser_reads_labels_with_escapes_and_ignores_comments() -> None:
    samples = parse_exposition('# HELP x y\nm{a="q\\"uo\\\\te",b="x|y"} 3 1700000000\n'
                               "plain 4.5\n\n")
    assert samples == {("m", (("a", 'q"uo\\te'), ("b", "x|y"))): 3.0, ("plain", ()): 4.5}
    with pytest.raises(MetricsError, match="line 1"):
        parse_exposition("m{a=1} 3")


def test_window_sums_the_canary_clusters_of_one_reporter() -> None:
    before = parse_exposition(exposition({V2_IN: (10, 0), V2_OUT: (10, 0), V1_IN: (5, 5)},
                                         {}))
    after = parse_exposition(exposition({V2_IN: (90, 20), V2_OUT: (91, 21),
                                         V1_IN: (50, 50)}, {}))
    win = window(before, after, query("request-success-rate"))
    assert (win.responses, win.errors) == (100, 20)
    source = window(before, after, query("request-success-rate"), reporter="source")
    assert (source.responses, source.errors) == (102, 21)


def test_counter_reset_counts_from_zero() -> None:
    before = parse_exposition(exposition({V2_IN: (500, 10)}, {}))
    after = parse_exposition(exposition({V2_IN: (40, 2)}, {}))
    assert window(before, after, query("request-count")).responses == 42


@pytest.mark.parametrize(("buckets", "q", "expected"), [
    ([(10, 0), (25, 100), (math.inf, 100)], 0.99, 10 + 15 * 0.99),
    ([(0.5, 0), (1, 0), (5, 50), (10, 100), (math.inf, 100)], 0.5, 5.0),
    ([(10, 0), (25, 90), (math.inf, 100)], 0.99, 25.0),
    ([(10, 0), (math.inf, 0)], 0.99, None),
    ([], 0.99, None),
    ([(math.inf, 10)], 0.99, None),
])
def test_histogram_quantile_like_prometheus(buckets: list[tuple[float, float]], q: float,
                                            expected: float | None) -> None:
    result = histogram_quantile(q, buckets)
    assert result == (pytest.approx(expected) if expected is not None else None)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_source_answers_from_a_window_of_scrapes() -> None:
    clock = Clock()
    pages = iter([
        exposition({V2_IN: (100, 0)}, {V2_IN: [0, 0, 0, 0, 0, 0, 100, 100, 100, 100, 100]}),
        exposition({V2_IN: (180, 20)},
                   {V2_IN: [0, 0, 0, 0, 0, 50, 150, 190, 200, 200, 200]}),
    ])
    source = EnvoyStatsSource(["http://127.0.0.1:1"], clock=clock,
                              fetch=lambda url: next(pages))
    assert isinstance(source, MetricsSource)
    assert source.measure(query("request-success-rate")) is None  # no window yet
    clock.now = 61.0
    assert source.measure(query("request-success-rate")) == 80.0
    assert source.measure(query("request-count")) == 100
    p99 = source.measure(query("request-duration"))
    # window buckets: le=50: 50, 100: 50, 250: 90, 500: 100 -> rank 99 in (250, 500]
    assert p99 == pytest.approx(250 + 250 * (99 - 90) / 10)


def test_a_plan_judged_on_its_waypoint_reads_the_waypoints_clusters() -> None:
    """In an ambient namespace the workloads have no sidecar: the plan (reporter
    ``waypoint``) is judged on the waypoint's ``inbound-vip`` clusters, whatever view the
    source reads for the other plans."""
    clock = Clock()
    waypoint = "inbound-vip|9080|v2|reviews_shop_svc_cluster_local"
    pages = iter([exposition({waypoint: (10, 0), V2_IN: (10, 0)}, {}),
                  exposition({waypoint: (70, 40), V2_IN: (10, 0)}, {})])
    source = EnvoyStatsSource(["http://a"], clock=clock, fetch=lambda url: next(pages))
    plan = make_plan(checks=[MetricCheck(name="x", builtin="request-success-rate")])
    (ambient,) = [q for q in metric_queries(plan.model_copy(update={"reporter": "waypoint"}))
                  if q.builtin == "request-success-rate"]
    assert 'reporter="waypoint"' in ambient.promql and ambient.reporter == "waypoint"
    source.sample()
    clock.now = 61.0
    assert source.measure(ambient) == 60.0
    assert source.measure(query("request-success-rate")) is None  # the sidecar saw nothing


def test_source_without_traffic_has_no_success_rate() -> None:
    clock = Clock()
    page = exposition({V2_IN: (7, 1)}, {})
    source = EnvoyStatsSource(["http://a"], clock=clock, fetch=lambda url: page)
    source.sample()
    clock.now = 30.0
    assert source.measure(query("request-success-rate")) is None
    assert source.measure(query("request-count")) == 0
    assert source.measure(query("request-duration")) is None


def test_source_refuses_custom_promql() -> None:
    source = EnvoyStatsSource(["http://a"], fetch=lambda url: "")
    custom = metric_queries(make_plan(checks=[MetricCheck(name="c", query="sum(up)")],
                                      min_requests=0))[0]
    with pytest.raises(MetricsError, match="use a Prometheus source"):
        source.measure(custom)

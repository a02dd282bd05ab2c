"""PromQL templates: Flagger's Istio defaults, safe rendering, the queries a plan needs."""

from __future__ import annotations

import re

import pytest

from meshdsl.model.canary import LatencyP99, MetricCheck, SuccessRate
from reconciler.delivery.errors import PlanError
from reconciler.delivery.queries import (
    REQUEST_DURATION,
    REQUEST_SUCCESS_RATE,
    metric_queries,
    render,
)
from tests.unit.delivery.scenario import make_plan

# Flagger's pkg/metrics/observers/istio.go, whitespace removed.
FLAGGER_SUCCESS_RATE = (
    'sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace='
    '"{{ namespace }}",destination_workload=~"{{ target }}",response_code!~"5.*"}'
    '[{{ interval }}]))/sum(rate(istio_requests_total{reporter="destination",'
    'destination_workload_namespace="{{ namespace }}",destination_workload=~"{{ target }}"}'
    '[{{ interval }}]))*100')
FLAGGER_DURATION = (
    'histogram_quantile(0.99,sum(rate(istio_request_duration_milliseconds_bucket{reporter='
    '"destination",destination_workload_namespace="{{ namespace }}",destination_workload=~'
    '"{{ target }}"}[{{ interval }}]))by(le))')


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text).replace("{{namespace}}", "{{ namespace }}").replace(
        "{{target}}", "{{ target }}").replace("{{interval}}", "{{ interval }}")


def test_builtins_are_flaggers_istio_queries() -> None:
    # the reporter is the destination's sidecar, or the waypoint in an ambient namespace
    assert squash(REQUEST_SUCCESS_RATE).replace("{{reporter}}", "destination") == (
        FLAGGER_SUCCESS_RATE)
    assert squash(REQUEST_DURATION).replace("{{reporter}}", "destination") == FLAGGER_DURATION


def test_render_substitutes_and_tolerates_spacing() -> None:
    assert render("a{{x}}b{{ y }}c{{  x  }}", {"x": "1", "y": "2"}) == "a1b2c1"
    assert render("no variables {here}", {}) == "no variables {here}"


@pytest.mark.parametrize(("template", "values", "message"), [
    ("{{ nope }}", {"x": "1"}, "unknown template variable {{ nope }} (known: x)"),
    ("{{ x }}", {"x": 'a"} or vector(1) #'}, "cannot hold safely"),
    ("{{ x }}", {"x": "a b"}, "cannot hold safely"),
])
def test_render_refuses_unknown_and_unsafe(template: str, values: dict[str, str],
                                           message: str) -> None:
    with pytest.raises(PlanError, match=re.escape(message)):
        render(template, values)


def test_queries_of_a_plan() -> None:
    custom = MetricCheck(
        name="errors-vs-stable", max=0.5, compare_to_stable=True, interval="30s",
        query='sum(rate(app_errors_total{namespace="{{ namespace }}",'
              'app="{{ service }}",version="{{ version }}"}[{{ interval }}]))')
    plan = make_plan(checks=[SuccessRate(min=99), LatencyP99(max_ms=500, interval="5m"),
                             custom])
    queries = metric_queries(plan)
    assert [(q.key, q.role, q.builtin, q.interval) for q in queries] == [
        ("request-count", "canary", "request-count", "1m"),
        ("request-success-rate", "canary", "request-success-rate", "1m"),
        ("request-duration", "canary", "request-duration", "5m"),
        ("errors-vs-stable", "canary", None, "30s"),
        ("errors-vs-stable@stable", "stable", None, "30s")]
    count, rate, p99, canary, stable = queries
    assert 'destination_workload_namespace="shop"' in rate.promql
    assert 'destination_workload=~"reviews-v2"' in rate.promql and "[1m]" in rate.promql
    assert "[5m]" in p99.promql and p99.workload == "reviews-v2"
    assert "increase(" in count.promql
    assert canary.promql == ('sum(rate(app_errors_total{namespace="shop",app="reviews",'
                             'version="v2"}[30s]))')
    assert 'version="v1"' in stable.promql and stable.version == "v1"
    assert stable.interval_seconds == 30


def test_no_request_count_without_checks_or_minimum() -> None:
    assert metric_queries(make_plan(checks=[])) == ()
    assert [q.key for q in metric_queries(make_plan(min_requests=0))] == [
        "request-success-rate", "request-duration"]


def test_duplicate_check_names_are_refused() -> None:
    with pytest.raises(PlanError, match="two checks named 'request-success-rate'"):
        metric_queries(make_plan(checks=[SuccessRate(), SuccessRate(min=90)]))
    with pytest.raises(PlanError, match="two checks named 'request-count'"):
        metric_queries(make_plan(checks=[MetricCheck(name="request-count", query="x")]))

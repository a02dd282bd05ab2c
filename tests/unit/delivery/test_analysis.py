"""Verdicts per check: value against threshold, no data, min requests, compare to stable."""

from __future__ import annotations

import math

import pytest

from meshdsl.model.canary import LatencyP99, MetricCheck, SuccessRate
from reconciler.delivery.analysis import Analysis, CheckResult, Verdict, evaluate, gate_results
from tests.unit.delivery.scenario import make_plan

RATE = SuccessRate(min=99)
P99 = LatencyP99(max_ms=500)
DELTA = MetricCheck(name="p99-vs-stable", builtin="request-duration", max=50,
                    compare_to_stable=True)
FLOOR_DELTA = MetricCheck(name="rate-vs-stable", builtin="request-success-rate", min=-1,
                          compare_to_stable=True)
INFO = MetricCheck(name="info", query="sum(up)")

CASES = [
    ("rate above min", RATE, {"request-success-rate": 99.5}, Verdict.PASS, "99.5 >= 99"),
    ("rate at min passes", RATE, {"request-success-rate": 99.0}, Verdict.PASS, "99 >= 99"),
    ("rate below min", RATE, {"request-success-rate": 98.9}, Verdict.FAIL, "98.9 < min 99"),
    ("p99 below max", P99, {"request-duration": 499}, Verdict.PASS, "499 <= 500"),
    ("p99 above max", P99, {"request-duration": 501}, Verdict.FAIL, "501 > max 500"),
    ("missing value", P99, {}, Verdict.NO_DATA, "no data for the canary"),
    ("None value", P99, {"request-duration": None}, Verdict.NO_DATA, "no data"),
    ("NaN is no data", RATE, {"request-success-rate": math.nan}, Verdict.NO_DATA, "no data"),
    ("inf is no data", P99, {"request-duration": math.inf}, Verdict.NO_DATA, "no data"),
    ("delta within", DELTA, {"p99-vs-stable": 180, "p99-vs-stable@stable": 150},
     Verdict.PASS, "180 - stable 150 = 30 <= 50"),
    ("delta beyond", DELTA, {"p99-vs-stable": 210, "p99-vs-stable@stable": 150},
     Verdict.FAIL, "= 60 > max 50"),
    ("delta floor", FLOOR_DELTA, {"rate-vs-stable": 97.5, "rate-vs-stable@stable": 99},
     Verdict.FAIL, "= -1.5 < min -1"),
    ("stable missing", DELTA, {"p99-vs-stable": 180}, Verdict.NO_DATA,
     "no data for the stable version"),
    ("no threshold: informative", INFO, {"info": 3}, Verdict.PASS, "(no threshold)"),
]


@pytest.mark.parametrize(("check", "values", "verdict", "message"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_verdicts(check: MetricCheck, values: dict[str, float | None],
                        verdict: Verdict, message: str) -> None:
    plan = make_plan(checks=[check], min_requests=0)
    (result,) = evaluate(plan, values)
    assert result.verdict is verdict
    assert message in result.message
    assert (result.min, result.max) == (check.min, check.max)


@pytest.mark.parametrize(("count", "verdict"), [(None, Verdict.NO_DATA), (9, Verdict.NO_DATA),
                                                (10, Verdict.PASS), (10_000, Verdict.PASS)])
def test_min_requests_gates_every_check(count: float | None, verdict: Verdict) -> None:
    plan = make_plan(checks=[RATE], min_requests=10)
    counted, rate = evaluate(plan, {"request-count": count, "request-success-rate": 50.0})
    assert counted.name == "request-count" and counted.verdict is verdict
    expected = Verdict.FAIL if verdict is Verdict.PASS else Verdict.NO_DATA
    assert rate.verdict is expected
    if verdict is Verdict.NO_DATA and count is not None:
        assert "not judged: too few requests" in rate.message


def test_overall_verdict_fail_outranks_no_data() -> None:
    fail = CheckResult("a", Verdict.FAIL)
    nodata = CheckResult("b", Verdict.NO_DATA)
    ok = CheckResult("c", Verdict.PASS)
    assert Analysis((ok, nodata, fail)).verdict is Verdict.FAIL
    assert Analysis((ok, nodata)).verdict is Verdict.NO_DATA
    assert Analysis((ok,)).verdict is Verdict.PASS
    assert Analysis(()).verdict is Verdict.PASS
    assert Analysis((ok, fail)).summary() == "a: "


def test_gates_fail_closed() -> None:
    results = gate_results(["yes", "no", "silent"], {"yes": True, "no": False},
                           kind="confirm-promotion")
    assert [(r.name, r.verdict) for r in results] == [
        ("webhook:yes", Verdict.PASS), ("webhook:no", Verdict.FAIL),
        ("webhook:silent", Verdict.FAIL)]
    assert results[2].message == "confirm-promotion webhook no answer"


def test_check_results_round_trip_json() -> None:
    result = CheckResult("x", Verdict.FAIL, 1.5, 2.0, None, 3.0, "m")
    assert CheckResult.from_json(result.to_json()) == result

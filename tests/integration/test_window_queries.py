"""The sequential test's window queries, judged by Prometheus' own PromQL engine
(``promtool test rules``) on series as Prometheus stores them: exact counts since the
stage's start, a series born during the stage counted from 0, no answer across a counter
reset, and the local mesh's scraped Envoy counters preferred to the recorded Istio series
(they are one rule evaluation fresher)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.delivery.queries import window_queries
from tests.unit.delivery.scenario import make_plan

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PLAN = make_plan(analysis="sequential", steps=[20, 50, 100], interval="10m")
LABELS = ('reporter="destination",destination_workload="reviews-v2",'
          'destination_workload_namespace="shop",job="envoy",instance="a"')
STAGE_AT, EVAL_AT = 2, 6  # minutes: the stage began at 2m, judged at 6m
ISTIO, RAW = "istio_requests_total", "envoy_cluster_upstream_rq"
NOT_CHECKED = object()


def series(metric: str, code: str, values: str) -> dict[str, str]:
    return {"series": f'{metric}{{{LABELS},response_code="{code}"}}', "values": values}


def judged() -> list[dict[str, Any]]:
    """The window's (count, success rate) tests at EVAL_AT for a stage begun at STAGE_AT."""
    count, rate = window_queries(PLAN, (EVAL_AT - STAGE_AT) * 60.0)
    return [{"expr": count.promql, "eval_time": f"{EVAL_AT}m"},
            {"expr": rate.promql, "eval_time": f"{EVAL_AT}m"}]


def run_promtool(tmp_path: Path, cases: list[tuple[list[dict[str, str]], Any, Any]]) -> None:
    """Each case: input series, the expected count and success rate (None: no answer)."""
    tests = []
    for inputs, count, rate in cases:
        exprs = judged()
        for expr, value in zip(exprs, (count, rate), strict=True):
            if value is NOT_CHECKED:
                continue
            expr["exp_samples"] = [] if value is None else [{"labels": "{}", "value": value}]
        checked = [e for e, v in zip(exprs, (count, rate), strict=True) if v is not NOT_CHECKED]
        tests.append({"interval": "1m", "input_series": inputs, "promql_expr_test": checked})
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": []}))
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests},
        width=100_000))
    result = subprocess.run(["promtool", "test", "rules", "tests.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr



def test_counts_are_exact_since_the_stage_start(tmp_path: Path) -> None:
    run_promtool(tmp_path, [
        # 7 requests before the stage; 40 during it (a 503 every 5th: 8), not 40 * 4m/4m-ish
        ([series(ISTIO, "200", "0 3 5 13 21 29 37"), series(ISTIO, "503", "0 1 2 4 6 8 10")],
         40, 80),
        # the 503 series appears during the stage: its first sample counts from 0
        ([series(ISTIO, "200", "0 3 5 13 21 29 37"), series(ISTIO, "503", "_ _ _ _ 2 5 8")],
         40, 80),
        # no request during the stage: a count of 0 (the success rate is 0/0, NaN: no data)
        ([series(ISTIO, "200", "5 5 5 5 5 5 5")], 0, NOT_CHECKED),
    ])


def test_a_counter_reset_during_the_stage_gives_no_answer(tmp_path: Path) -> None:
    """A restarted proxy starts its counters over: "now minus then" would be nonsense (and
    could show a healthy canary as failing), so the window says nothing."""
    run_promtool(tmp_path, [
        ([series(ISTIO, "200", "0 100 200 5 10 15 20"),
          series(ISTIO, "503", "0 0 1 1 1 3 5")], None, None),
        # reset and grown past the old value again: still caught (resets())
        ([series(ISTIO, "200", "0 100 200 5 300 400 500"),
          series(ISTIO, "503", "0 0 1 1 1 3 5")], None, None),
    ])


def test_the_scraped_envoy_counters_win_over_the_recorded_series(tmp_path: Path) -> None:
    """On the local mesh both exist with the same labels; the recorded one lags a rule
    evaluation, so the window reads the scraped one (here the recording is a minute late)."""
    run_promtool(tmp_path, [
        ([series(RAW, "200", "0 3 5 13 21 29 37"), series(RAW, "503", "_ _ _ 2 4 6 8"),
          series(ISTIO, "200", "0 0 3 5 13 21 29"), series(ISTIO, "503", "0 0 0 0 2 4 6")],
         40, 80),
        # no 5xx scraped yet: a rate of 100 from the scraped counters, not the recorded ones
        ([series(RAW, "200", "0 3 5 13 21 29 37"),
          series(ISTIO, "200", "0 0 3 5 13 21 29"), series(ISTIO, "503", "0 0 0 0 0 0 0")],
         32, 100),
    ])

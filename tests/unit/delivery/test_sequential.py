"""The sequential test's statistics on simulated request streams, and its place in the
machine: it aborts between analyses on strong evidence, and never otherwise.

Streams are Bernoulli requests drawn with a fixed seed; the test is looked at after every
"scrape" (a batch of requests), as the rollout driver does. The error bounds checked are
the ones the module promises: false aborts at most alpha when the canary's error rate is at
the accepted rate, quick aborts when it is far above.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from meshdsl.model.canary import LatencyP99, SuccessRate
from reconciler.delivery import machine
from reconciler.delivery.actions import Observations, SetTraffic
from reconciler.delivery.errors import PlanError
from reconciler.delivery.phases import Phase, RolloutState
from reconciler.delivery.queries import WINDOW_PREFIX, window_queries
from reconciler.delivery.sequential import SequentialTest, evidence, for_plan, observed
from tests.unit.delivery.scenario import make_plan

SEQUENTIAL = make_plan(analysis="sequential", steps=[20, 50, 100], interval="30s")


def stream(rng: random.Random, p: float, *, scrapes: int, per_scrape: int) -> int | None:
    """Requests seen when the test first aborts on a stream with error rate ``p``
    (None: it never did within ``scrapes`` looks)."""
    test = for_plan(SEQUENTIAL, stages=1)
    requests = errors = 0
    for _ in range(scrapes):
        errors += sum(rng.random() < p for _ in range(per_scrape))
        requests += per_scrape
        if test.judge(requests, errors).abort:
            return requests
    return None


def test_the_plan_threshold_sets_the_hypotheses() -> None:
    test = for_plan(SEQUENTIAL, stages=3)
    assert test.p0 == pytest.approx(0.01) and test.p1 == pytest.approx(0.06)
    assert test.alternatives == pytest.approx((0.06, 0.12, 0.24, 0.48))
    assert test.alpha == pytest.approx(0.01 / 3)
    assert test.threshold == pytest.approx(math.log(300))
    strict = for_plan(make_plan(checks=[SuccessRate(min=99.9)]), stages=1)
    assert strict.p0 == pytest.approx(0.001) and strict.p1 == pytest.approx(0.051)
    lax = SequentialTest(p0=0.2, p1=0.4, alpha=0.01)
    assert lax.alternatives == (0.4,)


def test_type_one_error_at_the_accepted_rate_stays_below_alpha() -> None:
    """The worst case for a false abort: the canary fails exactly at the accepted rate,
    and the test looks after every 10 requests, 300 times."""
    rng = random.Random(1)
    runs = 600
    aborted = sum(stream(rng, 0.01, scrapes=300, per_scrape=10) is not None
                  for _ in range(runs))
    # alpha = 1%; three standard deviations of slack for the sampling of 600 runs
    assert aborted / runs <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / runs), aborted


def test_a_healthy_canary_is_not_aborted_in_50_rollouts() -> None:
    """50 rollouts of three stages, a healthy canary (0.1% errors, ten times better than
    accepted), 2,000 requests a stage looked at every 20: no false abort at all."""
    rng = random.Random(2)
    aborts = sum(any(stream(rng, 0.001, scrapes=100, per_scrape=20) is not None
                     for _ in range(3)) for _ in range(50))
    assert aborts <= 1, aborts
    assert aborts == 0


def test_type_two_error_a_canary_failing_20_percent_is_caught_within_60_requests() -> None:
    rng = random.Random(3)
    seen = [stream(rng, 0.2, scrapes=30, per_scrape=5) for _ in range(300)]
    caught = [n for n in seen if n is not None]
    assert len(caught) / len(seen) >= 0.99, seen.count(None)
    assert sorted(caught)[len(caught) // 2] <= 30  # median requests to the abort
    assert sorted(caught)[int(0.99 * len(caught)) - 1] <= 60


def single_alternative_llr(test: SequentialTest, requests: int, errors: int) -> float:
    """Wald's SPRT against ``p1`` alone (what the mixture replaced)."""
    return (errors * math.log(test.p1 / test.p0)
            + (requests - errors) * math.log((1 - test.p1) / (1 - test.p0)))


def requests_to_abort(rng: random.Random, p: float, llr: object, threshold: float
                      ) -> int:
    requests = errors = 0
    while requests < 5000:
        requests += 1
        errors += rng.random() < p
        if llr(requests, errors) >= threshold:  # type: ignore[operator]
            return requests
    return requests


def test_the_mixture_catches_large_failures_sooner_than_one_alternative() -> None:
    """Same streams, looked at after every request: at a 20% error rate the mixture over
    6/12/24/48% needs at least 10% fewer requests on average than Wald's test against 6%
    alone (~17.5 against ~21), and it is still valid — every term is a supermartingale at
    ``p0``, so their mean is one (the type I test above runs the mixture)."""
    test = for_plan(SEQUENTIAL, stages=3)

    def single(n: int, e: int) -> float:
        return single_alternative_llr(test, n, e)

    for rate in (0.2, 0.3):
        mixture = [requests_to_abort(random.Random(seed), rate, test.llr, test.threshold)
                   for seed in range(1500)]
        wald = [requests_to_abort(random.Random(seed), rate, single, test.threshold)
                for seed in range(1500)]
        assert sum(mixture) <= 0.9 * sum(wald), (rate, sum(mixture) / 1500, sum(wald) / 1500)
    # at exactly p1 the price is small: at most 20% more requests
    mixture = [requests_to_abort(random.Random(seed), 0.06, test.llr, test.threshold)
               for seed in range(800)]
    wald = [requests_to_abort(random.Random(seed), 0.06, single, test.threshold)
            for seed in range(800)]
    assert sum(mixture) <= 1.2 * sum(wald), (sum(mixture) / 800, sum(wald) / 800)


def test_evidence_from_a_count_and_a_success_rate() -> None:
    test = SequentialTest(p0=0.01, p1=0.06, alpha=0.01)
    assert not evidence(test, count=None, success_rate=None).abort
    assert not evidence(test, count=0, success_rate=100).abort
    assert not evidence(test, count=1000, success_rate=99.5).abort
    bad = evidence(test, count=40, success_rate=80)
    assert bad.abort and bad.errors == pytest.approx(8)
    assert "8 of 40 requests failed (20.0%)" in bad.summary()
    nan = observed(test, {WINDOW_PREFIX + "request-count": 40,
                          WINDOW_PREFIX + "request-success-rate": float("nan")})
    assert not nan.abort and nan.requests == 0


def test_bad_hypotheses_and_plans_without_a_success_rate_are_plan_errors() -> None:
    with pytest.raises(PlanError, match="p0 < p1"):
        SequentialTest(p0=0.1, p1=0.05, alpha=0.01)
    with pytest.raises(PlanError, match="needs a success-rate check"):
        machine.start(make_plan(analysis="sequential", checks=[LatencyP99(max_ms=300)]))


# --- in the machine ---------------------------------------------------------------------


def at_first_stage(plan: object = SEQUENTIAL) -> RolloutState:
    state, _ = machine.start(plan, "r1", 0.0)  # type: ignore[arg-type]
    state, _ = machine.step(state, plan, Observations(), 0.0)  # type: ignore[arg-type]
    assert state.phase is Phase.PROGRESSING and state.traffic.canary_weight == 20
    return state


def window(count: float, success_rate: float) -> dict[str, float | None]:
    return {WINDOW_PREFIX + "request-count": count,
            WINDOW_PREFIX + "request-success-rate": success_rate}


def test_between_analyses_the_machine_asks_for_the_stage_window() -> None:
    state = at_first_stage()
    wanted = machine.needs(state, SEQUENTIAL, 4.2)
    assert [q.key for q in wanted.queries] == [WINDOW_PREFIX + "request-count",
                                               WINDOW_PREFIX + "request-success-rate"]
    assert all(q.interval == "4200ms" for q in wanted.queries)
    assert all("offset 4200ms" in q.promql for q in wanted.queries)
    assert wanted.queries == window_queries(SEQUENTIAL, 4.2)
    # at the interval, the ordinary analysis
    assert "request-success-rate" in {q.key for q in machine.needs(state, SEQUENTIAL, 30.0)
                                      .queries}
    # the interval mode asks for nothing between analyses
    interval_plan = replace_plan(analysis="interval")
    assert machine.needs(at_first_stage(interval_plan), interval_plan, 4.2).queries == ()


def replace_plan(**changes: object) -> object:
    return SEQUENTIAL.model_copy(update=changes)


def test_strong_evidence_rolls_back_before_the_interval() -> None:
    state = at_first_stage()
    state2, actions = machine.step(state, SEQUENTIAL,
                                   Observations(metrics=window(40, 80.0)), 1.5)
    assert state2.phase is Phase.ROLLING_BACK
    assert state2.traffic.weights == {"v1": 100, "v2": 0}
    assert any(isinstance(a, SetTraffic) for a in actions)
    assert "sequential test: 8 of 40 requests failed" in state2.reason
    assert state2.last_analysis[0].name == "sequential-error-rate"
    done, _ = machine.step(state2, SEQUENTIAL, Observations(), 1.6)
    assert done.phase is Phase.FAILED


def test_weak_evidence_changes_nothing_and_persists_nothing() -> None:
    state = at_first_stage()
    for metrics in (window(40, 99.0), window(3, 66.7), {}):
        same, actions = machine.step(state, SEQUENTIAL, Observations(metrics=metrics), 2.0)
        assert same == state and actions == []


def test_the_interval_mode_ignores_the_window_even_when_it_is_damning() -> None:
    plan = replace_plan(analysis="interval")
    state = at_first_stage(plan)
    same, actions = machine.step(state, plan, Observations(metrics=window(400, 50.0)), 2.0)  # type: ignore[arg-type]
    assert same == state and actions == []


def test_stages_without_canary_traffic_are_not_watched() -> None:
    state = replace(at_first_stage(), traffic=replace(at_first_stage().traffic,
                                                      canary_weight=0, header_route=True))
    assert machine.needs(state, SEQUENTIAL, 2.0).queries == ()

"""Sequential analysis: judge a canary's error count on every scrape, abort on strong
evidence instead of waiting for the interval.

The interval analysis (``analysis.py``) looks once per interval at a success rate and
needs ``max_failed_checks`` bad intervals before it rolls back. With a v2 that fails 20%
of its requests, every one of those intervals sends failures to users. A *sequential*
test looks at the evidence as it arrives and stops as soon as it is conclusive, with an
error guarantee that holds however often it is looked at.

The test (a mixture SPRT, open-ended, one-sided; Ville's inequality makes it "always
valid"): the canary's requests since its stage began are ``n`` Bernoulli trials with ``e``
errors (5xx). The plan's success-rate threshold gives the error rate it accepts, ``p0 = 1 -
min/100``; the smallest rate called bad is ``p1`` (``max(2*p0, p0 + 0.05)``, at most 0.5).
Against each alternative ``q`` of the grid ``p1, 2*p1, 4*p1, ...`` (up to 0.5) the
likelihood ratio is

    LR_q = (q/p0)^e * ((1 - q)/(1 - p0))^(n - e)

and the stage aborts when their mean reaches ``1/alpha`` (``LLR = ln(mean LR_q) ≥
ln(1/alpha)``). When the true error rate is at most ``p0`` each ``LR_q`` is a non-negative
supermartingale, so is their mean, and by Ville's inequality it ever reaches ``1/alpha``
with probability at most ``alpha`` — whether it is checked after every request or every
scrape. The grid buys speed against large failures: at a 20% error rate (``p0`` = 1%) the
abort comes after ~17 requests on average instead of the ~21 a single ``p1 = 6%`` needs,
at the price of ~10% more requests at exactly 6% (``tests/unit/delivery/test_sequential.py``).
``alpha`` is the plan's false-abort budget split evenly across its stages.
The test only ever aborts: a stage is still promoted by the interval analysis, so a
healthy canary is never rushed.

What it assumes (said in the README): requests are independent with one error rate during
a stage (no bursts, no slow drift within it); counts are the canary's own (destination
reporter); the success-rate threshold expresses the error rate you accept. The counts are
exact (counter values now minus at the stage's start, ``queries.window_queries``).
Pure: no clock (``now`` is passed in), no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from meshdsl.model.canary import CanaryPlan
from reconciler.delivery.errors import PlanError
from reconciler.delivery.queries import REQUEST_COUNT_KEY, WINDOW_PREFIX

__all__ = [
    "FALSE_ABORT_RATE",
    "Evidence",
    "SequentialTest",
    "evidence",
    "for_plan",
    "observed",
]

FALSE_ABORT_RATE = 0.01
"""The chance, per rollout, that the sequential test aborts a canary whose error rate is
within the plan's threshold (split across the stages)."""

_MIN_P0 = 1e-4  # a 100% success-rate threshold still needs a non-zero null rate


@dataclass(frozen=True)
class SequentialTest:
    """H0: error rate ≤ ``p0`` (acceptable) against H1: error rate ≥ ``p1`` (bad), as a
    mixture over the alternatives ``p1, 2*p1, 4*p1, ...`` (≤ 0.5)."""

    p0: float
    p1: float
    alpha: float

    def __post_init__(self) -> None:
        if not 0 < self.p0 < self.p1 < 1:
            raise PlanError(f"sequential test needs 0 < p0 < p1 < 1 (p0={self.p0:g}, "
                            f"p1={self.p1:g})")
        if not 0 < self.alpha < 1:
            raise PlanError(f"sequential test needs 0 < alpha < 1 (alpha={self.alpha:g})")

    @property
    def threshold(self) -> float:
        """The log likelihood ratio at which the test aborts: ``ln(1/alpha)``."""
        return math.log(1.0 / self.alpha)

    @property
    def alternatives(self) -> tuple[float, ...]:
        """The bad error rates mixed with equal weights: ``p1`` doubled while ≤ 0.5."""
        out = [self.p1]
        while out[-1] * 2 <= 0.5:
            out.append(out[-1] * 2)
        return tuple(out)

    def llr(self, requests: float, errors: float) -> float:
        """Log of the mixture likelihood ratio (mean over :attr:`alternatives`) of H1 to
        H0 after ``requests`` with ``errors`` failed."""
        errors = min(max(errors, 0.0), max(requests, 0.0))
        good = max(requests, 0.0) - errors
        terms = [errors * math.log(q / self.p0) + good * math.log((1 - q) / (1 - self.p0))
                 for q in self.alternatives]
        top = max(terms)
        return top + math.log(sum(math.exp(t - top) for t in terms) / len(terms))

    def judge(self, requests: float | None, errors: float | None) -> Evidence:
        """The evidence in these counts (None: no data yet, nothing decided)."""
        if requests is None or errors is None or requests <= 0:
            return Evidence(0.0, 0.0, 0.0, self.threshold, abort=False)
        value = self.llr(requests, errors)
        return Evidence(requests, errors, value, self.threshold,
                        abort=value >= self.threshold)


@dataclass(frozen=True)
class Evidence:
    """One look at a stage's counts: the log likelihood ratio against its threshold."""

    requests: float
    errors: float
    llr: float
    threshold: float
    abort: bool

    def summary(self) -> str:
        rate = 100.0 * self.errors / self.requests if self.requests else 0.0
        return (f"sequential test: {self.errors:.0f} of {self.requests:.0f} requests failed "
                f"({rate:.1f}%), log likelihood ratio {self.llr:.2f} "
                f"{'>=' if self.abort else '<'} {self.threshold:.2f}")


def for_plan(plan: CanaryPlan, *, stages: int, alpha: float = FALSE_ABORT_RATE
             ) -> SequentialTest:
    """The test a plan's success-rate check implies, with ``alpha`` split over ``stages``."""
    rates = [c.min for c in plan.checks
             if c.builtin == "request-success-rate" and c.min is not None]
    if not rates:
        raise PlanError(f"canary {plan.namespace}/{plan.service}: analysis='sequential' "
                        "needs a success-rate check (SuccessRate(...)) to know which error "
                        "rate is acceptable")
    p0 = max(_MIN_P0, 1.0 - max(rates) / 100.0)
    p1 = min(0.5, max(2 * p0, p0 + 0.05))
    if p1 <= p0:
        raise PlanError(f"canary {plan.namespace}/{plan.service}: a success-rate threshold "
                        f"of {max(rates):g}% leaves no error rate to call bad; the "
                        "sequential test needs a threshold above 50%")
    return SequentialTest(p0=p0, p1=p1, alpha=alpha / max(1, stages))


def evidence(test: SequentialTest, *, count: float | None, success_rate: float | None
             ) -> Evidence:
    """Judge a stage from a request count and a success rate (percent) over the same
    window — the two builtin measurements every metrics source already answers."""
    if count is None or success_rate is None:
        return test.judge(None, None)
    return test.judge(count, count * (100.0 - success_rate) / 100.0)


def observed(test: SequentialTest, metrics: Mapping[str, float | None]) -> Evidence:
    """Judge the answers to :func:`~reconciler.delivery.queries.window_queries`."""
    count = metrics.get(WINDOW_PREFIX + REQUEST_COUNT_KEY)
    rate = metrics.get(WINDOW_PREFIX + "request-success-rate")
    if rate is not None and math.isnan(rate):
        rate = None
    return evidence(test, count=count, success_rate=rate)

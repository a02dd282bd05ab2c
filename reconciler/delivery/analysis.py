"""Verdicts: turn measured values into PASS, FAIL or NO_DATA, one check at a time.

**No data is not a pass.** A missing value, a NaN (Prometheus' 0/0) or too few requests to
mean anything all give NO_DATA, which halts a rollout instead of advancing it — a canary
that receives no traffic must never be promoted for lack of complaints (Flagger's "no
values found" rule).

Thresholds: ``min`` is a floor and ``max`` a ceiling on the value. With
``compare_to_stable`` the judged value is the *difference* canary - stable, so the
thresholds are allowed deltas: ``min=-1`` on the success rate lets the canary be at most one
point below stable; ``max=50`` on the p99 lets it be at most 50 ms slower.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from meshdsl.model.canary import CanaryPlan, MetricCheck
from reconciler.delivery.queries import REQUEST_COUNT_KEY, stable_key

__all__ = ["Analysis", "CheckResult", "Verdict", "evaluate", "gate_results"]


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no-data"


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome, with what it was compared against (for status and the sim)."""

    name: str
    verdict: Verdict
    value: float | None = None
    stable_value: float | None = None
    min: float | None = None
    max: float | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "verdict": self.verdict.value, "value": self.value,
                "stable_value": self.stable_value, "min": self.min, "max": self.max,
                "message": self.message}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckResult:
        return cls(name=str(data["name"]), verdict=Verdict(data["verdict"]),
                   value=_number(data.get("value")),
                   stable_value=_number(data.get("stable_value")),
                   min=_number(data.get("min")), max=_number(data.get("max")),
                   message=str(data.get("message", "")))


@dataclass(frozen=True)
class Analysis:
    """The outcome of one analysis: FAIL if any check failed, else NO_DATA if any had no
    data, else PASS. A definite failure outranks missing data: it is evidence."""

    checks: tuple[CheckResult, ...]

    @property
    def verdict(self) -> Verdict:
        verdicts = {c.verdict for c in self.checks}
        if Verdict.FAIL in verdicts:
            return Verdict.FAIL
        if Verdict.NO_DATA in verdicts:
            return Verdict.NO_DATA
        return Verdict.PASS

    def summary(self) -> str:
        bad = [c for c in self.checks if c.verdict is not Verdict.PASS]
        if not bad:
            return f"{len(self.checks)} check(s) passed" if self.checks else "nothing to check"
        return "; ".join(f"{c.name}: {c.message}" for c in bad)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _judge(check: MetricCheck, value: float, stable: float | None) -> CheckResult:
    judged = value if stable is None else value - stable
    what = _fmt(judged) if stable is None else (
        f"{_fmt(value)} - stable {_fmt(stable)} = {_fmt(judged)}")
    base = CheckResult(check.name, Verdict.PASS, value, stable, check.min, check.max)
    if check.min is not None and judged < check.min:
        return _with(base, Verdict.FAIL, f"{what} < min {_fmt(check.min)}")
    if check.max is not None and judged > check.max:
        return _with(base, Verdict.FAIL, f"{what} > max {_fmt(check.max)}")
    bounds = [f">= {_fmt(check.min)}"] if check.min is not None else []
    bounds += [f"<= {_fmt(check.max)}"] if check.max is not None else []
    return _with(base, Verdict.PASS, f"{what} {' and '.join(bounds) or '(no threshold)'}")


def _with(result: CheckResult, verdict: Verdict, message: str) -> CheckResult:
    return CheckResult(result.name, verdict, result.value, result.stable_value, result.min,
                       result.max, message)


def evaluate(plan: CanaryPlan, values: Mapping[str, float | None]) -> tuple[CheckResult, ...]:
    """Judge every check of ``plan`` on ``values`` (keyed like the plan's metric queries;
    a missing key is no data). The request count, when ``min_requests`` applies, comes
    first; below the minimum every check is NO_DATA — too few requests prove nothing."""
    results: list[CheckResult] = []
    enough = True
    if plan.checks and plan.min_requests > 0:
        count = _number(values.get(REQUEST_COUNT_KEY))
        if count is None:
            enough = False
            results.append(CheckResult(REQUEST_COUNT_KEY, Verdict.NO_DATA,
                                       min=plan.min_requests,
                                       message="no request count for the canary"))
        else:
            enough = count >= plan.min_requests
            verdict = Verdict.PASS if enough else Verdict.NO_DATA
            sign = ">=" if enough else "<"
            results.append(CheckResult(
                REQUEST_COUNT_KEY, verdict, count, min=plan.min_requests,
                message=f"{_fmt(count)} requests {sign} {plan.min_requests} required"))
    for check in plan.checks:
        value = _number(values.get(check.name))
        stable = _number(values.get(stable_key(check.name))) if check.compare_to_stable \
            else None
        if value is None:
            results.append(CheckResult(check.name, Verdict.NO_DATA, None, stable, check.min,
                                       check.max, "no data for the canary"))
        elif check.compare_to_stable and stable is None:
            results.append(CheckResult(check.name, Verdict.NO_DATA, value, None, check.min,
                                       check.max, "no data for the stable version"))
        elif not enough:
            results.append(CheckResult(check.name, Verdict.NO_DATA, value, stable, check.min,
                                       check.max, f"{_fmt(value)} not judged: too few "
                                       "requests"))
        else:
            results.append(_judge(check, value, stable))
    return tuple(results)


def gate_results(names: Sequence[str], answers: Mapping[str, bool], *, kind: str
                 ) -> tuple[CheckResult, ...]:
    """Webhook answers as check results (a missing answer is a no: gates fail closed)."""
    out: list[CheckResult] = []
    for name in names:
        ok = answers.get(name) is True
        message = "answered ok" if ok else (
            "no answer" if name not in answers else "answered no")
        out.append(CheckResult(f"webhook:{name}", Verdict.PASS if ok else Verdict.FAIL,
                               message=f"{kind} webhook {message}"))
    return tuple(out)

"""A progressive delivery plan as data: which version to roll out, the weight steps, the
optional header-match and mirror stages, the metric checks and the webhooks.

The plan is run by ``reconciler.delivery``; here it is only validated and stored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from meshdsl.model.base import Declared, Frozen
from meshdsl.model.matching import Match


class Step(Frozen):
    """Send ``weight`` percent to the canary, then wait ``pause`` before judging again."""

    weight: int = Field(ge=0, le=100)
    pause: str | None = None


class HeaderStage(Frozen):
    """Before any weight: only requests matching ``match`` go to the canary."""

    match: Match
    iterations: int = Field(default=1, ge=1)


class MirrorStage(Frozen):
    """Before any weight: a copy of ``percent`` of traffic goes to the canary."""

    percent: float = Field(default=100, ge=0, le=100)
    iterations: int = Field(default=1, ge=1)


class MetricCheck(Frozen):
    """A metric judged at every step. ``builtin`` names one of the standard Istio checks
    (``request-success-rate`` in percent, ``request-duration`` p99 in milliseconds);
    otherwise ``query`` is a PromQL template with ``{{ namespace }}``, ``{{ service }}``,
    ``{{ target }}``, ``{{ stable }}`` and ``{{ interval }}`` variables."""

    name: str
    builtin: Literal["request-success-rate", "request-duration"] | None = None
    query: str | None = None
    min: float | None = None
    max: float | None = None
    interval: str | None = None
    compare_to_stable: bool = False


WebhookKind = Literal["pre-rollout", "rollout", "confirm-rollout", "confirm-promotion",
                      "post-rollout", "rollback", "event"]


class Webhook(Frozen):
    name: str
    url: str
    kind: WebhookKind = "rollout"
    timeout: str = "5s"
    retries: int = Field(default=2, ge=0)
    metadata: dict[str, str] = Field(default_factory=dict)


def SuccessRate(min: float = 99.0, *, interval: str | None = None) -> MetricCheck:
    """The canary's non-5xx share of requests, in percent, must stay at or above ``min``."""
    return MetricCheck(name="request-success-rate", builtin="request-success-rate", min=min,
                       interval=interval)


def LatencyP99(max_ms: float = 500.0, *, interval: str | None = None) -> MetricCheck:
    """The canary's p99 request duration, in milliseconds, must stay at or below ``max_ms``."""
    return MetricCheck(name="request-duration", builtin="request-duration", max=max_ms,
                       interval=interval)


class CanaryPlan(Declared):
    """Move traffic of ``service`` from ``stable`` to ``target`` in ``steps``."""

    service: str
    namespace: str
    target: str
    stable: str
    steps: list[Step] = Field(min_length=1)
    interval: str = "1m"
    analysis: Literal["interval", "sequential"] = "interval"
    """``interval``: judge each stage once per interval (Flagger's and Argo Rollouts'
    way). ``sequential``: also judge the error count on every scrape and roll back as soon
    as the evidence is strong (``reconciler.delivery.sequential``)."""
    header_stage: HeaderStage | None = None
    mirror_stage: MirrorStage | None = None
    checks: list[MetricCheck] = Field(default_factory=list)
    max_failed_checks: int = Field(default=2, ge=1)
    min_requests: int = Field(default=10, ge=0)
    no_data_limit: int = Field(default=3, ge=1)
    webhooks: list[Webhook] = Field(default_factory=list)
    # Whose metrics judge it: the destination's sidecar, or in an ambient namespace the
    # waypoint (Istio's reporter="waypoint"). Set from the namespace's data-plane mode.
    reporter: Literal["destination", "waypoint"] = "destination"

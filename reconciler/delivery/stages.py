"""A canary plan as a flat list of stages — the one thing the state machine counts through.

The plan says "mirror, then header-match, then weights 5 → 10 → 50 → 100"; the machine only
needs "stage *i* of *n*, with this traffic, judged after this wait". Flattening once, here,
keeps the machine free of per-kind branching and makes the persisted ``stage_index``
meaningful: the same plan always yields the same list.

Order is by blast radius: a **mirror** stage first (copies of requests; no user ever sees a
canary answer), then the **header** stage (only requests that opt in reach the canary), then
the **weight** steps (random users). Each mirror/header iteration is one judged stage.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from enum import StrEnum

from meshdsl.model.canary import CanaryPlan
from reconciler.delivery.errors import PlanError

__all__ = ["Stage", "StageKind", "parse_duration", "plan_interval", "stages", "stages_digest"]

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Seconds in a Go/Istio-style duration (``500ms``, ``30s``, ``1m30s``, ``2h``)."""
    pos, total = 0, 0.0
    text = text.strip()
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNIT[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise PlanError(f"{what} {text!r} is not a duration; write e.g. '30s', '1m' or '1m30s'")
    return total


def plan_interval(plan: CanaryPlan) -> float:
    """The analysis interval in seconds: how often a halted stage is judged again."""
    seconds = parse_duration(plan.interval, what=f"canary {plan.service} interval")
    if seconds <= 0:
        raise PlanError(f"canary {plan.service} interval must be more than 0s")
    return seconds


class StageKind(StrEnum):
    MIRROR = "mirror"
    HEADER = "header"
    WEIGHT = "weight"


@dataclass(frozen=True)
class Stage:
    """One judged stage: the traffic it sets and how long it runs before its analysis."""

    kind: StageKind
    weight: int = 0
    wait: float = 60.0
    mirror_percent: float | None = None
    iteration: int = 1
    iterations: int = 1

    @property
    def label(self) -> str:
        if self.kind is StageKind.WEIGHT:
            return f"weight {self.weight}%"
        detail = f" {self.mirror_percent:g}%" if self.kind is StageKind.MIRROR else ""
        return f"{self.kind.value}{detail} {self.iteration}/{self.iterations}"


def stages(plan: CanaryPlan) -> tuple[Stage, ...]:
    """Every stage of the plan in order (mirror iterations, header iterations, steps)."""
    interval = plan_interval(plan)
    out: list[Stage] = []
    if plan.mirror_stage is not None:
        mirror = plan.mirror_stage
        out += [Stage(StageKind.MIRROR, wait=interval, mirror_percent=float(mirror.percent),
                      iteration=i, iterations=mirror.iterations)
                for i in range(1, mirror.iterations + 1)]
    if plan.header_stage is not None:
        header = plan.header_stage
        if header.match.is_catch_all():
            raise PlanError(f"canary {plan.service}: the header stage's match selects every "
                            "request; match a header, e.g. Header('x-canary', exact='1')")
        out += [Stage(StageKind.HEADER, wait=interval, iteration=i,
                      iterations=header.iterations)
                for i in range(1, header.iterations + 1)]
    for index, step in enumerate(plan.steps):
        wait = interval if step.pause is None else parse_duration(
            step.pause, what=f"canary {plan.service} step {index + 1} pause")
        out.append(Stage(StageKind.WEIGHT, weight=step.weight, wait=wait))
    return tuple(out)


def stages_digest(plan: CanaryPlan) -> str:
    """A fingerprint of the stage *shape* (kinds, weights, mirror percent, header match).

    A rollout whose plan changes shape restarts, since its stage index would point at a
    different stage; waits and thresholds are excluded, so tuning them applies in place.
    """
    shape = [(s.kind.value, s.weight, s.mirror_percent, s.iteration) for s in stages(plan)]
    header = (plan.header_stage.match.model_dump(mode="json", exclude_defaults=True)
              if plan.header_stage is not None else None)
    text = json.dumps({"stages": shape, "header": header}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]

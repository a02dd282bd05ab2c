"""Which canaries a new revision would start, restart or drop — decided offline.

The reconciler decides this at run time with :func:`~reconciler.delivery.machine.
restart_reason` against the stored rollout. ``meshctl plan`` has no store, so it asks the
same function about a rollout *as the base revision would have started it*: a new target
or stable, a changed target workload (:func:`~reconciler.delivery.routes.target_digest`)
or a new stage shape restarts it; tuning thresholds or waits does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from meshdsl.model.spec import MeshSpec
from reconciler.delivery.actions import Observations
from reconciler.delivery.machine import restart_reason, start
from reconciler.delivery.routes import target_digest

__all__ = ["CanaryChange", "CanaryEffect", "canary_changes"]


class CanaryEffect(StrEnum):
    START = "start"
    RESTART = "restart"
    RETUNE = "retune"      # same rollout, new thresholds/waits/checks: applied in place
    REMOVE = "remove"


@dataclass(frozen=True)
class CanaryChange:
    effect: CanaryEffect
    namespace: str
    service: str
    target: str
    stable: str
    steps: tuple[int, ...]
    reason: str

    def __str__(self) -> str:
        steps = ", ".join(f"{s}%" for s in self.steps)
        return (f"{self.effect.value} {self.namespace}/{self.service}: {self.target} "
                f"(stable {self.stable}; steps {steps}) — {self.reason}")

    def to_json(self) -> dict[str, Any]:
        return {"effect": self.effect.value, "namespace": self.namespace,
                "service": self.service, "target": self.target, "stable": self.stable,
                "steps": list(self.steps), "reason": self.reason}


def canary_changes(base: MeshSpec | None, head: MeshSpec, *, revision: str = ""
                   ) -> list[CanaryChange]:
    """Canary plans of ``head`` that start or restart a rollout, are retuned, or are gone
    (``base`` ``None``: there was no valid base program; every plan starts)."""
    old = {(p.namespace, p.service): p for p in (base.canaries if base else [])}
    out: list[CanaryChange] = []
    for plan in head.canaries:
        steps = tuple(s.weight for s in plan.steps)
        key = (plan.namespace, plan.service)
        before = old.pop(key, None)
        made = CanaryChange(CanaryEffect.START, plan.namespace, plan.service, plan.target,
                            plan.stable, steps, "")
        if before is None or base is None:
            out.append(_with(made, CanaryEffect.START,
                             f"new canary plan: starts at 100% {plan.stable}"))
            continue
        state, _ = start(before, target_digest=target_digest(base, before))
        why = restart_reason(state, plan, Observations(
            revision=revision or None, target_digest=target_digest(head, plan)))
        if why:
            out.append(_with(made, CanaryEffect.RESTART,
                             f"{why}: starts over at 100% {plan.stable}"))
        elif before != plan:
            out.append(_with(made, CanaryEffect.RETUNE,
                             "checks, waits or hooks changed: applied to the running "
                             "rollout in place"))
    for plan in old.values():
        out.append(CanaryChange(CanaryEffect.REMOVE, plan.namespace, plan.service,
                                plan.target, plan.stable, tuple(s.weight for s in plan.steps),
                                "plan removed: the routes as written take over"))
    return out


def _with(change: CanaryChange, effect: CanaryEffect, reason: str) -> CanaryChange:
    return CanaryChange(effect, change.namespace, change.service, change.target,
                        change.stable, change.steps, reason)

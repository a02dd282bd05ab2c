"""A rollout as a person watching it wants to read it: stage, weights, checks, and *why*.

Argo Rollouts' dashboard shows where a rollout is; the question during an incident is why
it is not moving. :func:`canary_view` answers from the persisted state alone (the clock
passed in): no data for n of m analyses, failed checks n/m, a gate that said no, paused
by an operator, or simply waiting for the next analysis.
"""

from __future__ import annotations

from typing import Any

from reconciler.delivery.analysis import Verdict
from reconciler.delivery.phases import Phase, RolloutState

__all__ = ["canary_view", "why"]


def why(state: RolloutState, now: float) -> str:
    """One line: what the rollout is waiting for, or why it stopped."""
    if state.phase is Phase.PAUSED:
        by = f" ({state.manual})" if state.manual else ""
        return f"paused by an operator{by}; meshctl canary resume continues it"
    if state.phase is Phase.IDLE:
        return "not started"
    if state.phase.terminal or state.phase in (Phase.PROMOTING, Phase.ROLLING_BACK):
        return state.reason or state.phase.value
    if state.phase is Phase.INITIALIZING and not state.rollout_confirmed:
        return "waiting for the confirm-rollout gate to say yes"
    parts = []
    if state.phase is Phase.HALTED:
        if state.no_data_count:
            parts.append(f"no data ({state.no_data_count}/{state.no_data_limit} analyses)")
        failed = [c for c in state.last_analysis if c.verdict is Verdict.FAIL]
        if failed:
            parts.append(f"failed check {', '.join(c.name for c in failed)} "
                         f"({state.failed_checks}/{state.max_failed_checks})")
        if state.reason and (not parts or "gate" in state.reason):
            parts.append(state.reason)
    if state.next_analysis_at is not None:
        wait = max(0.0, state.next_analysis_at - now)
        parts.append(f"next analysis in {wait:.0f} s")
    return "; ".join(parts) or state.reason or "waiting"


def canary_view(state: RolloutState, now: float) -> dict[str, Any]:
    """JSON for the page: one rollout's stage, weights, last checks, reason, timeline."""
    return {
        "namespace": state.namespace, "service": state.service, "target": state.target,
        "stable": state.stable, "phase": state.phase.value, "stage": state.stage_label,
        "stage_index": state.stage_index, "stage_count": state.stage_count,
        "weights": state.traffic.weights, "traffic": state.traffic.describe(),
        "revision": state.revision, "failed_checks": state.failed_checks,
        "max_failed_checks": state.max_failed_checks,
        "checks": [{"name": c.name, "verdict": c.verdict.value, "value": c.value,
                    "min": c.min, "max": c.max, "message": c.message}
                   for c in state.last_analysis],
        "why": why(state, now),
        "timeline": [{"at": e.at, "phase": e.phase.value, "stage": e.stage,
                      "message": e.message} for e in state.timeline][-30:],
    }

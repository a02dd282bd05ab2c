"""What the tests that kill a reconciler mid-rollout (the local e2e, the kube integration)
check of the rollout state, in one place."""

from __future__ import annotations

from reconciler.delivery.phases import Phase, RolloutState


def past_first_step(state: RolloutState | None, target: str) -> RolloutState | None:
    """``state`` when it is a running rollout of ``target`` at its second stage or later."""
    return state if state is not None and state.target == target and \
        state.stage_index >= 1 and not state.phase.terminal else None


def assert_resumed(state: RolloutState, after_kill: RolloutState) -> None:
    """``state``, the finished rollout, is the one stored at the kill carried on to
    promotion: the same start, the same timeline up to the kill, never started again."""
    assert state.phase is Phase.SUCCEEDED, state.reason
    assert state.started_at == after_kill.started_at, "resumed, not started again"
    assert state.timeline[:len(after_kill.timeline)] == after_kill.timeline
    assert not any("restarted" in e.message or f"rollout of {state.target} started" in e.message
                   for e in state.timeline[len(after_kill.timeline):]), state.timeline

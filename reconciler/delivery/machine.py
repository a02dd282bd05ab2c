"""The canary state machine: ``step(state, plan, observations, now) -> (state, actions)``.

Pure and total: no clock, no I/O, no randomness, so every transition is a table test and a
persisted state replays to the same decisions. Transitions (``interval`` = the plan's
analysis interval; *wait* = the stage's pause, or the interval):

==============  ============================================  ===============================
from            when                                          to
==============  ============================================  ===============================
(none)/IDLE     ``start`` / first step                        INITIALIZING, 100% stable
INITIALIZING    confirm-rollout says no                       INITIALIZING, again in interval
INITIALIZING    pre-rollout fails (< max_failed_checks)       INITIALIZING, failed_checks+1
INITIALIZING    gates ok                                      PROGRESSING at stage 1
PROGRESSING,    analysis PASS, more stages                    PROGRESSING at next stage
HALTED          analysis PASS, last stage, confirm ok         PROMOTING, 100% target
                analysis PASS, last stage, confirm says no    HALTED, again in interval
                analysis FAIL (< max_failed_checks)           HALTED, failed_checks+1
                analysis NO_DATA (< no_data_limit in a row)   HALTED, no_data_count+1
any active      failed_checks / no_data_count reach limit     ROLLING_BACK, 100% stable
PROMOTING       next step                                     SUCCEEDED (post-rollout hooks)
ROLLING_BACK    next step                                     FAILED (rollback, post-rollout)
any             new target / stable / target digest, or       INITIALIZING of the new target
                (active only) new stage shape
PROGRESSING,    ``analysis="sequential"``, between analyses:  ROLLING_BACK, 100% stable
HALTED          the stage's error count is strong evidence
                of a bad canary (``sequential.py``)
==============  ============================================  ===============================

Manual commands: ``pause`` (→ PAUSED, nothing is judged), ``resume`` (back, with a fresh
wait), ``promote`` (→ PROMOTING, skipping stages and gates), ``abort`` (→ ROLLING_BACK).
A rollback therefore moves all traffic to stable in the very step that judged the last
allowed failure; with the default ``max_failed_checks=2`` that is one interval after the
first failing check, since failed stages are judged again every interval, not every pause.
"""

from __future__ import annotations

from dataclasses import replace

from meshdsl.model.canary import CanaryPlan
from reconciler.delivery.actions import (
    Action,
    CallWebhook,
    Needs,
    Observations,
    Persist,
    RecordEvent,
    SetTraffic,
    hooks_of,
    webhook_call,
)
from reconciler.delivery.analysis import Analysis, CheckResult, Verdict, evaluate, gate_results
from reconciler.delivery.errors import ManualCommandError, PlanError
from reconciler.delivery.phases import Phase, RolloutState, Traffic
from reconciler.delivery.queries import metric_queries, window_queries
from reconciler.delivery.sequential import for_plan, observed
from reconciler.delivery.stages import Stage, StageKind, plan_interval, stages, stages_digest

__all__ = ["abort", "needs", "pause", "promote", "restart_reason", "resume", "start",
           "step"]

Transition = tuple[RolloutState, list[Action]]
_JUDGED = (Phase.PROGRESSING, Phase.HALTED)


def start(plan: CanaryPlan, revision: str = "", now: float = 0.0, *,
          target_digest: str = "", previous: RolloutState | None = None) -> Transition:
    """Begin a rollout of ``plan.target``: all traffic on stable, gates next. ``previous``
    (a rollout being replaced) only lends its timeline, so status shows the history."""
    shape, now = stages(plan), float(now)
    metric_queries(plan)  # a plan whose templates cannot render fails here, not mid-rollout
    if plan.analysis == "sequential":
        for_plan(plan, stages=len(shape))  # likewise a sequential plan without a threshold
    state = RolloutState(
        namespace=plan.namespace, service=plan.service, target=plan.target,
        stable=plan.stable, phase=Phase.INITIALIZING,
        traffic=Traffic(stable=plan.stable, target=plan.target),
        stages_digest=stages_digest(plan), target_digest=target_digest, revision=revision,
        stage_count=len(shape), stage_label="initializing",
        max_failed_checks=plan.max_failed_checks, no_data_limit=plan.no_data_limit,
        interval=plan_interval(plan),
        rollout_confirmed=not hooks_of(plan, "confirm-rollout"),
        started_at=now, last_transition=now, next_analysis_at=now,
        timeline=previous.timeline if previous is not None else ())
    what = f"rollout of {plan.target} started (stable {plan.stable}"
    what += f", revision {revision})" if revision else ")"
    return _emit(previous, state.note(now, what), plan, what)


def needs(state: RolloutState, plan: CanaryPlan, now: float) -> Needs:
    """What ``step(state, plan, ..., now)`` will judge, so the caller can gather it first."""
    if _watching(state, plan, now) and not restart_reason(state, plan, Observations()):
        return Needs(queries=window_queries(plan, now - state.stage_started_at))
    if (state.phase not in (Phase.INITIALIZING, *_JUDGED) or not _due(state, now)
            or restart_reason(state, plan, Observations())):
        return Needs()
    if state.phase is Phase.INITIALIZING:
        kind = "pre-rollout" if state.rollout_confirmed else "confirm-rollout"
        return Needs(gates=tuple(webhook_call(h, state) for h in hooks_of(plan, kind)))
    kinds = ("rollout", "confirm-promotion") if _last(state) else ("rollout",)
    return Needs(queries=metric_queries(plan),
                 gates=tuple(webhook_call(h, state) for h in hooks_of(plan, *kinds)))


def step(state: RolloutState, plan: CanaryPlan, observations: Observations, now: float
         ) -> Transition:
    """Advance the rollout as far as ``observations`` at time ``now`` allow (one decision)."""
    if (plan.namespace, plan.service) != state.key:
        raise PlanError(f"plan for {plan.namespace}/{plan.service} given to the rollout of "
                        f"{state.namespace}/{state.service}")
    revision = observations.revision or state.revision
    digest = (observations.target_digest if observations.target_digest is not None
              else state.target_digest)
    reason = restart_reason(state, plan, observations)
    if state.phase is Phase.IDLE or reason:
        previous = state.note(now, f"restarted: {reason}") if reason else state
        return start(plan, revision, now, target_digest=digest, previous=previous)
    current = replace(state, max_failed_checks=plan.max_failed_checks,
                      no_data_limit=plan.no_data_limit, interval=plan_interval(plan),
                      revision=revision)
    new, actions = _decide(current, plan, observations, now)
    if new != state and not any(isinstance(a, Persist) for a in actions):
        actions = [Persist(new), *actions]  # e.g. only the revision moved on
    return new, actions


def _decide(state: RolloutState, plan: CanaryPlan, obs: Observations, now: float) -> Transition:
    if state.phase is Phase.PROMOTING:
        message = f"{state.target} serves all traffic"
        done = _moved(state, Phase.SUCCEEDED, now, next_at=None, reason="promoted").note(
            now, message)
        return _emit(state, done, plan, message,
                     notify=_notify(plan, ("post-rollout",), done, message))
    if state.phase is Phase.ROLLING_BACK:
        message = f"rolled back to {state.stable}: {state.reason}"
        done = _moved(state, Phase.FAILED, now, next_at=None, reason=state.reason).note(
            now, message)
        notify = _notify(plan, ("rollback",), state, message)
        notify += _notify(plan, ("post-rollout",), done, message)
        return _emit(state, done, plan, message, severity="warning", notify=notify)
    if _watching(state, plan, now):
        return _watch(state, plan, obs, now)
    if state.phase not in (Phase.INITIALIZING, *_JUDGED) or not _due(state, now):
        return state, []
    if state.phase is Phase.INITIALIZING:
        return _initialize(state, plan, obs, now)
    return _analyze(state, plan, obs, now)


def _watching(state: RolloutState, plan: CanaryPlan, now: float) -> bool:
    """Between two analyses of a stage that sends the canary traffic, under
    ``analysis="sequential"``: the sequential test looks at every tick."""
    return (plan.analysis == "sequential" and state.phase in _JUDGED
            and state.traffic.canary_weight > 0 and not _due(state, now))


def _watch(state: RolloutState, plan: CanaryPlan, obs: Observations, now: float) -> Transition:
    """Roll back at once when the stage's error count is strong evidence; otherwise no
    change (nothing persisted: the next tick looks again with more data)."""
    evidence = observed(for_plan(plan, stages=state.stage_count), obs.metrics)
    if not evidence.abort:
        return state, []
    result = CheckResult("sequential-error-rate", Verdict.FAIL, value=evidence.llr,
                         max=evidence.threshold, message=evidence.summary())
    return _rollback(replace(state, last_analysis=(result,)), plan, now, evidence.summary())


# --- manual commands ------------------------------------------------------------------


def promote(state: RolloutState, now: float) -> Transition:
    """Skip the remaining stages and gates: all traffic to the target now."""
    if state.phase is Phase.PROMOTING:
        return state, []
    _require(state, "promote", allowed=(Phase.INITIALIZING, *_JUDGED, Phase.PAUSED))
    new = _promoting(replace(state, manual="promote", paused_from=None), now,
                     "promoted manually")
    return new, _actions(state, new, "promoted manually (meshctl canary promote)")


def abort(state: RolloutState, now: float) -> Transition:
    """Stop the rollout: all traffic back to stable now, then FAILED."""
    if state.phase is Phase.ROLLING_BACK:
        return state, []
    _require(state, "abort", allowed=(Phase.INITIALIZING, *_JUDGED, Phase.PAUSED,
                                      Phase.PROMOTING))
    new = _rolling_back(replace(state, manual="abort", paused_from=None), now,
                        "aborted manually")
    return new, _actions(state, new, "aborted manually (meshctl canary abort)", "warning")


def pause(state: RolloutState, now: float) -> Transition:
    """Freeze the rollout where it is: traffic unchanged, nothing judged, no gates asked."""
    if state.phase is Phase.PAUSED:
        return state, []
    _require(state, "pause", allowed=(Phase.INITIALIZING, *_JUDGED))
    new = replace(_moved(state, Phase.PAUSED, now, next_at=None, reason="paused manually"),
                  paused_from=state.phase, manual="pause").note(now, "paused manually")
    return new, _actions(state, new, "paused manually (meshctl canary pause)")


def resume(state: RolloutState, now: float) -> Transition:
    """Continue a paused rollout; its stage is judged after a fresh interval."""
    if state.phase is not Phase.PAUSED or state.paused_from is None:
        raise ManualCommandError(f"{state.namespace}/{state.service} is {state.phase.value}, "
                                 "not paused; nothing to resume")
    back = state.paused_from
    next_at = now if back is Phase.INITIALIZING else now + state.interval
    new = replace(_moved(state, back, now, next_at=next_at, reason=""), paused_from=None,
                  manual="resume").note(now, "resumed manually")
    return new, _actions(state, new, "resumed manually (meshctl canary resume)")


# --- transitions ------------------------------------------------------------------------


def _initialize(state: RolloutState, plan: CanaryPlan, obs: Observations, now: float
                ) -> Transition:
    kind = "pre-rollout" if state.rollout_confirmed else "confirm-rollout"
    results = gate_results([h.name for h in hooks_of(plan, kind)], obs.gates, kind=kind)
    if all(r.verdict is Verdict.PASS for r in results):
        if not state.rollout_confirmed:
            new = replace(state, rollout_confirmed=True, next_analysis_at=now, reason="",
                          last_analysis=results)
            return _emit(state, new.note(now, "confirm-rollout: go"), plan,
                         "confirm-rollout: go")
        return _enter(replace(state, last_analysis=results), plan, 0, now,
                      "pre-rollout ok" if results else "initialized")
    summary = Analysis(results).summary()
    if state.rollout_confirmed:  # a failing pre-rollout hook is a failed check
        return _failed(state, plan, now, results, summary)
    return _hold(state, plan, now, results, f"waiting: {summary}")


def _analyze(state: RolloutState, plan: CanaryPlan, obs: Observations, now: float) -> Transition:
    results = evaluate(plan, obs.metrics)
    results += gate_results([h.name for h in hooks_of(plan, "rollout")], obs.gates,
                            kind="rollout")
    analysis = Analysis(results)
    state = replace(state, analyses=state.analyses + 1)
    if analysis.verdict is Verdict.FAIL:
        return _failed(state, plan, now, results, analysis.summary())
    if analysis.verdict is Verdict.NO_DATA:
        count = state.no_data_count + 1
        if count >= plan.no_data_limit:
            reason = f"no data in {count} analyses in a row: {analysis.summary()}"
            return _rollback(replace(state, no_data_count=count, last_analysis=results),
                             plan, now, reason)
        return _hold(replace(state, no_data_count=count), plan, now, results,
                     f"no data ({count}/{plan.no_data_limit}): {analysis.summary()}")
    state = replace(state, no_data_count=0)
    if not _last(state):
        return _enter(replace(state, last_analysis=results), plan, state.stage_index + 1, now,
                      f"{state.stage_label} passed: {analysis.summary()}")
    confirm = gate_results([h.name for h in hooks_of(plan, "confirm-promotion")], obs.gates,
                           kind="confirm-promotion")
    if not all(r.verdict is Verdict.PASS for r in confirm):
        return _hold(state, plan, now, results + confirm,
                     f"waiting: {Analysis(confirm).summary()}")
    new = _promoting(replace(state, last_analysis=results + confirm), now,
                     f"all {state.stage_count} stages passed")
    return _emit(state, new, plan, f"promoting {state.target}: all stages passed")


def _failed(state: RolloutState, plan: CanaryPlan, now: float,
            results: tuple[CheckResult, ...], summary: str) -> Transition:
    count = state.failed_checks + 1
    state = replace(state, failed_checks=count, no_data_count=0)
    if count >= plan.max_failed_checks:
        return _rollback(replace(state, last_analysis=results), plan, now,
                         f"{count} failed checks (max {plan.max_failed_checks}): {summary}")
    return _hold(state, plan, now, results,
                 f"failed check {count}/{plan.max_failed_checks}: {summary}")


def _hold(state: RolloutState, plan: CanaryPlan, now: float,
          results: tuple[CheckResult, ...], reason: str) -> Transition:
    """Stay at this stage and judge it again after one interval."""
    phase = Phase.INITIALIZING if state.phase is Phase.INITIALIZING else Phase.HALTED
    new = replace(state, phase=phase, reason=reason, next_analysis_at=now + state.interval,
                  last_analysis=results)
    if reason != state.reason or phase is not state.phase:
        new = replace(new, last_transition=now).note(now, reason)
        return _emit(state, new, plan, reason, severity="warning")
    return new, [Persist(new)]


def _rollback(state: RolloutState, plan: CanaryPlan, now: float, reason: str) -> Transition:
    new = _rolling_back(state, now, reason)
    return _emit(state, new, plan, f"rolling back: {reason}", severity="warning")


def _enter(state: RolloutState, plan: CanaryPlan, index: int, now: float, why: str) -> Transition:
    stage = stages(plan)[index]
    new = replace(state, phase=Phase.PROGRESSING, stage_index=index, stage_label=stage.label,
                  traffic=_traffic(state, stage), reason="", last_transition=now,
                  stage_started_at=now,
                  next_analysis_at=now + stage.wait)
    message = f"{why}; stage {index + 1}/{state.stage_count}: {stage.label}"
    return _emit(state, new.note(now, message), plan, message)


def _traffic(state: RolloutState, stage: Stage) -> Traffic:
    base = Traffic(stable=state.stable, target=state.target)
    if stage.kind is StageKind.MIRROR:
        return replace(base, mirror_percent=stage.mirror_percent)
    if stage.kind is StageKind.HEADER:
        return replace(base, header_route=True)
    return replace(base, canary_weight=stage.weight)


def _promoting(state: RolloutState, now: float, reason: str) -> RolloutState:
    moved = _moved(state, Phase.PROMOTING, now, next_at=now, reason=reason)
    return replace(moved, traffic=Traffic(state.stable, state.target, 100)).note(now, reason)


def _rolling_back(state: RolloutState, now: float, reason: str) -> RolloutState:
    moved = _moved(state, Phase.ROLLING_BACK, now, next_at=now, reason=reason)
    return replace(moved, traffic=Traffic(state.stable, state.target, 0)).note(now, reason)


def _moved(state: RolloutState, phase: Phase, now: float, *, next_at: float | None,
           reason: str) -> RolloutState:
    return replace(state, phase=phase, last_transition=now, next_analysis_at=next_at,
                   reason=reason)


# --- helpers ----------------------------------------------------------------------------


def _due(state: RolloutState, now: float) -> bool:
    return state.next_analysis_at is not None and now >= state.next_analysis_at


def _last(state: RolloutState) -> bool:
    return state.stage_index >= state.stage_count - 1


def restart_reason(state: RolloutState, plan: CanaryPlan, obs: Observations) -> str:
    """Why ``step`` would start this rollout over for ``plan`` ("" when it goes on): a new
    target or stable, a changed target version, or changed stages."""
    if state.phase is Phase.IDLE:
        return ""
    if plan.target != state.target or plan.stable != state.stable:
        return (f"new target {plan.target} (stable {plan.stable}); was {state.target} "
                f"(stable {state.stable})")
    if obs.target_digest is not None and obs.target_digest != state.target_digest:
        return f"{plan.target} changed in revision {obs.revision or '?'}"
    if not state.phase.terminal and stages_digest(plan) != state.stages_digest:
        return "the plan's stages changed"
    return ""


def _require(state: RolloutState, command: str, *, allowed: tuple[Phase, ...]) -> None:
    if state.phase not in allowed:
        raise ManualCommandError(
            f"cannot {command} {state.namespace}/{state.service}: it is {state.phase.value}"
            f" (allowed when {', '.join(p.value for p in allowed)})")


def _actions(before: RolloutState | None, after: RolloutState, message: str,
             severity: str = "info") -> list[Action]:
    """Persist first, then routes, then the log line."""
    out: list[Action] = [] if after == before else [Persist(after)]
    if before is None or before.phase is Phase.IDLE or before.traffic != after.traffic:
        out.append(SetTraffic(after.namespace, after.service, after.traffic))
    out.append(RecordEvent(after.namespace, after.service,
                           "warning" if severity == "warning" else "info", message))
    return out


def _notify(plan: CanaryPlan, kinds: tuple[str, ...], state: RolloutState, message: str
            ) -> list[CallWebhook]:
    return [CallWebhook(webhook_call(h, state, message)) for h in hooks_of(plan, *kinds)]


def _emit(before: RolloutState | None, after: RolloutState, plan: CanaryPlan, message: str,
          *, severity: str = "info", notify: list[CallWebhook] | None = None
          ) -> Transition:
    """The actions of a transition: persist, routes, notifying webhooks, event."""
    out = _actions(before, after, message, severity)
    event = out.pop()
    hooks = [*(notify or []), *_notify(plan, ("event",), after, message)]
    return after, [*out, *hooks, event]

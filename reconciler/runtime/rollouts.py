"""The rollout driver: the I/O shell around the pure canary machine.

``reconciler.delivery`` decides; this module does what it decides. For the program of
the current Git revision, on every :meth:`RolloutDriver.tick`, and for each of its
:class:`~meshdsl.model.canary.CanaryPlan` s::

    stored = store.load(ns, svc)                      # the rollout's whole memory
    wanted = needs(state, plan, now)                  # pure
    seen = measure(wanted.queries), ask(wanted.gates) # I/O: metrics, gate webhooks
    state, actions = step(state, plan, seen, now)     # pure: one decision
    Persist -> store.save (compare-and-swap)          # always first
    SetTraffic -> apply(*rollout_view(spec, states))  # the one writer of the weights
    CallWebhook -> webhooks;  RecordEvent -> the event sink

**One writer of weights.** Routes are only ever computed as
``rollout_view(spec, states)`` — the Git revision's program with every rollout's traffic
laid over it — and pushed through the ``apply`` callback (``LocalMesh.apply``, or a
deployer of the GitOps loop). A re-sync of the same revision therefore pushes the same
weights, and a driver restarted after a crash pushes the persisted step's weights on its
first tick: it resumes at the same step.

Manual commands (``meshctl canary promote|abort|pause|resume``) write the store directly;
the next tick reads them, and pushes the routes when the view differs from what was last
pushed. A compare-and-swap conflict (someone wrote between our load and save) redoes the
step on the fresh state. A metrics source that cannot answer gives *no data* for that
query (never a pass: the stage halts, and fails after ``no_data_limit``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshdsl.compile import Weights, compile_mesh
from meshdsl.model.canary import CanaryPlan
from meshdsl.model.spec import MeshSpec
from reconciler.delivery import (
    Action,
    CallWebhook,
    DeliveryError,
    Needs,
    Observations,
    Persist,
    Phase,
    RecordEvent,
    RolloutState,
    SetTraffic,
    Traffic,
    machine,
    rollout_view,
    target_digest,
)
from reconciler.delivery.routes import ServiceKey
from reconciler.ports import (
    MetricsError,
    MetricsSource,
    RolloutStore,
    RolloutStoreError,
    StaleRolloutError,
    WebhookCaller,
)

__all__ = ["ApplyRoutes", "RolloutDriver", "RolloutReport", "live_output"]

log = logging.getLogger(__name__)

ApplyRoutes = Callable[[MeshSpec, Weights], None]
"""Push the routes of ``(staged spec, weights)`` to the target (raise on failure)."""

_CAS_RETRIES = 5


@dataclass(frozen=True)
class RolloutReport:
    """What one tick did to one rollout: for the live timeline, status and tests."""

    at: float
    namespace: str
    service: str
    state: RolloutState
    before: RolloutState | None = None
    measured: Mapping[str, float | None] = field(default_factory=dict)
    gates: Mapping[str, bool] = field(default_factory=dict)
    events: tuple[RecordEvent, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def key(self) -> ServiceKey:
        return (self.namespace, self.service)

    @property
    def judged(self) -> bool:
        """Metrics or gates were gathered: an analysis (or a gate check) happened."""
        return bool(self.measured or self.gates)

    @property
    def changed(self) -> bool:
        return self.before != self.state

    @property
    def decision(self) -> str:
        if self.events:
            return "; ".join(e.message for e in self.events)
        return self.state.reason or ("judged" if self.judged else "waiting")


class RolloutDriver:
    """Runs every canary plan of the current program against a store, metrics, webhooks
    and a route target. Thread-safe: :meth:`set_program` may come from the Git loop while
    :meth:`tick` runs from a timer (calls are serialised)."""

    def __init__(self, store: RolloutStore, metrics: MetricsSource,
                 apply: ApplyRoutes | None = None, *,
                 webhooks: WebhookCaller | None = None,
                 on_report: Callable[[RolloutReport], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.metrics = metrics
        self._apply = apply
        self.webhooks = webhooks
        self._on_report = on_report
        self._clock = clock
        self._lock = threading.RLock()
        self._spec: MeshSpec | None = None
        self._revision = ""
        self._pushed: object = None  # fingerprint of the view last pushed successfully
        self._push = True              # False inside tick(push=False)
        self._due: float | None = None  # the earliest next analysis seen by the last tick

    def bind(self, apply: ApplyRoutes) -> None:
        """Set the route writer (the GitOps loop binds its deployer after constructing the
        driver it was given)."""
        with self._lock:
            self._apply = apply

    # --- the program --------------------------------------------------------------------

    def set_program(self, spec: MeshSpec, revision: str = "") -> None:
        """A new revision landed: its plans are what the next tick runs (a changed target
        restarts that rollout from its first step)."""
        with self._lock:
            self._spec, self._revision = spec, revision

    @property
    def spec(self) -> MeshSpec | None:
        return self._spec

    def clock(self) -> float:
        """Now, on the clock rollout times are kept in (wall-clock seconds by default)."""
        return self._clock()

    @property
    def revision(self) -> str:
        return self._revision

    def plans(self) -> list[CanaryPlan]:
        return list(self._spec.canaries) if self._spec is not None else []

    def states(self) -> list[RolloutState]:
        """The stored states of the current program's plans."""
        out: list[RolloutState] = []
        for plan in self.plans():
            stored = self.store.load(plan.namespace, plan.service)
            if stored is not None:
                out.append(stored.state)
        return out

    def view(self) -> tuple[MeshSpec, Weights]:
        """What the target must serve now: ``rollout_view(spec, states)``. With no plans,
        the program as it is — so callers may use it unconditionally."""
        return self.pending()[0]

    def preview(self, spec: MeshSpec, revision: str, now: float | None = None
                ) -> tuple[tuple[MeshSpec, Weights], Any]:
        """The view ``spec`` would be served with once it is the program, persisting
        nothing: rollouts it keeps go on at their stored step; new ones, and ones it
        changes (target, stable, the target's version, stages), start at 100% stable.
        For deploying a revision before handing it over (:meth:`set_program`), so a
        revision the target refuses leaves every stored rollout as it was."""
        at = self._clock() if now is None else now
        states: list[RolloutState] = []
        for plan in spec.canaries:
            stored = self.store.load(plan.namespace, plan.service)
            digest = target_digest(spec, plan)
            seen = Observations(revision=revision or None, target_digest=digest)
            if stored is None or stored.state.phase is Phase.IDLE or machine.restart_reason(
                    stored.state, plan, seen):
                states.append(machine.start(plan, revision, at, target_digest=digest)[0])
            else:
                states.append(stored.state)
        return rollout_view(spec, states), _fingerprint(revision, spec, states)

    def mark_pushed(self, fingerprint: Any) -> None:
        """The target now serves the view with this fingerprint: no push until it changes."""
        with self._lock:
            self._pushed = fingerprint

    def pending(self) -> tuple[tuple[MeshSpec, Weights], Any]:
        """The view and its fingerprint, for a caller that pushes it itself and then says
        so with :meth:`mark_pushed` (the GitOps loop deploys and records the revision)."""
        with self._lock:
            if self._spec is None:
                raise DeliveryError("the rollout driver has no program yet; call "
                                    "set_program(spec, revision) first")
            if not self._spec.canaries:
                return (self._spec, {}), _fingerprint(self._revision, self._spec, [])
            states = self.states()
            return (rollout_view(self._spec, states),
                    _fingerprint(self._revision, self._spec, states))

    # --- the tick -----------------------------------------------------------------------

    def tick(self, now: float | None = None, *, push: bool = True) -> list[RolloutReport]:
        """Advance every rollout as far as ``now`` allows, then make sure the target serves
        the current view (after a restart, a manual command or a failed push). With
        ``push=False`` nothing is pushed: the caller deploys :meth:`pending` itself."""
        with self._lock:
            if self._spec is None:
                return []
            self._push = push
            try:
                self._sample()
                at = self._clock() if now is None else now
                reports: list[RolloutReport] = []
                keys = [(p.namespace, p.service) for p in self._spec.canaries]
                for plan in self._spec.canaries:
                    if keys.count((plan.namespace, plan.service)) > 1:
                        report = self._refuse(plan, at, "the program has several canary "
                                              "plans for this service; keep one")
                    else:
                        report = self._advance(plan, at)
                    reports.append(report)
                    if self._on_report is not None:
                        self._on_report(report)
                self._due = min((r.state.next_analysis_at for r in reports if r.state.active
                                 and r.state.next_analysis_at is not None), default=None)
                if push:
                    try:
                        self.sync()
                    except Exception as exc:  # the target is down: retried next tick
                        log.warning("routes not applied (retried next tick): %s", exc)
                return reports
            finally:
                self._push = True

    def sync(self) -> bool:
        """Push the current view if it differs from the last one pushed; True if pushed."""
        with self._lock:
            if self._spec is None:
                return False
            (spec, weights), fingerprint = self.pending()
            if fingerprint == self._pushed:
                return False
            if self._apply is None:
                raise DeliveryError("the rollout driver has no route writer; pass apply= "
                                    "or call bind(apply)")
            self._pushed = None  # a failed push is retried on the next tick
            self._apply(spec, weights)
            self._pushed = fingerprint
            return True

    def invalidate(self) -> None:
        """Forget what was pushed: the next tick pushes the view again (e.g. after the
        target was redeployed from the raw program by someone else)."""
        with self._lock:
            self._pushed = None

    def _sample(self) -> None:
        """Sources that compute rates from their own snapshots (Envoy's stats read directly)
        take one every tick while a plan exists, so an analysis always finds a baseline one
        interval back instead of answering *no data* the first time."""
        if self._spec is None or not self._spec.canaries:
            return
        try:
            self.metrics.sample()
        except MetricsError as exc:
            log.warning("metrics snapshot failed: %s", exc)

    def _refuse(self, plan: CanaryPlan, now: float, why: str) -> RolloutReport:
        """Leave the rollout as stored (two plans for one service would restart each other
        on every tick) and say why."""
        stored = self.store.load(plan.namespace, plan.service)
        state = stored.state if stored is not None else _idle(plan)
        log.error("rollout of %s/%s not advanced: %s", plan.namespace, plan.service, why)
        return RolloutReport(now, plan.namespace, plan.service, state, state,
                             errors=(f"{plan.namespace}/{plan.service}: {why}",))

    def _advance(self, plan: CanaryPlan, now: float) -> RolloutReport:
        assert self._spec is not None
        digest = target_digest(self._spec, plan)
        errors: list[str] = []
        for _ in range(_CAS_RETRIES):
            stored = self.store.load(plan.namespace, plan.service)
            before = stored.state if stored is not None else None
            generation = stored.generation if stored is not None else None
            measured: dict[str, float | None] = {}
            gates: dict[str, bool] = {}
            try:
                if before is None:
                    state, actions = machine.start(plan, self._revision, now,
                                                   target_digest=digest)
                else:
                    wanted = machine.needs(before, plan, now)
                    measured, gates = self._gather(wanted, errors)
                    state, actions = machine.step(
                        before, plan, Observations(metrics=measured, gates=gates,
                                                   revision=self._revision or None,
                                                   target_digest=digest), now)
            except DeliveryError as exc:
                errors.append(f"{plan.namespace}/{plan.service}: {exc}")
                log.error("rollout of %s/%s cannot advance: %s", plan.namespace,
                          plan.service, exc)
                state = before if before is not None else _idle(plan)
                return RolloutReport(now, plan.namespace, plan.service, state, before,
                                     errors=tuple(errors))
            try:
                events = self._execute(actions, generation)
            except StaleRolloutError:
                continue  # someone else wrote (a manual command): decide again
            return RolloutReport(now, plan.namespace, plan.service, state, before,
                                 measured, gates, events, tuple(errors))
        raise RolloutStoreError(f"rollout {plan.namespace}/{plan.service}: the store kept "
                                f"changing under us ({_CAS_RETRIES} attempts)")

    def _gather(self, wanted: Needs, errors: list[str]
                ) -> tuple[dict[str, float | None], dict[str, bool]]:
        measured: dict[str, float | None] = {}
        for query in wanted.queries:
            try:
                measured[query.key] = self.metrics.measure(query)
            except MetricsError as exc:
                measured[query.key] = None
                errors.append(f"metric {query.key}: {exc}")
        gates: dict[str, bool] = {}
        for call in wanted.gates:
            gates[call.name] = self.webhooks.call(call) if self.webhooks is not None \
                else False
        return measured, gates

    def _execute(self, actions: list[Action], generation: int | None
                 ) -> tuple[RecordEvent, ...]:
        """Run the actions in order. Persist first: a crash after it re-applies the same
        routes on restart; a conflict raises before anything else happened."""
        events: list[RecordEvent] = []
        for action in actions:
            if isinstance(action, Persist):
                generation = self.store.save(action.state, expected_generation=generation)
            elif isinstance(action, SetTraffic):
                if not self._push:
                    self._pushed = None  # the caller deploys pending(); then mark_pushed
                    continue
                try:
                    self._pushed = None  # the view changed: push even if it looks equal
                    self.sync()
                except Exception as exc:  # any target failure: the next tick's sync retries
                    log.warning("routes for %s/%s not applied (retried next tick): %s",
                                action.namespace, action.service, exc)
            elif isinstance(action, CallWebhook):
                if self.webhooks is not None:
                    self.webhooks.call(action.call)
            elif isinstance(action, RecordEvent):
                (log.warning if action.severity == "warning" else log.info)(
                    "%s/%s: %s", action.namespace, action.service, action.message)
                events.append(action)
        return tuple(events)

    # --- a simple runner ----------------------------------------------------------------

    def run(self, stop: threading.Event, *, period: float = 0.5) -> None:
        """Tick every ``period`` seconds until ``stop`` is set (errors are logged, and the
        next tick tries again). Ticks start ``period`` apart, not ``period`` after the last
        one ended (a tick that queries metrics takes a while: the sequential test would
        otherwise look less often than asked); a slow tick is followed by a short pause."""
        while not stop.is_set():
            began = time.monotonic()
            try:
                self.tick()
            except Exception:  # a transient failure must not end the loop
                log.exception("rollout tick failed")
            stop.wait(max(period / 5, period - (time.monotonic() - began)))

    def next_due(self) -> float | None:
        """When (this driver's clock) the earliest active rollout wants its next analysis
        or gate check, as of the last tick (no store reads); None when none does — so a
        caller can tick right then instead of up to one period late."""
        with self._lock:
            if self._spec is None or not self._spec.canaries:
                return None
            return self._due

    def finished(self) -> bool:
        """Every plan of the program has a terminal rollout."""
        states = {s.key: s for s in self.states()}
        return all((p.namespace, p.service) in states
                   and states[(p.namespace, p.service)].phase.terminal
                   for p in self.plans())


def _idle(plan: CanaryPlan) -> RolloutState:
    return RolloutState(namespace=plan.namespace, service=plan.service, target=plan.target,
                        stable=plan.stable, phase=Phase.IDLE,
                        traffic=Traffic(stable=plan.stable, target=plan.target))


def _fingerprint(revision: str, program: MeshSpec, states: list[RolloutState]) -> Any:
    """Equal exactly when ``rollout_view`` computes the same routes (same program object,
    same traffic of every rollout)."""
    traffic = tuple(sorted(
        (s.key, s.target, s.stable, s.phase.value == "idle",
         tuple(sorted(s.traffic.weights.items())), s.traffic.header_route,
         s.traffic.mirror_percent) for s in states))
    return (revision, id(program), traffic)


# --- outputs of the GitOps loop ------------------------------------------------------------


def live_output(output: Mapping[str, Any], spec: MeshSpec, weights: Weights, *,
                as_spec: bool) -> dict[str, Any]:
    """A sandbox output rewritten to serve ``(spec, weights)`` — a rollout view — in the
    form its deployer reads: Istio manifests for the kube target; with ``as_spec``, the
    staged spec and the weights for the local one (which compiles its own Envoy config)."""
    live = dict(output)
    if as_spec:
        live.pop("manifests", None)  # the program's raw routes; the spec is what runs
        live["spec"] = spec.model_dump(mode="json")
        live["weights"] = {f"{ns}/{svc}": dict(split) for (ns, svc), split in weights.items()}
    else:
        live.pop("spec", None)
        live["manifests"] = compile_mesh(spec, weights=weights or None)
    return live

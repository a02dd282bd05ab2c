"""The reconcile loop's progressive delivery and drift checks.

With a rollout driver, what is deployed is never the program's raw output but its
*rollout view* (see :mod:`.loop`); these steps compute it, tick the driver between passes
(metrics and gate webhooks run *without* the target lock) and push a changed view. Drift
checks re-deploy the applied output (healing, or only reporting).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from meshdsl.compile import Weights
from meshdsl.model.spec import MeshSpec
from reconciler.delivery.errors import DeliveryError
from reconciler.ports import RolloutStoreError
from reconciler.runtime.loop_base import LoopBase, _always, _Failed, target_lock
from reconciler.runtime.rollouts import live_output
from reconciler.runtime.status import Attempt, DriftReport, Failure, FailureKind, Result
from reconciler.runtime.telemetry import event

__all__ = ["DeliveryLoop"]


class DeliveryLoop(LoopBase):
    """Rollout views and drift checks of a :class:`~reconciler.runtime.loop.Reconciler`."""

    # -- progressive delivery -----------------------------------------------------------------

    @property
    def _needs_spec(self) -> bool:
        """Ask the sandbox for the program's spec: the local target runs it, and the rollout
        driver needs it to compute rollout views."""
        return self._serves_spec or self.rollouts is not None

    def _view_output(self, output: dict[str, Any], spec: MeshSpec, weights: Weights
                     ) -> dict[str, Any]:
        """``output`` serving a rollout view, in the form this deployer reads."""
        return live_output(output, spec, weights, as_spec=self._serves_spec)

    def _live(self, revision: str, output: dict[str, Any]
              ) -> tuple[dict[str, Any], Callable[[], None]]:
        """What to deploy for ``revision`` — its output as is, or, with rollouts, its
        rollout view — and what to call once that is deployed.

        For the revision the driver runs, the view is its current one. For another (a new
        commit, a rollback, the first pass after a restart) it is the driver's *preview*:
        rollouts it keeps stay at their step, new or changed ones start at 100% stable
        (never at the program's raw weights). Only after the target took it does the
        driver get the program and persist the new rollouts, so a refused revision leaves
        every rollout as it was."""
        driver = self.rollouts
        if driver is None or not output.get("spec"):  # no rollouts, or stored without one
            return output, lambda: None
        handing_over: MeshSpec | None = None   # a program the driver does not run yet
        try:
            if driver.revision == revision and driver.spec is not None:
                (view, weights), fingerprint = driver.pending()
            else:
                handing_over = MeshSpec.model_validate(output["spec"])
                (view, weights), fingerprint = driver.preview(handing_over, revision)
        except (RolloutStoreError, DeliveryError) as exc:
            raise _Failed(Failure(FailureKind.ROLLOUTS, f"rollout state: {exc}",
                                  transient=isinstance(exc, RolloutStoreError))) from exc

        def deployed() -> None:
            try:
                if handing_over is not None:
                    driver.set_program(handing_over, revision)
                    driver.tick(push=False)
                if driver.pending()[1] == fingerprint:
                    driver.mark_pushed(fingerprint)
            except Exception as exc:  # the next rollout tick starts them and pushes
                event("rollout-start-deferred", name=self.settings.name, level=30,
                      revision=revision[:12], error=f"{type(exc).__name__}: {exc}")

        return self._view_output(output, view, weights), deployed

    def _drives_rollouts(self) -> bool:
        """Does the driver run the revision the target serves, here and now?"""
        driver, applied = self.rollouts, self.status.applied
        if driver is None or applied is None or self.status.suspended:
            return False
        if self.leader is not None and not self.leader.is_leader:
            return False
        return driver.revision == applied.revision and self.status.in_progress is None

    def tick_rollouts(self) -> None:
        """One driver tick for the applied revision (analyses, steps, manual commands).

        The tick — metric queries and gate webhooks, which may take up to their deadlines —
        runs *without* the target lock; only pushing a changed view takes it (through
        :meth:`_push_view`), after checking again that nothing changed meanwhile."""
        driver = self.rollouts
        if driver is None or not self._drives_rollouts():
            return
        try:
            driver.tick(push=False)
        except Exception as exc:  # the store or a metrics source is down: next tick
            event("rollout-tick-failed", name=self.settings.name, level=30,
                  error=f"{type(exc).__name__}: {exc}")
        with target_lock(self.deployer.identity):
            if not self._drives_rollouts():
                return   # a pass took over meanwhile: it deploys the view itself
            self._fence = self.leader.fence() if self.leader is not None else _always
            try:
                driver.sync()
            except Exception as exc:  # the target is down: the next tick pushes again
                event("rollout-push-failed", name=self.settings.name, level=30,
                      error=f"{type(exc).__name__}: {exc}")

    def _rollout_wait(self, period: float) -> float:
        """Seconds to the next driver tick: the period, or sooner when an analysis is due
        (so a judged step is not up to one period late)."""
        driver = self.rollouts
        due = driver.next_due() if driver is not None else None
        if driver is None or due is None:
            return period
        return max(0.02, min(period, due - driver.clock() + 0.01))

    def _push_view(self, spec: MeshSpec, weights: Weights) -> None:
        """The driver's route writer: deploy the applied revision's output with the rollout
        view laid over it (called by :meth:`tick_rollouts`, target lock held)."""
        applied = self.status.applied
        if applied is None:
            raise DeliveryError("no revision is applied yet")
        output = self._output(applied.revision)
        if output is None:
            raise DeliveryError(f"the output of {applied.short} is no longer stored")
        t0 = self.clock.monotonic()
        deployed = self.deployer.deploy(self._view_output(output, spec, weights),
                                        mesh=applied.mesh, heal=True, fence=self._fence)
        event("rollout-traffic", name=self.settings.name, revision=applied.short,
              weights={f"{ns}/{svc}": dict(split) for (ns, svc), split in weights.items()},
              changes=deployed.changes, duration_s=round(self.clock.monotonic() - t0, 3))

    # -- drift ------------------------------------------------------------------------------

    def _recheck(self, *, heal: bool, trigger: str) -> None:
        """Deploy the applied output again: heals drift (or, with ``heal=False``, only
        reports it, writing nothing)."""
        applied = self.status.applied
        if applied is None:
            return
        t0 = self.clock.monotonic()
        output = self._output(applied.revision)
        if output is None:
            event("drift-skipped", name=self.settings.name, revision=applied.short,
                  reason="the applied output is no longer stored")
            return
        try:
            live, handed_over = self._live(applied.revision, output)
            deployed = self._deploy(live, mesh=applied.mesh, heal=heal,
                                    revision=applied.revision, dry_run=not heal)
            if heal:
                handed_over()
        except _Failed as failed:
            self._failed(Attempt(revision=applied.revision, trigger=trigger,
                                 started_at=self.clock.now_iso(),
                                 duration=self.clock.monotonic() - t0, result=Result.FAILED,
                                 mesh=applied.mesh, summary=applied.summary), failed)
            return
        report = DriftReport(checked_at=self.clock.now_iso(), objects=deployed.drift,
                             healed=deployed.healed)
        self.telemetry.drift.labels(self.settings.name).set(len(deployed.drift))
        previous = self.status.drift
        self.status = replace(self.status, drift=report)
        if deployed.healed and deployed.write_calls:
            self._finish(Attempt(revision=applied.revision, trigger=trigger,
                                 started_at=self.clock.now_iso(), duration=self.clock.monotonic() - t0,
                                 result=Result.HEALED, changes=deployed.changes,
                                 mesh=applied.mesh, summary=applied.summary))
            return
        self.telemetry.reconciled("unchanged", self.clock.monotonic() - t0)
        if previous is None or previous.objects != report.objects:
            self._save()
        if deployed.drift:
            event("drift", name=self.settings.name, revision=applied.short,
                  objects=list(deployed.drift), healed=False)


"""Progressive delivery, pure: the canary state machine and everything it decides with.

A rollout moves a service's traffic from its ``stable`` version to a ``target`` version in
stages (mirror, header match, weight steps), judging the target at every stage. This
package holds only decisions — no HTTP, no Kubernetes, no files — so every decision is a
table test away and a killed reconciler resumes exactly where it was:

- :mod:`.stages` — a :class:`~meshdsl.model.canary.CanaryPlan` as a flat list of stages;
- :mod:`.phases` — :class:`RolloutState` (persisted after every transition) and its JSON;
- :mod:`.queries` — the PromQL the checks run (Flagger's Istio defaults) and rendering;
- :mod:`.analysis` — PASS / FAIL / NO_DATA verdicts from measured values;
- :mod:`.actions` — what the machine asks of the world: :class:`Needs` before a step,
  :class:`Observations` into it, actions out of it;
- :mod:`.machine` — ``start``, ``needs``, ``step`` and the manual commands;
- :mod:`.routes` — rollout state → the routes ``compile_mesh`` emits (one writer);
- :mod:`.simulate` — replay a plan offline against recorded metrics.

The I/O lives in adapters: ``reconciler.metrics`` (Prometheus, Envoy stats),
``reconciler.targets.webhooks`` and ``reconciler.runtime.rollout_store``.
"""

from reconciler.delivery.actions import (
    Action,
    CallWebhook,
    Needs,
    Observations,
    Persist,
    RecordEvent,
    SetTraffic,
    WebhookCall,
)
from reconciler.delivery.analysis import Analysis, CheckResult, Verdict
from reconciler.delivery.errors import (
    DeliveryError,
    ManualCommandError,
    PlanError,
    RecordingError,
    StateFormatError,
)
from reconciler.delivery.machine import abort, needs, pause, promote, resume, start, step
from reconciler.delivery.phases import Phase, RolloutState, StoredRollout, Traffic
from reconciler.delivery.queries import MetricQuery
from reconciler.delivery.routes import compile_with_rollouts, rollout_view, target_digest
from reconciler.delivery.simulate import Recording, Simulation, simulate

__all__ = [
    "Action",
    "Analysis",
    "CallWebhook",
    "CheckResult",
    "DeliveryError",
    "ManualCommandError",
    "MetricQuery",
    "Needs",
    "Observations",
    "Persist",
    "Phase",
    "PlanError",
    "RecordEvent",
    "Recording",
    "RecordingError",
    "RolloutState",
    "SetTraffic",
    "Simulation",
    "StateFormatError",
    "StoredRollout",
    "Traffic",
    "Verdict",
    "WebhookCall",
    "abort",
    "compile_with_rollouts",
    "needs",
    "pause",
    "promote",
    "resume",
    "rollout_view",
    "simulate",
    "start",
    "step",
    "target_digest",
]

"""The machine's conversation with the world, as data: needs in, observations back,
actions out.

One reconcile tick of a rollout is::

    wanted = needs(state, plan, now)            # pure: which metrics, which gate webhooks
    seen = gather(wanted)                       # I/O: query metrics, call gating webhooks
    state, actions = step(state, plan, seen, now)   # pure: the decision
    execute(actions)                            # I/O: persist, routes, notify, log

(httpx's ``auth_flow`` shape: the flow decides, the caller does the I/O.) Gating webhooks
(confirm-rollout, pre-rollout, rollout, confirm-promotion) are *questions*, so they are
needs whose answers come back as observations; notifying webhooks (rollback, post-rollout,
event) are fire-and-forget actions. Actions come out in execution order: ``Persist`` first,
so a crash between persisting and applying re-applies the same routes on restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from meshdsl.model.canary import CanaryPlan, Webhook
from reconciler.delivery.phases import RolloutState, Traffic
from reconciler.delivery.queries import MetricQuery
from reconciler.delivery.stages import parse_duration

__all__ = [
    "Action",
    "CallWebhook",
    "Needs",
    "Observations",
    "Persist",
    "RecordEvent",
    "SetTraffic",
    "WebhookCall",
    "webhook_call",
    "webhook_payload",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class WebhookCall:
    """One HTTP POST of the rollout state to a webhook (the adapter adds the transport)."""

    name: str
    kind: str
    url: str
    timeout: float
    retries: int
    payload: Mapping[str, Any]


def webhook_payload(state: RolloutState, *, metadata: Mapping[str, str] | None = None,
                    message: str = "") -> dict[str, Any]:
    """What every webhook receives: Flagger's payload fields plus the rollout's position."""
    return {
        "name": state.service, "namespace": state.namespace, "phase": state.phase.value,
        "target": state.target, "stable": state.stable, "revision": state.revision,
        "checksum": state.target_digest, "stage": state.stage_label,
        "stageIndex": state.stage_index, "stageCount": state.stage_count,
        "weights": state.traffic.weights, "failedChecks": state.failed_checks,
        "message": message, "metadata": dict(metadata or {}),
    }


def webhook_call(hook: Webhook, state: RolloutState, message: str = "") -> WebhookCall:
    return WebhookCall(name=hook.name, kind=hook.kind, url=hook.url,
                       timeout=parse_duration(hook.timeout, what=f"webhook {hook.name} timeout"),
                       retries=hook.retries,
                       payload=webhook_payload(state, metadata=hook.metadata, message=message))


def hooks_of(plan: CanaryPlan, *kinds: str) -> tuple[Webhook, ...]:
    return tuple(h for h in plan.webhooks if h.kind in kinds)


@dataclass(frozen=True)
class Needs:
    """What the next ``step`` will judge: metric values and gate webhook answers."""

    queries: tuple[MetricQuery, ...] = ()
    gates: tuple[WebhookCall, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.queries or self.gates)


@dataclass(frozen=True)
class Observations:
    """Everything the machine learns between two steps.

    ``metrics`` answers :attr:`Needs.queries` by key (``None``: no data); ``gates`` answers
    :attr:`Needs.gates` by webhook name (missing: no). ``revision`` and ``target_digest``
    describe the source the plan came from: a different ``target_digest`` (the target
    workload changed in Git) restarts the rollout like a new target version does.
    """

    metrics: Mapping[str, float | None] = field(default_factory=lambda: _EMPTY)
    gates: Mapping[str, bool] = field(default_factory=lambda: _EMPTY)
    revision: str | None = None
    target_digest: str | None = None


@dataclass(frozen=True)
class Persist:
    """Write the state to the store before anything else happens."""

    state: RolloutState


@dataclass(frozen=True)
class SetTraffic:
    """Routes for this service changed: recompile (Git revision + rollout state) and apply.

    Carries the whole traffic picture, not a delta, so applying it is idempotent."""

    namespace: str
    service: str
    traffic: Traffic


@dataclass(frozen=True)
class CallWebhook:
    """Notify a webhook; its answer does not change the rollout."""

    call: WebhookCall


@dataclass(frozen=True)
class RecordEvent:
    """A line for the log / Kubernetes events: what happened to which rollout and why."""

    namespace: str
    service: str
    severity: Literal["info", "warning"]
    message: str


Action = Persist | SetTraffic | CallWebhook | RecordEvent

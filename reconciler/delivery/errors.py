"""The exceptions of progressive delivery: one root, one subclass per kind of mistake.

The machine never raises for what the world does (no data, failing checks, webhooks saying
no — those are observations). It raises only when it is *used* wrongly: a plan it cannot
run, a manual command that makes no sense in the current phase, persisted state it cannot
read. Each message says what, where and how to fix it, for the CLI to print as is.
"""

from __future__ import annotations

from reconciler.errors import ReconcilerError


class DeliveryError(ReconcilerError):
    """Root of every error raised by ``reconciler.delivery``."""


class PlanError(DeliveryError):
    """The canary plan cannot be run as written (bad duration, unknown template variable,
    a check without a query, ...)."""


class ManualCommandError(DeliveryError):
    """A manual command (promote, abort, pause, resume) does not apply in this phase."""


class StateFormatError(DeliveryError):
    """Persisted rollout state is not a state this version can read."""


class RecordingError(DeliveryError):
    """A recorded-metrics file for ``meshctl canary simulate`` is not in the documented
    format."""

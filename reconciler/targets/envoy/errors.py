"""The exception ladder of the local Envoy target.

Callers catch :class:`EnvoyError` to handle anything that went wrong with a local Envoy, or
a subclass to react to one cause. Every message says what failed and carries the tail of
Envoy's own log, because Envoy's explanation ("Proto constraint validation failed ...") is
almost always the useful part.
"""

from __future__ import annotations

from reconciler.errors import ReconcilerError

__all__ = [
    "EnvoyConfigError",
    "EnvoyError",
    "EnvoyNotFoundError",
    "EnvoyStartError",
    "EnvoyTimeoutError",
    "EnvoyUpdateRejectedError",
    "LocalAppError",
    "LocalMeshError",
]


class EnvoyError(ReconcilerError):
    """Root of every error raised by :mod:`reconciler.targets.envoy`."""


class EnvoyNotFoundError(EnvoyError):
    """The ``envoy`` binary is not installed where we look for it."""


class EnvoyStartError(EnvoyError):
    """Envoy exited, or never became ready, while starting."""


class EnvoyConfigError(EnvoyError):
    """``envoy --mode validate`` rejected a configuration."""


class EnvoyUpdateRejectedError(EnvoyError):
    """A running Envoy rejected a listener, route or cluster update; it keeps the old one."""


class EnvoyTimeoutError(EnvoyError, TimeoutError):
    """Envoy did not reach the expected state (version, readiness) in time."""


class LocalMeshError(EnvoyError):
    """The local mesh cannot run this spec (a compile error, a port taken, a proxy that
    rejected its config); the proxies keep serving what they had."""


class LocalAppError(LocalMeshError):
    """A workload's local app did not start or did not open its port; carries its log tail."""

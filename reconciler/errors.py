"""The root of every error the reconciler raises: :class:`ReconcilerError`.

Each layer keeps its own ladder (``TargetError``, ``SourceError``, ``StoreError``,
``CoreError``, ``DeliveryError`` …) under this one root, so the loop can tell *its*
failures from a bug with a single ``except ReconcilerError``, and each error says whether
waiting helps: ``transient`` (the remote is down, busy, or the Lease moved) is retried with
backoff; anything else waits for a new commit or a person. This module imports nothing, so
the pure core may use it.
"""

from __future__ import annotations

__all__ = ["ReconcilerError"]


class ReconcilerError(Exception):
    """Root of the reconciler's errors. ``transient``: retrying later may succeed."""

    transient: bool = False

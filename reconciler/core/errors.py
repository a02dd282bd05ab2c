"""The exception ladder of the pure apply core (``CoreError`` is its root).

Each message says what is wrong and how to proceed, because the CLI prints it as the one
line a user sees.
"""

from __future__ import annotations

from reconciler.errors import ReconcilerError

__all__ = ["CoreError", "DuplicateObjectError", "EmptyDesiredError", "InventoryError"]


class CoreError(ReconcilerError):
    """Root of every error raised by :mod:`reconciler.core`."""


class InventoryError(CoreError):
    """The inventory record in the cluster is unreadable (hand-edited or another format)."""


class DuplicateObjectError(CoreError):
    """Two desired manifests have the same identity (group, kind, namespace, name)."""


class EmptyDesiredError(CoreError):
    """Pruning would delete every object the mesh owns; that needs an explicit opt-in."""

    def __init__(self, mesh: str, count: int) -> None:
        super().__init__(
            f"the desired state of mesh {mesh!r} would delete all {count} object(s) it owns; "
            "if that is intended, pass --allow-empty")
        self.mesh, self.count = mesh, count

"""The one exception root of ``stacks``: everything a stack can get wrong is a
:class:`StackError`, and the Pulumi program turns it into a clean ``pulumi.RunError``
(a message, no traceback)."""

from __future__ import annotations


class StackError(Exception):
    """A stack cannot be built from this program and configuration."""


class SettingsError(StackError):
    """The stack configuration (``Pulumi.<stack>.yaml``) is missing a key, has an unknown
    key, or a value of the wrong type or one the program does not know."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class RolloutStateError(StackError):
    """The reconciler's rollout state cannot be read, or does not fit the program."""


class MeshStackError(StackError):
    """The mesh cannot become Pulumi resources (validation errors, name collisions)."""

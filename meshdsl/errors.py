"""The root of every exception meshdsl raises on purpose.

Catch :class:`MeshdslError` to handle anything the DSL, the compilers or the importer
report about the user's program or input; anything else is a bug. Each package narrows it:
:class:`ModelUsageError` (a builder call given what it cannot use), ``EnvoyCompileError``
(:mod:`meshdsl.compile.envoy`) and ``ImporterError`` (:mod:`meshdsl.importer`).
Validation problems are not exceptions: they are findings (:mod:`meshdsl.validate`).
"""

from __future__ import annotations

__all__ = ["MeshdslError", "ModelUsageError"]


class MeshdslError(Exception):
    """Root of meshdsl's exceptions; the message says what is wrong and how to fix it."""


class ModelUsageError(MeshdslError, TypeError):
    """A builder call was given a value it cannot use (a ``TypeError`` too, as Python's own
    argument errors are)."""

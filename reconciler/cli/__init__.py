"""``meshctl`` — a thin command layer over meshdsl and the reconciler.

Each command group lives in its own module and registers itself on :data:`app`.
Exit codes: 0 success, 1 findings/changes/failed operation, 2 bad input or environment.
"""

from __future__ import annotations

import importlib

from reconciler.cli.app import app

_GROUPS = ("mesh",)
_OPTIONAL = ("cluster", "local", "reconcile", "gitops", "canary", "imports", "demo",
             "migrate", "plan", "dashboard")


def _register() -> None:
    for name in _GROUPS:
        importlib.import_module(f"reconciler.cli.{name}")
    for name in _OPTIONAL:
        try:
            importlib.import_module(f"reconciler.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"reconciler.cli.{name}":
                raise


def main() -> None:
    _register()
    app()


__all__ = ["app", "main"]

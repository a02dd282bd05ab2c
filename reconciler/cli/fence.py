"""The ownership and tenancy flags shared by ``meshctl apply``/``diff`` and ``reconcile``:
what the reconciler (never the program) may widen — ``--allow-namespace`` for a reserved
namespace, ``--adopt`` for an existing object the mesh did not create."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from meshdsl.model.tenancy import parse_ref
from reconciler.cli.app import fail
from reconciler.core.tenancy import Policy

__all__ = ["AdoptOpt", "AllowNsOpt", "fence_options"]

AdoptOpt = Annotated[list[str] | None, typer.Option(
    "--adopt", metavar="KIND/NS/NAME", help="Take over this existing object although the "
    "mesh did not create it (Kind/name when cluster-scoped); repeatable. Never the "
    "default: an existing object that is not the mesh's is otherwise refused.")]
AllowNsOpt = Annotated[list[str] | None, typer.Option(
    "--allow-namespace", metavar="NS", help="Let the mesh write in this reserved namespace "
    "(kube-system, kube-public, kube-node-lease, meshdsl-system, istio-system) when its "
    "program declares it; repeatable.")]


def fence_options(declared: dict[str, Any], adopt: list[str] | None,
                  allow: list[str] | None, system_namespace: str) -> dict[str, Any]:
    """``adopt`` and ``tenancy`` for :class:`~reconciler.runtime.apply.Options`: the
    program's declaration under this command's flags (a malformed ``--adopt`` exits 2)."""
    refs = set(declared.get("adopt") or ())
    for ref in adopt or ():
        try:
            parse_ref(ref)
        except ValueError as exc:
            fail(f"--adopt: {exc}", 2)
        refs.add(ref)
    return {"adopt": frozenset(refs),
            "tenancy": Policy.of(declared, system_namespace=system_namespace,
                                 allow=allow or ())}

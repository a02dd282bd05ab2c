"""The reconciler's companions: ``status``, ``history``, ``rollback``, ``suspend``,
``resume`` and ``install``.

They only read the state store or write a control request that the running reconciler
(``meshctl reconcile``, :mod:`reconciler.cli.reconcile`) carries out — they never touch the
mesh themselves. Exit codes: 0 success, 1 a failed rollback (or a wait that timed out), 2
bad input or environment.
"""

from __future__ import annotations

import getpass
import socket
import time
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape

from reconciler.cli.app import Output, app, console, emit, err_console, fail
from reconciler.cli.options import (
    NameOpt,
    OutputOpt,
    ReconcilerState,
    WaitOpt,
    option_groups,
    parse_duration,
    reconciler_state,
)
from reconciler.cli.status_text import history_line, print_status
from reconciler.delivery.phases import RolloutState
from reconciler.ports import RolloutStoreError, StateStore
from reconciler.runtime.install import InstallOptions, manifests
from reconciler.runtime.rollout_store import beside
from reconciler.runtime.status import STATE_NAMESPACE, Control, Result, Status, request_control


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"{user}@{socket.gethostname()}"




# --- status / history ----------------------------------------------------------------------


def _load_status(reconciler: ReconcilerState) -> Status:
    store, name = reconciler.store, reconciler.name
    try:
        status = store.load_status()
    except Exception as exc:   # StoreError, or the cluster store's connection errors
        fail(f"cannot read the status from {store.describe()}: {exc}", 2)
    if status is None:
        fail(f"no reconciler named {name!r} has recorded a status in {store.describe()}", 2)
    return status


@app.command("status")
@option_groups(reconciler=reconciler_state)
def status_cmd(reconciler: ReconcilerState, output: OutputOpt = Output.text) -> None:
    """What the reconciler applied, when, with what result; drift; suspension."""
    try:
        status = _load_status(reconciler)
    except typer.Exit:             # reported; the rollouts are still worth showing
        rollouts, unreadable = _rollouts(reconciler)
        for state in rollouts:
            console.print(f"rollout {state.namespace}/{state.service} {state.phase.value} "
                          f"{state.stage_label}", highlight=False, markup=False)
        if unreadable:
            err_console.print(f"rollouts unreadable: {unreadable}", highlight=False,
                              markup=False, soft_wrap=True)
        raise
    rollouts, unreadable = _rollouts(reconciler)
    if output is not Output.text:
        data = status.to_dict()
        data["history"] = data["history"][:10]
        data["rollouts"] = [{"service": f"{s.namespace}/{s.service}", "phase": s.phase.value,
                             "stage": s.stage_label, "target": s.target, "stable": s.stable,
                             "weights": s.traffic.weights, "reason": s.reason}
                            for s in rollouts]
        if unreadable:
            data["rollouts_error"] = unreadable
        emit(data, output)
        return
    print_status(status)
    for number, state in enumerate(rollouts):
        style = {"failed": "red", "succeeded": "green"}.get(state.phase.value, "yellow")
        console.print(f"{'rollouts' if number == 0 else '':<12} "
                      f"{escape(state.namespace)}/{escape(state.service)} "
                      f"[{style}]{state.phase.value}[/] {escape(state.stage_label)} — "
                      f"{escape(state.traffic.describe())}", highlight=False, soft_wrap=True)
    if unreadable:
        console.print(f"rollouts     [red]unreadable[/]: {escape(unreadable)}", highlight=False,
                      soft_wrap=True)
    if status.history:
        console.print("history      (newest first; `meshctl history` for all)",
                      highlight=False)
        for attempt in status.history[:5]:
            console.print(f"  {history_line(attempt)}", highlight=False, soft_wrap=True,
                          markup=False)


def _rollouts(reconciler: ReconcilerState) -> tuple[list[RolloutState], str]:
    """The canary rollouts kept beside this status (``meshctl canary status`` has the
    detail), by namespace and service; and an error message when they cannot be read."""
    rollouts = beside(reconciler.store, reconciler.name)
    if rollouts is None:
        return [], ""
    try:
        found, errors = rollouts.list_readable()
    except RolloutStoreError as exc:
        return [], str(exc)
    return [s.state for s in found], "; ".join(errors)


@app.command("history")
@option_groups(reconciler=reconciler_state)
def history_cmd(reconciler: ReconcilerState, output: OutputOpt = Output.text) -> None:
    """Every recorded reconcile, newest first."""
    status = _load_status(reconciler)
    if output is not Output.text:
        emit(status.to_dict()["history"], output)
        return
    console.print(f"{'REVISION':12}  {'RESULT':11}  {'STARTED (UTC)':19}  {'TRIGGER':8}  "
                  f"{'TIME':>7}  DETAIL", highlight=False, style="bold")
    for attempt in status.history:
        console.print(history_line(attempt), highlight=False, soft_wrap=True, markup=False)


# --- control: rollback / suspend / resume ----------------------------------------------------


def _request(store: StateStore, **changes: Any) -> Control:
    try:
        control = request_control(store, requested_by=_who(), **changes)
    except Exception as exc:
        fail(f"cannot write the control request to {store.describe()}: {exc}", 2)
    return control


def _await(store: StateStore, generation: int, wait: float) -> Status | None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            status = store.load_status()
        except Exception:
            status = None
        if status is not None and status.observed_control >= generation:
            return status
        time.sleep(0.2)
    return None


@app.command("rollback")
@option_groups(reconciler=reconciler_state)
def rollback_cmd(
    revision: Annotated[str, typer.Argument(help="A revision from `meshctl history` (a "
                                            "unique prefix is enough).")],
    reconciler: ReconcilerState,
    wait: WaitOpt = "60s",
) -> None:
    """Re-apply an earlier revision's output and suspend auto-sync until `meshctl resume`."""
    store = reconciler.store
    status = _load_status(reconciler)
    if len(revision) < 4:
        fail("give at least 4 characters of the revision", 2)
    matches = {a.revision for a in status.history
               if a.result.live and a.revision.startswith(revision)}
    if not matches:
        fail(f"{revision} is not a revision this reconciler applied; see `meshctl history`",
             2)
    if len(matches) > 1:
        fail(f"{revision} is ambiguous: {', '.join(sorted(m[:12] for m in matches))}", 2)
    (full,) = matches
    control = _request(store, suspended=True, rollback=full,
                       reason=f"rolled back to {full[:12]} by {_who()}")
    seconds = parse_duration(wait, what="--wait")
    console.print(f"requested rollback to {full} (control generation {control.generation})",
                  highlight=False)
    if not seconds:
        return
    done = _await(store, control.generation, seconds)
    if done is None:
        fail(f"no reconciler acted within {wait}; the request stays recorded and a running "
             f"`meshctl reconcile --name {reconciler.name}` will carry it out", 1)
    last = done.last
    if last is not None and last.result is Result.FAILED and last.trigger == "rollback":
        fail(f"rollback failed: {last.failure.describe() if last.failure else '?'}", 1)
    console.print(f"[green]rolled back[/] to {full[:12]}; auto-sync is suspended — "
                  "`meshctl resume` follows the branch again", highlight=False)


def _toggle(suspend: bool, reconciler: ReconcilerState, *, reason: str | None,
            wait: str) -> None:
    store = reconciler.store
    why = (reason or f"suspended by {_who()}") if suspend else None
    control = _request(store, suspended=suspend, reason=why, rollback=None)
    verb = "suspend" if suspend else "resume"
    console.print(f"requested {verb} (control generation {control.generation})",
                  highlight=False)
    seconds = parse_duration(wait, what="--wait")
    if seconds and _await(store, control.generation, seconds) is None:
        fail(f"no reconciler acted within {wait}; the request stays recorded", 1)


@app.command("suspend")
@option_groups(reconciler=reconciler_state)
def suspend_cmd(
    reconciler: ReconcilerState,
    reason: Annotated[str | None, typer.Option("--reason", help="Shown in status.")] = None,
    wait: WaitOpt = "0",
) -> None:
    """Stop following the branch (drift is still reported, not healed)."""
    _toggle(True, reconciler, reason=reason, wait=wait)


@app.command("resume")
@option_groups(reconciler=reconciler_state)
def resume_cmd(reconciler: ReconcilerState, wait: WaitOpt = "0") -> None:
    """Follow the branch again (after `suspend` or `rollback`)."""
    _toggle(False, reconciler, reason=None, wait=wait)


# --- install -------------------------------------------------------------------------------


@app.command("install")
def install_cmd(
    repo: Annotated[str, typer.Option("--repo", help="Git URL the reconciler tracks.")],
    print_: Annotated[bool, typer.Option(
        "--print", help="Print the manifests (pipe them to `kubectl apply -f -`).")] = False,
    branch: Annotated[str, typer.Option("--branch")] = "main",
    path: Annotated[str, typer.Option("--path")] = "mesh.py",
    name: NameOpt = "default",
    namespace: Annotated[str, typer.Option("--namespace")] = STATE_NAMESPACE,
    image: Annotated[str, typer.Option("--image")] = "ghcr.io/meshdsl/meshdsl:0.1.0",
    replicas: Annotated[int, typer.Option("--replicas", min=1)] = 2,
    mesh_namespace: Annotated[list[str] | None, typer.Option(
        "--mesh-namespace", metavar="NS", help="A namespace the mesh may write (a Role "
        "there); repeatable. None: the reconciler may write no mesh object.")] = None,
    mesh: Annotated[str, typer.Option("--mesh", help="The mesh's name (its inventory "
                                      "record, with --as).")] = "",
    tenant: Annotated[str | None, typer.Option(
        "--as", metavar="NS/SERVICEACCOUNT", help="Apply the mesh as this ServiceAccount "
        "(impersonation, like Flux): the mesh Roles bind it, not the reconciler.")] = None,
) -> None:
    """The in-cluster reconciler: ServiceAccount, least-privilege RBAC, Deployment, Service.

    Create the webhook secret first:

    \b
    kubectl -n meshdsl-system create secret generic meshdsl-webhook \\
        --from-literal=secret=$(openssl rand -hex 32)
    """
    if not print_:
        fail("only --print is supported: meshctl install --repo URL --print | kubectl apply "
             "-f -", 2)
    if tenant is not None and (tenant.count("/") != 1 or not all(tenant.split("/"))):
        fail(f"--as {tenant!r}: expected NAMESPACE/SERVICEACCOUNT", 2)
    docs = manifests(InstallOptions(repo=repo, branch=branch, path=path, name=name,
                                    namespace=namespace, image=image, replicas=replicas,
                                    mesh_namespaces=tuple(mesh_namespace or ()), mesh=mesh,
                                    tenant=tenant))
    typer.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)

"""``meshctl diff`` and ``meshctl apply``: the mesh against a Kubernetes API server.

``diff`` exits like ``kubectl diff``: 0 no differences, 1 differences (drift included),
2 error. ``apply`` exits 0 when the cluster matches the program, 1 when the program has
validation errors, an object was rejected or a write failed, 2 for a program that does not
load or an unusable cluster connection (kubeconfig, unreachable, 401, 403). Every error is
one line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape

from meshdsl.compile import compile_mesh
from meshdsl.compile.manifest import Manifest
from meshdsl.compile.tenancy import declaration
from meshdsl.validate import Severity, has_errors, validate
from reconciler.cli.app import Output, app, console, emit, err_console, fail
from reconciler.cli.fence import AdoptOpt, AllowNsOpt, fence_options
from reconciler.cli.mesh import ProgramArg, load_or_exit, print_findings
from reconciler.cli.options import kube_connection, kube_target, option_groups
from reconciler.core.diff import MISSING, Mismatch, dotted
from reconciler.core.errors import CoreError
from reconciler.core.inventory import INVENTORY_NAMESPACE
from reconciler.core.plan import Action, Drift, Plan, Verb
from reconciler.runtime.apply import (
    ApplyError,
    ObjectDiff,
    Options,
    Outcome,
    RejectedError,
)
from reconciler.runtime.apply import apply as run_apply
from reconciler.runtime.apply import diff as run_diff
from reconciler.runtime.assemble import KubeConnection
from reconciler.targets.kube import (
    Forbidden,
    KubeConfigError,
    KubeError,
    KubeTarget,
    Unauthorized,
    Unreachable,
)

PruneOpt = Annotated[bool, typer.Option(
    "--prune", help="Delete objects the mesh owns (per its inventory) that the program no "
    "longer declares.")]
InventoryNsOpt = Annotated[str, typer.Option(
    "--inventory-namespace", help="Namespace of the inventory ConfigMap "
    "(meshdsl-inventory-<mesh>).")]
WorkersOpt = Annotated[int, typer.Option(
    "--workers", min=1, max=64, help="Parallel requests within one step of the plan.")]
OutputOpt = Annotated[Output, typer.Option("-o", "--output", help="text or json.")]


@dataclass(frozen=True)
class Planning:
    """The option group ``diff`` and ``apply`` plan with
    (:func:`~reconciler.cli.options.option_groups`)."""

    prune: PruneOpt = False
    inventory_namespace: InventoryNsOpt = INVENTORY_NAMESPACE
    workers: WorkersOpt = 8
    adopt: AdoptOpt = None
    allow_namespace: AllowNsOpt = None

    def options(self, declared: dict[str, Any], **apply_only: Any) -> Options:
        """The plan's options for a program that declared ``declared`` (its fence)."""
        return Options(prune=self.prune, workers=self.workers,
                       inventory_namespace=self.inventory_namespace, **apply_only,
                       **fence_options(declared, self.adopt, self.allow_namespace,
                                       self.inventory_namespace))


_STYLE = {"created": "green", "updated": "yellow", "pruned": "red", "bridged": "yellow",
          "healed": "magenta",
          "would create": "green", "would update": "yellow", "would delete": "red"}


def _desired(program: str, *, error_code: int) -> tuple[str, list[Manifest], dict[str, Any]]:
    loaded = load_or_exit(program)
    findings = validate(loaded.spec)
    if has_errors(findings):
        print_findings([f for f in findings if f.severity is Severity.ERROR])
        fail(f"{loaded.source} has validation errors; nothing sent to the cluster",
             error_code)
    return loaded.spec.name, compile_mesh(loaded.spec), declaration(loaded.spec)


def _rejected(exc: RejectedError, code: int) -> NoReturn:
    for line in exc.lines:
        err_console.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True, markup=True,
                          highlight=False)
    fail(f"{len(exc.lines)} object(s) rejected by the API server's dry run; nothing was "
         "written", code)


@contextmanager
def _errors(*, rejected_code: int, failed_code: int, target: KubeTarget | None = None
            ) -> Iterator[None]:
    """Turn every expected failure into one line and an exit code."""
    try:
        yield
    except RejectedError as exc:
        _rejected(exc, rejected_code)
    except (Unreachable, Unauthorized, Forbidden, KubeConfigError) as exc:
        fail(str(exc), 2)
    except KubeError as exc:
        done = target.write_calls if target is not None else 0
        suffix = (f" ({done} write(s) done before it; run again to finish)" if done else "")
        fail(f"{exc}{suffix}", failed_code)
    except (CoreError, ApplyError) as exc:
        fail(str(exc), rejected_code)


def _mismatch_json(m: Mismatch) -> dict[str, Any]:
    return {"path": m.path, "want": m.want, "live": None if m.got is MISSING else m.got}


def _drift_json(d: Drift) -> dict[str, Any]:
    return {"object": str(d.key), "healed": d.healed,
            "mismatches": [_mismatch_json(m) for m in d.mismatches],
            "addedBy": {who: [dotted(p) for p in paths] for who, paths in d.foreign.items()}}


def _print_drift(plan: Plan) -> None:
    for d in plan.drift:
        verb = "healing" if d.healed else "drift (not healed)"
        console.print(f"[magenta]{verb}[/] {escape(str(d.key))}: {escape(d.describe())}",
                      soft_wrap=True, markup=True, highlight=False)


def _print_notes(plan: Plan) -> None:
    for key in plan.strays:
        console.print(f"[dim]stray[/] {escape(str(key))}: carries this mesh's labels but is "
                      "not in its inventory; left alone", soft_wrap=True, highlight=False)
    for key in plan.disowned:
        console.print(f"[dim]disowned[/] {escape(str(key))}: in the inventory but no longer carries this "
                      "mesh's labels; left alone, never pruned", soft_wrap=True,
                      highlight=False)
    if plan.leftovers:
        console.print(f"[dim]{len(plan.leftovers)} owned object(s) no longer declared "
                      "(apply --prune deletes them):[/] "
                      + escape(", ".join(str(k) for k in plan.leftovers[:10]))
                      + (" …" if len(plan.leftovers) > 10 else ""), soft_wrap=True,
                      highlight=False)
    for note in plan.notes:
        console.print(f"[dim]note[/] {escape(note)}", soft_wrap=True, highlight=False)


def _colour(line: str) -> str:
    escaped = escape(line)
    if line.startswith(("+++", "---")):
        return f"[bold]{escaped}[/]"
    if line.startswith("@@"):
        return f"[cyan]{escaped}[/]"
    if line.startswith("+"):
        return f"[green]{escaped}[/]"
    if line.startswith("-"):
        return f"[red]{escaped}[/]"
    return escaped


def _action_json(action: Action, result: str) -> dict[str, Any]:
    return {"action": result, "object": str(action.key), "kind": action.key.kind,
            "namespace": action.key.namespace, "name": action.key.name,
            "reason": action.reason}


# --- diff ------------------------------------------------------------------------------------


@app.command("diff")
@option_groups(connection=kube_connection, planning=Planning)
def diff_cmd(program: ProgramArg, connection: KubeConnection, planning: Planning,
             output: OutputOpt = Output.text) -> None:
    """Show what `meshctl apply` would change, object by object, from the API server's own
    dry run. Exit 0: no differences; 1: differences (or drift); 2: error."""
    mesh, desired, declared = _desired(program, error_code=2)
    target = kube_target(connection, workers=planning.workers)
    options = planning.options(declared)
    with target, _errors(rejected_code=2, failed_code=2, target=target):
        plan, diffs = run_diff(target, desired, mesh=mesh, options=options)
    if output is not Output.text:
        emit({"mesh": mesh, "changes": plan.has_changes,
              "objects": [{**_action_json(d.action, d.action.verb.value),
                           "diff": "\n".join(d.lines)} for d in diffs],
              "drift": [_drift_json(d) for d in plan.drift],
              "strays": [str(k) for k in plan.strays],
              "disowned": [str(k) for k in plan.disowned],
              "leftovers": [str(k) for k in plan.leftovers]}, output)
        raise typer.Exit(1 if plan.has_changes else 0)
    _print_diffs(diffs)
    _print_drift(plan)
    _print_notes(plan)
    counts = ", ".join(f"{n} to {verb.value}" for verb in Verb
                       if (n := plan.count(verb)))
    summary = counts or "no differences"
    if plan.drift:
        summary += f"; {len(plan.drift)} drifted"
    err_console.print(f"mesh {escape(mesh)}: {summary} ({len(plan.unchanged)} unchanged)",
                      highlight=False, soft_wrap=True)
    raise typer.Exit(1 if plan.has_changes else 0)


def _print_diffs(diffs: list[ObjectDiff]) -> None:
    for d in diffs:
        if not d.lines:
            console.print(f"[yellow]{d.action.verb.value}[/] {escape(str(d.action.key))}: "
                          "no visible change (a field set to its default value)",
                          highlight=False)
            continue
        for line in d.lines:
            console.print(_colour(line), soft_wrap=True, highlight=False)


# --- apply -----------------------------------------------------------------------------------


@app.command("apply")
@option_groups(connection=kube_connection, planning=Planning)
def apply_cmd(
    program: ProgramArg,
    connection: KubeConnection,
    planning: Planning,
    allow_empty: Annotated[bool, typer.Option(
        "--allow-empty", help="With --prune, allow deleting every object the mesh owns.")]
        = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Plan and validate with the server (dryRun=All); write nothing.")]
        = False,
    heal: Annotated[bool, typer.Option(
        "--heal/--report-only", help="Write back objects someone else changed (default), or "
        "only report them.")] = True,
    verbose: Annotated[bool, typer.Option("-v", "--verbose",
                                          help="Also list unchanged objects.")] = False,
    output: OutputOpt = Output.text,
) -> None:
    """Make the cluster match the program: server-side apply of what differs, in a safe
    order, after the API server validated everything (dry run)."""
    mesh, desired, declared = _desired(program, error_code=1)
    target = kube_target(connection, workers=planning.workers)
    options = planning.options(declared, allow_empty=allow_empty, heal=heal, dry_run=dry_run)
    text = output is Output.text
    started = time.perf_counter()

    def planned(plan: Plan) -> None:
        if not text:
            return
        _print_drift(plan)
        if verbose:
            for key in plan.unchanged:
                console.print(f"[dim]unchanged[/] {escape(str(key))}", highlight=False)

    def progress(outcome: Outcome) -> None:
        if not text or outcome.action.internal:
            return
        style = _STYLE.get(outcome.result, "")
        reason = (f" [dim]({escape(outcome.action.reason)})[/]" if outcome.action.reason
                  else "")
        console.print(f"[{style}]{outcome.result}[/] {escape(str(outcome.action.key))}{reason}",
                      soft_wrap=True, highlight=False)
        for warning in outcome.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True,
                              highlight=False)

    with target, _errors(rejected_code=1, failed_code=1, target=target):
        result = run_apply(target, desired, mesh=mesh, options=options, on_plan=planned,
                           on_done=progress)
    elapsed = time.perf_counter() - started
    summary = result.summary()
    if not text:
        emit({"mesh": mesh, "dryRun": dry_run, "summary": summary,
              "writeCalls": result.write_calls, "seconds": round(elapsed, 3),
              "actions": [_action_json(o.action, o.result) for o in result.outcomes
                          if not o.action.internal],
              "drift": [_drift_json(d) for d in result.plan.drift],
              "strays": [str(k) for k in result.plan.strays],
              "disowned": [str(k) for k in result.plan.disowned],
              "leftovers": [str(k) for k in result.plan.leftovers],
              "notes": list(result.plan.notes), "warnings": result.warnings}, output)
        return
    _print_notes(result.plan)
    parts = ", ".join(f"{n} {name}" for name, n in summary.items()
                      if n or name in ("created", "updated", "unchanged", "pruned"))
    tail = ("dry run: nothing written, every object passed the server's validation"
            if dry_run else f"{result.write_calls} write(s)")
    console.print(f"mesh {escape(mesh)}: {parts} ({tail}, {elapsed:.2f} s)", highlight=False,
                  soft_wrap=True)

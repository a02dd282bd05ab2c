"""``meshctl canary``: rehearse a rollout offline, see where one stands, steer it by hand.

- ``simulate PROGRAM --service NS/NAME --metrics recorded.json`` replays the program's
  canary plan against recorded metrics with the real state machine and prints every
  decision and every intermediate VirtualService. Exit 0 when the rollout would be
  promoted, 1 when it would be rolled back or never finishes, 2 for bad input.
- ``status [SERVICE]`` shows stage, weights, each check against its threshold and the
  timeline, from the rollout store the reconciler keeps.
- ``promote | abort | pause | resume SERVICE`` apply a manual command to the stored rollout
  (compare-and-swap, so the reconcile loop never undoes it); the loop applies the resulting
  routes on its next step.

The store is the reconciler's: ``--state-dir DIR`` (rollouts in ``DIR/rollouts``; by
default ``$XDG_STATE_HOME/meshdsl/<name>``) for the local target, or ``--state cluster`` with
``--kubeconfig``/``--context``, ``--name`` and ``--system-namespace`` for the ConfigMaps a
kube reconciler keeps (``--kubeconfig`` or ``--context`` alone select the cluster too).
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from meshdsl.compile import to_yaml
from meshdsl.model.canary import CanaryPlan
from reconciler.cli.app import (
    Output,
    add_row,
    app,
    command_group,
    console,
    emit,
    fail,
    print_table,
    table,
)
from reconciler.cli.mesh import ProgramArg, load_or_exit
from reconciler.cli.options import (
    OutputOpt,
    StateDirOpt,
    StateKind,
    StateOpt,
    kube_connection,
    option_groups,
    rollout_store,
)
from reconciler.delivery import machine
from reconciler.delivery.actions import Action
from reconciler.delivery.analysis import CheckResult, Verdict
from reconciler.delivery.errors import DeliveryError, ManualCommandError
from reconciler.delivery.phases import Phase, RolloutState
from reconciler.delivery.simulate import Recording, SimStep, Simulation, simulate
from reconciler.ports import RolloutStore, RolloutStoreError, StaleRolloutError
from reconciler.runtime.assemble import KubeConnection
from reconciler.runtime.status import STATE_NAMESPACE

canary_app = command_group("canary", "Progressive delivery: simulate, inspect and steer "
                           "canary rollouts.")
app.add_typer(canary_app, name="canary")

ServiceOpt = Annotated[str, typer.Option("--service", help="The canaried service, "
                                         "NAMESPACE/NAME (or NAME when unique).")]
ServiceArg = Annotated[str, typer.Argument(help="The service: NAMESPACE/NAME (or NAME when "
                                           "only one rollout has it).")]
NameOpt = Annotated[str, typer.Option(
    "--name", help="The reconciler whose rollouts these are.")]
SystemNamespaceOpt = Annotated[str | None, typer.Option(
    "--system-namespace", help=f"With --state cluster: the namespace of the reconciler's "
    f"ConfigMaps (default: {STATE_NAMESPACE}).")]

_VERDICT_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "bold red", Verdict.NO_DATA: "yellow"}
_RETRIES = 5


# --- simulate -----------------------------------------------------------------------------


def _plan(plans: list[CanaryPlan], service: str, where: str) -> CanaryPlan:
    ns, _, name = service.rpartition("/")
    found = [p for p in plans if p.service == name and (not ns or p.namespace == ns)]
    if len(found) != 1:
        known = ", ".join(f"{p.namespace}/{p.service}" for p in plans) or "none"
        what = "several canaries match" if found else "no canary plan for"
        fail(f"{what} {service!r} in {where} (canaries: {known})", 2)
    return found[0]


def _check_row(check: CheckResult) -> list[str | Text]:
    value = "-" if check.value is None else f"{check.value:.4g}"
    prefix = ""
    if check.stable_value is not None:
        value += f" (stable {check.stable_value:.4g})"
        prefix = "canary - stable "
    bounds = [f"{prefix}>= {check.min:g}"] if check.min is not None else []
    bounds += [f"{prefix}<= {check.max:g}"] if check.max is not None else []
    style = _VERDICT_STYLE[check.verdict]
    return [check.name, value, " and ".join(bounds) or "-",
            Text(check.verdict.value, style=style), check.message]


def _clock(at: float) -> str:
    if at > 1e9:  # wall-clock seconds, as the reconciler stores them
        return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"+{at:g}s"


def _step_json(sim_step: SimStep) -> dict[str, Any]:
    return {"at": sim_step.at, "phase": sim_step.phase.value, "stage": sim_step.stage,
            "weights": sim_step.traffic.weights, "traffic": sim_step.traffic.describe(),
            "decision": sim_step.decision, "checks": [c.to_json() for c in sim_step.checks],
            "actions": list(sim_step.actions),
            "virtual_services": list(sim_step.virtual_services)}


def _print_simulation(plan: CanaryPlan, recording: Recording, sim: Simulation) -> None:
    console.print(f"[bold]Simulating {escape(plan.namespace)}/{escape(plan.service)}[/]: "
                  f"{escape(plan.stable)} -> {escape(plan.target)}, "
                  f"{sim.final.stage_count} stages, interval {plan.interval}"
                  + (f"\n[dim]{escape(recording.description)}[/]"
                     if recording.description else ""), soft_wrap=True)
    for sim_step in sim.steps:
        console.print(f"\n[bold]{_clock(sim_step.at)}[/] {sim_step.phase.value} "
                      f"[cyan]{escape(sim_step.stage)}[/]  "
                      f"{escape(sim_step.traffic.describe())}\n"
                      f"  {escape(sim_step.decision)}", soft_wrap=True)
        for check in sim_step.checks:
            style = _VERDICT_STYLE[check.verdict]
            console.print(f"    [{style}]{check.verdict.value}[/] {escape(check.name)}: "
                          f"{escape(check.message)}", soft_wrap=True)
        for action in sim_step.actions:
            if action.startswith("call "):
                console.print(f"    -> {action}", soft_wrap=True, markup=False)
        for manifest in sim_step.virtual_services:
            console.print(to_yaml([manifest]).rstrip(), markup=False, highlight=False,
                          soft_wrap=True)
    decisions = table("#", "time", "phase", "stage", "weights", "decision", title="Decisions")
    for index, sim_step in enumerate(sim.steps):
        weights = ", ".join(f"{k}={v}" for k, v in sim_step.traffic.weights.items())
        add_row(decisions, str(index), _clock(sim_step.at), sim_step.phase.value,
                sim_step.stage, weights, sim_step.decision)
    print_table(decisions)
    for warning in sim.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    outcome = {Phase.SUCCEEDED: "[green]promoted[/]", Phase.FAILED: "[red]rolled back[/]"}
    console.print(f"result: {outcome.get(sim.final.phase, '[yellow]not finished[/]')} "
                  f"after {len(sim.steps) - 1} step(s)")


@canary_app.command("simulate")
def simulate_cmd(
    program: ProgramArg,
    service: ServiceOpt,
    metrics: Annotated[Path, typer.Option("--metrics", help="Recorded metrics (JSON; see "
                                          "examples/canary/recorded-healthy.json).")],
    output: OutputOpt = Output.text,
) -> None:
    """Replay the service's canary plan against recorded metrics, offline."""
    loaded = load_or_exit(program)
    plan = _plan(list(loaded.spec.canaries), service, loaded.source)
    try:
        recording = Recording.from_json(json.loads(metrics.read_text()))
        sim = simulate(loaded.spec, plan, recording)
    except OSError as exc:
        fail(f"cannot read {metrics}: {exc.strerror or exc}", 2)
    except ValueError as exc:  # JSONDecodeError
        fail(f"{metrics} is not JSON: {exc}", 2)
    except DeliveryError as exc:
        fail(f"{metrics}: {exc}", 2)
    if output is Output.text:
        _print_simulation(plan, recording, sim)
    else:
        emit({"service": f"{plan.namespace}/{plan.service}", "finished": sim.finished,
              "result": sim.final.phase.value, "warnings": list(sim.warnings),
              "steps": [_step_json(s) for s in sim.steps], "final": sim.final.to_json()},
             output)
    raise typer.Exit(0 if sim.final.phase is Phase.SUCCEEDED else 1)


# --- status and manual commands -------------------------------------------------------


@option_groups(connection=kube_connection)
def _store(state: StateOpt = StateKind.auto, state_dir: StateDirOpt = None, *,
           connection: KubeConnection, name: NameOpt = "default",
           system_namespace: SystemNamespaceOpt = None) -> RolloutStore:
    """The group of options that find the reconciler's rollout store (exit 2 on a mix)."""
    return rollout_store(name, state=state, state_dir=state_dir, connection=connection,
                         namespace=system_namespace)


def _find(store: RolloutStore, service: str) -> tuple[str, str]:
    ns, _, name = service.rpartition("/")
    try:
        if ns:
            return ns, name
        matches = [s.state.key for s in store.list_rollouts() if s.state.service == name]
    except RolloutStoreError as exc:
        fail(str(exc), 2)
    if len(matches) != 1:
        what = "several rollouts are" if matches else "no rollout is"
        fail(f"{what} named {name!r} in {store.describe()}; give NAMESPACE/NAME", 2)
    return matches[0]


def _print_status(state: RolloutState, now: float) -> None:
    stage = (f"stage {state.stage_index + 1}/{state.stage_count} ({state.stage_label})"
             if state.stage_index >= 0 else state.stage_label)
    console.print(f"[bold]{escape(state.namespace)}/{escape(state.service)}[/]  "
                  f"[bold]{state.phase.value}[/]  {escape(stage)}  target "
                  f"{escape(state.target)}, stable {escape(state.stable)}"
                  + (f", revision {escape(state.revision)}" if state.revision else ""),
                  soft_wrap=True)
    console.print(f"  traffic: {state.traffic.describe()}", soft_wrap=True, markup=False)
    line = (f"  failed checks {state.failed_checks}/{state.max_failed_checks}, no data "
            f"{state.no_data_count}/{state.no_data_limit}, {state.analyses} analyses")
    if state.next_analysis_at is not None and state.active:
        line += f", next analysis in {max(0.0, state.next_analysis_at - now):.0f}s"
    console.print(line)
    if state.reason:
        console.print(f"  reason: {state.reason}", soft_wrap=True, markup=False)
    if state.last_analysis:
        checks = table("check", "value", "threshold", "verdict", "detail",
                       title="last analysis")
        for check in state.last_analysis:
            add_row(checks, *_check_row(check))
        print_table(checks)
    console.print("  timeline:")
    for entry in state.timeline:
        console.print(f"    {_clock(entry.at)}  {entry.phase.value:<13} {entry.stage:<18} "
                      f"{entry.message}", soft_wrap=True, markup=False)


@canary_app.command("status")
@option_groups(store=_store)
def status_cmd(
    service: Annotated[str | None, typer.Argument(help="NAMESPACE/NAME or NAME; all "
                                                  "rollouts when omitted.")] = None,
    *,
    store: RolloutStore,
    output: OutputOpt = Output.text,
) -> None:
    """Where each rollout stands: stage, weights, checks against thresholds, timeline."""
    try:
        if service is None:
            states = [s.state for s in store.list_rollouts()]
        else:
            stored = store.load(*_find(store, service))
            if stored is None:
                fail(f"no rollout of {service} in {store.describe()}", 1)
            states = [stored.state]
    except RolloutStoreError as exc:
        fail(str(exc), 2)
    if output is not Output.text:
        emit({"rollouts": [s.to_json() for s in states]}, output)
        return
    if not states:
        console.print(f"no rollouts in {store.describe()}", markup=False)
    for rollout in states:
        _print_status(rollout, time.time())


Command = Callable[[RolloutState, float], tuple[RolloutState, list[Action]]]


def _manual(command: Command, verb: str, service: str, store: RolloutStore) -> None:
    key = _find(store, service)
    for _ in range(_RETRIES):
        try:
            stored = store.load(*key)
            if stored is None:
                fail(f"no rollout of {key[0]}/{key[1]} in {store.describe()}", 1)
            state, _actions = command(stored.state, time.time())
            if state != stored.state:
                store.save(state, expected_generation=stored.generation)
        except StaleRolloutError:
            continue  # the loop wrote in between: apply the command to its state
        except ManualCommandError as exc:
            fail(str(exc), 1)
        except RolloutStoreError as exc:
            fail(str(exc), 2)
        console.print(f"{key[0]}/{key[1]}: {verb} -> {state.phase.value} "
                      f"({state.traffic.describe()}); the reconciler applies the routes on "
                      "its next step", soft_wrap=True, markup=False)
        return
    fail(f"{key[0]}/{key[1]} kept changing under us; try again", 1)


def _manual_command(verb: str, command: Command, summary: str) -> None:
    """Register ``meshctl canary VERB SERVICE`` with the store options of ``status``."""

    @option_groups(store=_store)
    def run(service: ServiceArg, store: RolloutStore) -> None:
        _manual(command, verb, service, store)

    run.__doc__ = summary
    canary_app.command(verb)(run)


_manual_command("promote", machine.promote,
                "Skip the remaining stages and gates: all traffic to the target.")
_manual_command("abort", machine.abort,
                "Roll back now: all traffic to stable, the rollout ends as failed.")
_manual_command("pause", machine.pause,
                "Freeze the rollout: traffic stays, nothing is judged until resume.")
_manual_command("resume", machine.resume,
                "Continue a paused rollout (its stage is judged after a fresh interval).")

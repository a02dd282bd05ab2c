"""The options several commands share, and the factories behind them.

Every command that talks to a cluster takes ``--kubeconfig/--context/--as`` and connects
through :func:`kube_target`; every command that reads a reconciler's state finds it through
:func:`state_location` — so ``--state-dir`` has one default
(``$XDG_STATE_HOME/meshdsl/<name>``) and ``--state auto`` one meaning everywhere.
Factories turn a bad option into one line on stderr and exit 2 (:func:`~reconciler.cli.app.fail`).

Options that travel together are declared once, as a *group* (:func:`option_groups`): a
function whose parameters are the options and whose result is what a command works with
(:func:`kube_connection`, :func:`reconciler_state`), so a command names one parameter
instead of repeating six.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from reconciler.cli.app import Output, fail
from reconciler.runtime.assemble import (
    KubeConnection,
    StateKind,
    TargetKind,
    default_state_dir,
)
from reconciler.runtime.rollout_store import ClusterRolloutStore, DiskRolloutStore
from reconciler.runtime.status import STATE_NAMESPACE, ClusterStore, DiskStore
from reconciler.targets.kube import KubeConfigError, KubeTarget

__all__ = [
    "AsOpt", "ContextOpt", "KubeconfigOpt", "NameOpt", "NamespaceOpt", "OutputOpt",
    "ReconcilerState", "StateDirOpt", "StateKind", "StateOpt", "TargetKind", "WaitOpt",
    "kube_connection", "kube_target", "option_groups", "parse_duration", "reconciler_state",
    "rollout_store", "state_location", "status_store",
]

NameOpt = Annotated[str, typer.Option(
    "--name", help="Name of this reconciler: keys its status, control, lease and cache.")]
StateDirOpt = Annotated[Path | None, typer.Option(
    "--state-dir", help="Where the reconciler's state lives on disk (default "
    "$XDG_STATE_HOME/meshdsl/<name>, i.e. ~/.local/state/meshdsl/<name>; rollouts are in "
    "DIR/rollouts).")]
StateOpt = Annotated[StateKind, typer.Option(
    "--state", help="Where the reconciler keeps its state: disk (--state-dir) or cluster "
    "(ConfigMaps). auto: cluster when --kubeconfig or --context is given without "
    "--state-dir, else disk.")]
KubeconfigOpt = Annotated[str | None, typer.Option(
    "--kubeconfig", help="Path of the kubeconfig (default: $KUBECONFIG, ~/.kube/config, "
    "then in-cluster); also where state kept in the cluster is read and written.")]
ContextOpt = Annotated[str | None, typer.Option(
    "--context", help="The kubeconfig context to use (default: its current context).")]
AsOpt = Annotated[str | None, typer.Option(
    "--as", help="Impersonate this user (like kubectl --as).")]
NamespaceOpt = Annotated[str, typer.Option(
    "--system-namespace", help="Namespace of the reconciler's ConfigMaps (status, control, "
    "rollouts), the inventory and the Lease.")]
OutputOpt = Annotated[Output, typer.Option("-o", "--output", help="text, json or yaml.")]
WaitOpt = Annotated[str, typer.Option(
    "--wait", help="Wait this long for the running reconciler to act (0: don't wait).")]

_Command = TypeVar("_Command", bound=Callable[..., Any])


def option_groups(**groups: Callable[..., Any]) -> Callable[[_Command], _Command]:
    """Give a command option groups: each keyword names one of its parameters and the group
    function that builds its value. Typer sees the group's own parameters (its options, with
    their defaults) in that parameter's place; the command receives what the group built.

    Typer passes every option by name, so all parameters become keyword-only here; a group
    may itself be decorated with groups (:func:`reconciler_state` holds
    :func:`kube_connection`).
    """

    def decorate(command: _Command) -> _Command:
        own = inspect.signature(command, eval_str=True)
        params: list[inspect.Parameter] = []
        takes: dict[str, list[str]] = {}
        for param in own.parameters.values():
            group = groups.get(param.name)
            options = (list(inspect.signature(group, eval_str=True).parameters.values())
                       if group is not None else [param])
            takes[param.name] = [o.name for o in options]
            params += [o.replace(kind=inspect.Parameter.KEYWORD_ONLY) for o in options]
        names = [p.name for p in params]
        clash = {n for n in names if names.count(n) > 1}
        if clash or set(groups) - set(own.parameters):
            raise TypeError(f"{command.__qualname__}: option groups {sorted(groups)} clash "
                            f"on {sorted(clash)} or name no parameter")

        @functools.wraps(command)
        def run(**given: Any) -> Any:
            for name, group in groups.items():
                given[name] = group(**{o: given.pop(o) for o in takes[name]})
            return command(**given)

        run.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run  # type: ignore[return-value]

    return decorate


def kube_connection(kubeconfig: KubeconfigOpt = None, context: ContextOpt = None,
                    as_user: AsOpt = None) -> KubeConnection:
    """The group ``--kubeconfig/--context/--as``: how to reach the API server."""
    return KubeConnection(kubeconfig, context, as_user)


@dataclass(frozen=True)
class ReconcilerState:
    """Which reconciler, and where its status and control are kept."""

    name: str
    store: ClusterStore | DiskStore


@option_groups(connection=kube_connection)
def reconciler_state(name: NameOpt = "default", state_dir: StateDirOpt = None, *,
                     connection: KubeConnection,
                     system_namespace: NamespaceOpt = STATE_NAMESPACE) -> ReconcilerState:
    """The group ``--name/--state-dir/--kubeconfig/--context/--as/--system-namespace`` of
    the commands that read or steer a running reconciler (``--state auto``)."""
    return ReconcilerState(name, status_store(name, state=StateKind.auto, state_dir=state_dir,
                                              connection=connection,
                                              namespace=system_namespace))


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}


ProgramTimeoutOpt = Annotated[str, typer.Option(
    "--program-timeout", help="Wall-clock limit for running the program: 10s, 500ms, 1m "
    "or plain seconds.")]
ProgramMemoryOpt = Annotated[int, typer.Option(
    "--program-memory-mb", help="Address-space limit of the program, MiB.")]
GatewayPortOpt = Annotated[int | None, typer.Option(
    "--gateway-port", min=1, max=65535,
    help="Local port of the ingress gateway's first server (default: a free port).")]


def parse_duration(text: str, *, what: str) -> float:
    """``500ms``, ``10s``, ``1m``, ``1h`` or plain seconds; ``0`` means off."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|)\s*", text)
    if not match:
        fail(f"{what}: {text!r} is not a duration (e.g. 500ms, 30s, 5m)", 2)
    return float(match.group(1)) * _UNITS[match.group(2)]


def kube_target(connection: KubeConnection, *, workers: int = 8) -> KubeTarget:
    """Connect like kubectl; a kubeconfig that cannot be loaded is exit 2."""
    try:
        return KubeTarget.from_kubeconfig(connection.kubeconfig, context=connection.context,
                                          impersonate=connection.as_user,
                                          pool_size=workers + 4)
    except KubeConfigError as exc:
        fail(str(exc), 2)


def state_location(state: StateKind, state_dir: Path | None, connection: KubeConnection,
                   *, name: str) -> tuple[StateKind, Path]:
    """Resolve ``--state auto``: the cluster when a kubeconfig or context is given without
    ``--state-dir``, else disk; and the directory (``--state-dir`` or the default)."""
    if state is StateKind.auto:
        state = (StateKind.cluster if state_dir is None and connection.selects_cluster
                 else StateKind.disk)
    return state, (state_dir or default_state_dir(name)).expanduser()


def status_store(name: str, *, state: StateKind, state_dir: Path | None,
                 connection: KubeConnection, namespace: str) -> ClusterStore | DiskStore:
    """The status/control store of reconciler ``name``, as the options select it."""
    kind, directory = state_location(state, state_dir, connection, name=name)
    if kind is StateKind.cluster:
        return ClusterStore(kube_target(connection), name, namespace=namespace)
    return DiskStore(directory)


def rollout_store(name: str, *, state: StateKind, state_dir: Path | None,
                  connection: KubeConnection,
                  namespace: str | None) -> ClusterRolloutStore | DiskRolloutStore:
    """The rollout store beside reconciler ``name``'s status (exit 2 on a mix of disk and
    cluster options, or a state directory that does not exist)."""
    kind, directory = state_location(state, state_dir, connection, name=name)
    if kind is StateKind.cluster:
        if state_dir is not None:
            fail("--state-dir is for rollouts on disk; with --state cluster they are found by "
                 "--kubeconfig/--context, --name and --system-namespace", 2)
        return ClusterRolloutStore(kube_target(connection),
                                   namespace=namespace or STATE_NAMESPACE, name=name)
    cluster_options = [flag for flag, value in (
        ("--kubeconfig", connection.kubeconfig), ("--context", connection.context),
        ("--as", connection.as_user), ("--system-namespace", namespace)) if value is not None]
    if cluster_options:
        fail(f"{', '.join(cluster_options)}: only for rollouts in the cluster (--state "
             "cluster); rollouts on disk are found by --state-dir", 2)
    if not directory.is_dir():
        fail(f"state directory {directory} does not exist (give the reconciler's "
             "--state-dir)", 2)
    return DiskRolloutStore.in_state_dir(directory)

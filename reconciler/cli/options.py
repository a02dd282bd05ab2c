"""The options several commands share, and the factories behind them.

Every command that talks to a cluster takes ``--kubeconfig/--context/--as`` and connects
through :func:`kube_target`; every command that reads a reconciler's state finds it through
:func:`state_location` — so ``--state-dir`` has one default
(``$XDG_STATE_HOME/meshdsl/<name>``) and ``--state auto`` one meaning everywhere.
Factories turn a bad option into one line on stderr and exit 2 (:func:`~reconciler.cli.app.fail`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

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
    "StateDirOpt", "StateKind", "StateOpt", "TargetKind", "WaitOpt", "kube_target",
    "parse_duration", "rollout_store", "state_location", "status_store",
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

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}


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

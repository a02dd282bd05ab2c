"""``meshctl reconcile``: keep the mesh matching a Git branch (or a local directory).

The command only parses: its options become one :class:`~reconciler.runtime.assemble.
ReconcileConfig`, which :mod:`reconciler.runtime.assemble` turns into a running reconciler.
It runs until stopped (SIGTERM/SIGINT), triggered by pushes (webhook), polling, file
changes (``--dir``) and a periodic drift check; ``--once`` reconciles once and exits.
Exit codes: 0 applied/unchanged, 1 a failed reconcile, 2 bad input or environment.
"""

from __future__ import annotations

import os
import signal
import threading
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from reconciler.cli.app import app, fail
from reconciler.cli.dashboard import DashboardListenOpt, serve_reconciler
from reconciler.cli.fence import AdoptOpt, AllowNsOpt, fence_options
from reconciler.cli.options import (
    GatewayPortOpt,
    NameOpt,
    NamespaceOpt,
    ProgramMemoryOpt,
    ProgramTimeoutOpt,
    StateDirOpt,
    kube_connection,
    option_groups,
    parse_duration,
    state_location,
)
from reconciler.cli.status_text import print_status
from reconciler.runtime.assemble import (
    AssemblyError,
    KubeConnection,
    ReconcileConfig,
    StateKind,
    TargetKind,
    assemble,
    default_cache_dir,
)
from reconciler.runtime.status import STATE_NAMESPACE, Result
from reconciler.runtime.telemetry import event


class LogFormat(StrEnum):
    json = "json"
    text = "text"


def _secret(secret_file: Path | None, insecure: bool) -> bytes | None:
    """The webhook secret: ``--webhook-secret-file`` or ``$MESHDSL_WEBHOOK_SECRET``.

    ``None`` only with ``--insecure-skip-webhook-verification``; without a secret (and
    without that flag) pushes are refused with 401 — polling still works."""
    if insecure:
        return None
    if secret_file is not None:
        try:
            value = secret_file.read_bytes().strip()
        except OSError as exc:
            fail(f"cannot read the webhook secret: {exc}", 2)
        if not value:
            fail(f"{secret_file} is empty", 2)
        return value
    return os.environ.get("MESHDSL_WEBHOOK_SECRET", "").strip().encode()


def _listen(value: str) -> tuple[str, int] | None:
    if value.lower() in ("", "off", "none", "false"):
        return None
    host, _, port = value.rpartition(":")
    if not port.isdigit():
        fail(f"--listen {value!r}: expected HOST:PORT (or 'off')", 2)
    return host or "127.0.0.1", int(port)


@app.command("reconcile")
@option_groups(connection=kube_connection)
def reconcile_cmd(
    repo: Annotated[str | None, typer.Option(
        "--repo", help="Git URL or path of the repository to track.")] = None,
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="Track a local directory instead of Git (watched; the dev loop).")]
        = None,
    branch: Annotated[str | None, typer.Option("--branch", help="Branch to track.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Track a tag instead.")] = None,
    path: Annotated[str, typer.Option(
        "--path", help="The mesh program inside the repository (file or file:attr).")]
        = "mesh.py",
    target: Annotated[TargetKind, typer.Option(
        "--target", help="kube (an API server) or local (the Envoy mesh).")] = TargetKind.kube,
    *,
    connection: KubeConnection,
    name: NameOpt = "default",
    state: Annotated[StateKind, typer.Option(
        "--state", help="Where status/history persist: cluster (ConfigMaps; default for "
        "kube) or disk (default for local).")] = StateKind.auto,
    state_dir: StateDirOpt = None,
    cache_dir: Annotated[Path | None, typer.Option(
        "--cache-dir", help="Git clone and checkouts (default "
        "$XDG_CACHE_HOME/meshdsl/reconcile/<name>).")] = None,
    system_namespace: NamespaceOpt = STATE_NAMESPACE,
    listen: Annotated[str, typer.Option(
        "--listen", help="HOST:PORT for the webhook (POST /webhook), /healthz, /readyz and "
        "/metrics; 'off' to disable.")] = "127.0.0.1:8080",
    webhook_secret_file: Annotated[Path | None, typer.Option(
        "--webhook-secret-file", help="File holding the webhook secret (else "
        "$MESHDSL_WEBHOOK_SECRET).")] = None,
    insecure: Annotated[bool, typer.Option(
        "--insecure-skip-webhook-verification",
        help="Accept unsigned pushes (a local dev loop only).")] = False,
    interval: Annotated[str, typer.Option(
        "--interval", help="Poll the remote this often (0: off; pushes still trigger).")]
        = "60s",
    drift_interval: Annotated[str, typer.Option(
        "--drift-interval", help="Re-check the target for drift this often (0: off).")]
        = "60s",
    self_heal: Annotated[bool, typer.Option(
        "--self-heal/--report-only", help="Write back drift (default) or only report it.")]
        = True,
    prune: Annotated[bool, typer.Option(
        "--prune/--no-prune", help="Delete objects the program no longer declares.")] = True,
    allowed_signers: Annotated[Path | None, typer.Option(
        "--allowed-signers", help="Only apply commits whose signature verifies against this "
        "SSH allowed-signers file (git verify-commit).")] = None,
    program_timeout: ProgramTimeoutOpt = "10s",
    program_memory: ProgramMemoryOpt = 1024,
    leader_elect: Annotated[bool | None, typer.Option(
        "--leader-elect/--no-leader-elect", help="Hold a Lease so only one replica "
        "reconciles (default: on for the kube target).")] = None,
    lease_duration: Annotated[str, typer.Option("--lease-duration")] = "15s",
    identity: Annotated[str | None, typer.Option(
        "--identity", help="Leader-election identity (default host_random).")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="Reconcile once and exit: 0 applied/unchanged, 1 failed.")] = False,
    gateway_port: GatewayPortOpt = None,
    rollouts: Annotated[bool, typer.Option(
        "--rollouts/--no-rollouts", help="Run the program's canary plans (progressive "
        "delivery); off: deploy its routes as written.")] = True,
    prometheus: Annotated[str | None, typer.Option(
        "--prometheus", help="Prometheus URL for canary analysis (default for --target "
        "local: read each Envoy's /stats directly).")] = None,
    rollout_period: Annotated[str, typer.Option(
        "--rollout-tick", help="How often rollouts are advanced (analyses still run once "
        "per plan interval).")] = "1s",
    log_format: Annotated[LogFormat, typer.Option("--log-format")] = LogFormat.json,
    allow_namespace: AllowNsOpt = None,
    adopt: AdoptOpt = None,
    apply_as: Annotated[str | None, typer.Option(
        "--apply-as", help="Apply the mesh as this user (e.g. system:serviceaccount:NS:SA); "
        "state, control and the Lease stay the reconciler's own.")] = None,
    dashboard: Annotated[bool, typer.Option(
        "--dashboard/--no-dashboard", help="Serve the read-only live graph, canaries and "
        "revisions (a token is required when not on loopback; the URL carries it).")] = False,
    dashboard_listen: DashboardListenOpt = "127.0.0.1:0",
) -> None:
    """Keep the mesh matching a Git branch (or a local directory): the GitOps reconciler."""
    if (repo is None) == (directory is None):
        fail("give exactly one of --repo (Git) or --dir (a local directory)", 2)
    if branch is not None and tag is not None:
        fail("--branch and --tag are exclusive", 2)
    if directory is not None:
        if not directory.is_dir():
            fail(f"--dir {directory}: not a directory", 2)
        if allowed_signers is not None:
            fail("--allowed-signers needs a Git source (--repo)", 2)
    if allowed_signers is not None and not allowed_signers.is_file():
        fail(f"--allowed-signers {allowed_signers}: no such file", 2)
    fence_options({}, adopt, allow_namespace, system_namespace)  # exits 2 on a bad --adopt
    if state is StateKind.auto:
        state = StateKind.cluster if target is TargetKind.kube and state_dir is None else (
            StateKind.disk)
    if state is StateKind.cluster and target is not TargetKind.kube:
        fail("--state cluster needs the kube target", 2)
    elect = (target is TargetKind.kube) if leader_elect is None else leader_elect
    if elect and not once and target is not TargetKind.kube:
        fail("--leader-elect needs the kube target", 2)
    config = ReconcileConfig(
        name=name, program=path, target=target, state=state,
        state_dir=state_location(StateKind.disk, state_dir, connection, name=name)[1],
        cache_dir=(cache_dir or default_cache_dir(name)).expanduser().resolve(),
        system_namespace=system_namespace, repo=repo, directory=directory, branch=branch,
        tag=tag, kube=connection,
        listen=None if once else _listen(listen),
        webhook_secret=None if once else _secret(webhook_secret_file, insecure),
        poll_interval=parse_duration(interval, what="--interval") or None,
        drift_interval=parse_duration(drift_interval, what="--drift-interval") or None,
        self_heal=self_heal, prune=prune, allowed_signers=allowed_signers,
        program_timeout=parse_duration(program_timeout, what="--program-timeout"),
        program_memory_mb=program_memory, leader_elect=elect,
        lease_duration=parse_duration(lease_duration, what="--lease-duration"),
        identity=identity, once=once, gateway_port=gateway_port, rollouts=rollouts,
        prometheus=prometheus,
        rollout_period=parse_duration(rollout_period, what="--rollout-tick") or 1.0,
        log_format=log_format.value, allow_namespaces=tuple(allow_namespace or ()),
        adopt=tuple(adopt or ()), apply_as=apply_as, dashboard=dashboard,
        dashboard_listen=dashboard_listen)
    raise typer.Exit(run(config))


def run(config: ReconcileConfig) -> int:
    """Assemble and run the reconciler; the exit code."""
    stopping = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        event("stopping", name=config.name, signal=signal.Signals(signum).name)
        stopping.set()

    try:
        with assemble(config) as parts:
            if config.once:
                status = parts.once()
                last = status.last
                code = 1 if last is not None and last.result is Result.FAILED else 0
            else:
                signal.signal(signal.SIGTERM, on_signal)
                signal.signal(signal.SIGINT, on_signal)
                parts.start()
                board = serve_reconciler(
                    parts.store, name=config.name, mesh=parts.local_mesh,
                    prometheus=config.prometheus, listen=config.dashboard_listen,
                ) if config.dashboard else None
                try:
                    parts.serve(stopping)
                finally:
                    if board is not None:
                        board.stop()
                return 0
    except AssemblyError as exc:
        fail(str(exc), 2)
    print_status(status)
    return code

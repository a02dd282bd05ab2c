"""``meshctl reconcile`` and its companions: status, history, rollback, suspend, resume,
install.

``reconcile`` runs until stopped (SIGTERM/SIGINT): it keeps the target matching the tracked
branch, triggered by pushes (webhook), polling, file changes (``--dir``) and a periodic
drift check. The other commands only read the state store or write a control request
that the running reconciler carries out — they never touch the mesh themselves.
Exit codes: 0 success, 1 a failed reconcile/rollback (or a wait that timed out), 2 bad
input or environment.
"""

from __future__ import annotations

import getpass
import os
import re
import signal
import socket
import threading
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from reconciler.cli.app import Output, app, console, emit, err_console, fail
from reconciler.ports import Source, StateStore
from reconciler.runtime.status import (
    STATE_NAMESPACE,
    Attempt,
    ClusterStore,
    Control,
    DiskStore,
    Result,
    StateLockedError,
    Status,
)

# --- shared options ------------------------------------------------------------------------

NameOpt = Annotated[str, typer.Option(
    "--name", help="Name of this reconciler: keys its status, control, lease and cache.")]
StateDirOpt = Annotated[Path | None, typer.Option(
    "--state-dir", help="Where status lives on disk (default "
    "$XDG_STATE_HOME/meshdsl/<name>, i.e. ~/.local/state/meshdsl/<name>).")]
KubeconfigOpt = Annotated[str | None, typer.Option(
    "--kubeconfig", help="Kubeconfig: for the kube target, and to read/write status kept "
    "in the cluster.")]
ContextOpt = Annotated[str | None, typer.Option("--context", help="Kubeconfig context.")]
AsOpt = Annotated[str | None, typer.Option("--as", help="Impersonate this user.")]
NamespaceOpt = Annotated[str, typer.Option(
    "--system-namespace", help="Namespace of the status/control ConfigMaps, the inventory "
    "and the Lease.")]
OutputOpt = Annotated[Output, typer.Option("-o", "--output", help="text, json or yaml.")]


class TargetKind(StrEnum):
    kube = "kube"
    local = "local"


class StateKind(StrEnum):
    auto = "auto"
    cluster = "cluster"
    disk = "disk"


class LogFormat(StrEnum):
    json = "json"
    text = "text"


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}


def parse_duration(text: str, *, what: str) -> float:
    """``500ms``, ``10s``, ``1m``, ``1h`` or plain seconds; ``0`` means off."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|)\s*", text)
    if not match:
        fail(f"{what}: {text!r} is not a duration (e.g. 500ms, 30s, 5m)", 2)
    return float(match.group(1)) * _UNITS[match.group(2)]


def _xdg(var: str, default: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / default


def default_state_dir(name: str) -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "meshdsl" / name


def default_cache_dir(name: str) -> Path:
    return _xdg("XDG_CACHE_HOME", ".cache") / "meshdsl" / "reconcile" / name


def _kube_target(kubeconfig: str | None, context: str | None, as_user: str | None,
                 *, workers: int = 8) -> Any:
    from reconciler.targets.kube import KubeConfigError, KubeTarget

    try:
        return KubeTarget.from_kubeconfig(kubeconfig, context=context, impersonate=as_user,
                                          pool_size=workers + 4)
    except KubeConfigError as exc:
        fail(str(exc), 2)


def _store(name: str, *, state: StateKind, state_dir: Path | None, kubeconfig: str | None,
           context: str | None, as_user: str | None, namespace: str) -> StateStore:
    cluster = state is StateKind.cluster or (
        state is StateKind.auto and state_dir is None and bool(kubeconfig or context))
    if cluster:
        return ClusterStore(_kube_target(kubeconfig, context, as_user), name,
                            namespace=namespace)
    return DiskStore(state_dir or default_state_dir(name))


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"{user}@{socket.gethostname()}"


# --- reconcile -----------------------------------------------------------------------------


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
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    as_user: AsOpt = None,
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
    program_timeout: Annotated[str, typer.Option(
        "--program-timeout", help="Wall-clock limit for running the program.")] = "10s",
    program_memory: Annotated[int, typer.Option(
        "--program-memory-mb", help="Address-space limit of the program's process.")]
        = 1024,
    leader_elect: Annotated[bool | None, typer.Option(
        "--leader-elect/--no-leader-elect", help="Hold a Lease so only one replica "
        "reconciles (default: on for the kube target).")] = None,
    lease_duration: Annotated[str, typer.Option("--lease-duration")] = "15s",
    identity: Annotated[str | None, typer.Option(
        "--identity", help="Leader-election identity (default host_random).")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="Reconcile once and exit: 0 applied/unchanged, 1 failed.")] = False,
    gateway_port: Annotated[int | None, typer.Option(
        "--gateway-port", min=1, max=65535,
        help="With --target local: the ingress gateway's port (default: a free one).")]
        = None,
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
) -> None:
    """Keep the mesh matching a Git branch (or a local directory): the GitOps reconciler."""
    from reconciler.runtime.loop import Reconciler, Settings
    from reconciler.runtime.sandbox import Limits, Sandbox
    from reconciler.runtime.telemetry import Telemetry, configure_logging, event
    from reconciler.sources.webhook import Verdict, WebhookServer

    if (repo is None) == (directory is None):
        fail("give exactly one of --repo (Git) or --dir (a local directory)", 2)
    if branch is not None and tag is not None:
        fail("--branch and --tag are exclusive", 2)
    configure_logging(log_format.value)
    cache = (cache_dir or default_cache_dir(name)).expanduser()
    source: Source
    if repo is not None:
        from reconciler.sources.git import GitSource

        source = GitSource(repo, branch=None if tag else (branch or "main"), tag=tag,
                           cache_dir=cache)
    else:
        from reconciler.sources.directory import DirectorySource

        assert directory is not None
        if not directory.is_dir():
            fail(f"--dir {directory}: not a directory", 2)
        source = DirectorySource(directory, cache_dir=cache)
        if allowed_signers is not None:
            fail("--allowed-signers needs a Git source (--repo)", 2)
    if allowed_signers is not None and not allowed_signers.is_file():
        fail(f"--allowed-signers {allowed_signers}: no such file", 2)

    if target is TargetKind.local:
        deployer, kube = _local_deployer(
            workdir=(state_dir or default_state_dir(name)).expanduser() / "mesh",
            gateway_port=gateway_port), None
    else:
        from reconciler.runtime.deploy import KubeDeployer

        kube = _kube_target(kubeconfig, context, as_user)
        deployer = KubeDeployer(kube, prune=prune, inventory_namespace=system_namespace)
    if state is StateKind.auto:
        state = StateKind.cluster if target is TargetKind.kube and state_dir is None else (
            StateKind.disk)
    store: StateStore
    if state is StateKind.cluster:
        if kube is None:
            fail("--state cluster needs the kube target", 2)
        store = ClusterStore(_kube_target(kubeconfig, context, as_user), name,
                             namespace=system_namespace)
    else:
        disk = DiskStore(state_dir or default_state_dir(name))
        try:
            disk.lock()
        except StateLockedError as exc:
            fail(f"{exc}; stop it first (or use another --name/--state-dir)", 2)
        store = disk

    settings = Settings(
        name=name, program=path,
        poll_interval=parse_duration(interval, what="--interval") or None,
        drift_interval=parse_duration(drift_interval, what="--drift-interval") or None,
        self_heal=self_heal, allowed_signers=allowed_signers,
        rollout_period=parse_duration(rollout_period, what="--rollout-tick") or 1.0)
    driver = _rollout_driver(store, name=name, prometheus=prometheus,
                             deployer=deployer) if rollouts else None
    limits = Limits(timeout=parse_duration(program_timeout, what="--program-timeout"),
                    memory_mb=program_memory)
    sandbox = Sandbox(limits, warm=not once)
    telemetry = Telemetry(name)
    leader = None
    elect = (target is TargetKind.kube) if leader_elect is None else leader_elect
    reconciler_: Reconciler
    if elect and not once:
        if kube is None:
            fail("--leader-elect needs the kube target", 2)
        leader = _leader(kube, kubeconfig, context, as_user, namespace=system_namespace,
                         name=name, identity=identity,
                         duration=parse_duration(lease_duration, what="--lease-duration"))
    reconciler_ = Reconciler(settings, source=source, deployer=deployer, store=store,
                             sandbox=sandbox, leader=leader, telemetry=telemetry,
                             rollouts=driver)
    if leader is not None:
        leader.on_change(reconciler_.on_leadership)

    if once:
        status = reconciler_.reconcile({"start"}, max_attempts=5)
        sandbox.close()
        if target is TargetKind.local:
            deployer.stop()
        last = status.last
        _print_status(status)
        raise typer.Exit(1 if last is not None and last.result is Result.FAILED else 0)

    address = _listen(listen)
    server = None
    if address is not None:
        secret = _secret(webhook_secret_file, insecure)
        if secret == b"":
            event("webhook-refusing", level=30, reason="no webhook secret: set "
                  "MESHDSL_WEBHOOK_SECRET or --webhook-secret-file; pushes get 401")

        def rejected(verdict: Verdict) -> None:
            telemetry.webhooks.labels(name, "unauthorized").inc()
            event("webhook-rejected", level=30, reason=verdict.reason,
                  provider=verdict.provider.value)

        server = WebhookServer(
            host=address[0], port=address[1], secret=secret, on_push=reconciler_.on_push,
            on_rejected=rejected, health=reconciler_.healthy, ready=reconciler_.ready,
            metrics=telemetry.exposition)
        try:
            server.start()
        except OSError as exc:
            fail(f"cannot listen on {listen}: {exc}", 2)
    watcher = None
    if directory is not None:
        from reconciler.sources.watch import DirectoryWatcher

        watcher = DirectoryWatcher(directory, lambda: reconciler_.trigger("watch")).start()

    stopping = threading.Event()

    def on_signal(signum: int, _: Any) -> None:
        event("stopping", name=name, signal=signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sandbox.prepare()
    if leader is not None:
        leader.start()
    reconciler_.start()
    event("started", name=name, source=source.describe(), target=deployer.identity,
          state=store.describe(), url=server.url if server else None,
          leader_election=leader is not None, pid=os.getpid())
    while not stopping.wait(0.5):
        ok, _ = reconciler_.healthy()
        if not ok:
            break
    if watcher is not None:
        watcher.stop()
    reconciler_.stop()
    if leader is not None:
        leader.stop(release=True)
    if server is not None:
        server.stop()
    sandbox.close()
    if target is TargetKind.local:
        deployer.stop()
    event("stopped", name=name)


def _leader(kube: Any, kubeconfig: str | None, context: str | None, as_user: str | None, *,
            namespace: str, name: str, identity: str | None, duration: float) -> Any:
    from reconciler.runtime.leader import LeaderElector, LeaseError, api_client

    try:
        if kube.get("v1", "Namespace", "", namespace) is None:
            kube.apply({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": namespace}}, force=True)
        client = api_client(kubeconfig, context=context, impersonate=as_user)
    except LeaseError as exc:
        fail(str(exc), 2)
    except Exception as exc:
        fail(f"cannot prepare leader election: {exc}", 2)
    return LeaderElector(client, namespace=namespace, name=f"meshdsl-reconciler-{name}",
                         identity=identity, lease_duration=duration)


class _NoMetrics:
    """The metrics source when none was configured: every query is an error, so a canary
    halts (no data is never a pass) and its status says what to do."""

    def measure(self, query: Any) -> float | None:
        from reconciler.ports import MetricsError

        raise MetricsError("no metrics source: start meshctl reconcile with --prometheus URL")


def _rollout_driver(state_store: StateStore, *, name: str, prometheus: str | None,
                    deployer: Any) -> Any:
    """The progressive-delivery driver: rollout states where the status lives (ConfigMaps
    or the state directory), metrics from Prometheus or the local Envoys, webhooks."""
    from reconciler.ports import MetricsSource
    from reconciler.runtime.rollout_store import beside
    from reconciler.runtime.rollouts import RolloutDriver
    from reconciler.targets.webhooks import WebhookCaller

    store = beside(state_store, name)
    assert store is not None, "reconcile keeps its status on disk or in the cluster"
    metrics: MetricsSource
    if prometheus is not None:
        from reconciler.metrics import PrometheusSource

        metrics = PrometheusSource(prometheus)
    elif hasattr(deployer, "mesh"):
        from reconciler.metrics.envoy_stats import EnvoyStatsSource

        mesh = deployer.mesh
        metrics = EnvoyStatsSource(lambda: [u.removesuffix("/stats/prometheus")
                                            for u in mesh.stats_urls().values()])
    else:
        metrics = _NoMetrics()
    return RolloutDriver(store, metrics, webhooks=WebhookCaller())


def _local_deployer(*, workdir: Path, gateway_port: int | None) -> Any:
    """The local Envoy mesh; it starts on the first deploy and keeps its files (configs,
    logs, certificates) under the state directory."""
    from reconciler.runtime.deploy import LocalDeployer
    from reconciler.targets.envoy import LocalMesh, find_envoy
    from reconciler.targets.envoy.errors import EnvoyNotFoundError

    try:
        find_envoy()
    except EnvoyNotFoundError as exc:
        fail(str(exc), 2)
    return LocalDeployer(LocalMesh(workdir=workdir, gateway_port=gateway_port))


# --- status / history ----------------------------------------------------------------------


def _load_status(store: StateStore, name: str) -> Status:
    try:
        status = store.load_status()
    except Exception as exc:   # StoreError, or the cluster store's connection errors
        fail(f"cannot read the status from {store.describe()}: {exc}", 2)
    if status is None:
        fail(f"no reconciler named {name!r} has recorded a status in {store.describe()}", 2)
    return status


def _changes(attempt: Attempt) -> str:
    parts = [f"{n} {k}" for k, n in attempt.changes.items() if n and k != "unchanged"]
    return ", ".join(parts) or "no changes"


def _line(attempt: Attempt) -> str:
    when = attempt.started_at.replace("T", " ")[:19]
    head = f"{attempt.short or '-':12}  {attempt.result.value:11}  {when}  " \
           f"{attempt.trigger:8}  {attempt.duration:6.2f}s"
    if attempt.failure is not None:
        times = f" ({attempt.count} times)" if attempt.count > 1 else ""
        return f"{head}  {attempt.failure.kind}: {attempt.failure.describe()}{times}"
    subject = f'  "{attempt.summary}"' if attempt.summary else ""
    return f"{head}  {_changes(attempt)}{subject}"


def _print_status(status: Status) -> None:
    console.print(f"[bold]{status.name}[/]: {status.source or '?'} → {status.target or '?'}",
                  highlight=False, soft_wrap=True)
    applied = status.applied
    if applied is None:
        console.print("applied      nothing yet", highlight=False)
    else:
        how = "rolled back to" if applied.result is Result.ROLLED_BACK else "revision"
        console.print(f"applied      {how} {applied.revision} (mesh {applied.mesh or '?'})",
                      highlight=False, soft_wrap=True)
        console.print(f"             at {applied.started_at} by {applied.trigger} in "
                      f"{applied.duration:.2f} s; {_changes(applied)}"
                      + (f' — "{applied.summary}"' if applied.summary else ""),
                      highlight=False, soft_wrap=True)
    last = status.last
    if last is not None and last is not applied and last != applied:
        if last.failure is not None:
            state = "[bold red]FAILED[/]" if not last.failure.transient else (
                "[yellow]retrying[/]")
            console.print(f"last         {state} {last.revision or '(no revision)'} at "
                          f"{last.started_at}", highlight=False, soft_wrap=True)
            console.print(f"             {last.failure.kind}: {last.failure.describe()}"
                          + (f" ({last.count} times)" if last.count > 1 else ""),
                          highlight=False, soft_wrap=True, markup=False)
            for line in last.failure.details[:8]:
                console.print(f"               {line}", highlight=False, soft_wrap=True,
                              markup=False)
            if not last.failure.transient:
                console.print("             nothing was applied; the revision above stays "
                              "live until a fixed commit is pushed", highlight=False,
                              style="dim")
        else:
            console.print(f"last         {last.result.value} {last.revision} at "
                          f"{last.started_at}", highlight=False)
    if status.in_progress:
        console.print(f"in progress  {status.in_progress} (interrupted applies resume on the "
                      "next reconcile)", highlight=False)
    if status.suspended:
        console.print(f"auto-sync    [bold yellow]SUSPENDED[/]: {status.suspend_reason or ''}"
                      " — run `meshctl resume` to follow the branch again", highlight=False,
                      soft_wrap=True)
    else:
        console.print("auto-sync    on", highlight=False)
    drift = status.drift
    if drift is None:
        console.print("drift        not checked yet", highlight=False)
    elif not drift.objects:
        console.print(f"drift        none (checked {drift.checked_at})", highlight=False)
    else:
        verb = "healed" if drift.healed else "not healed"
        console.print(f"drift        {len(drift.objects)} object(s) {verb} at "
                      f"{drift.checked_at}: {', '.join(drift.objects[:5])}", highlight=False,
                      soft_wrap=True)


@app.command("status")
def status_cmd(
    name: NameOpt = "default",
    state_dir: StateDirOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    as_user: AsOpt = None,
    system_namespace: NamespaceOpt = STATE_NAMESPACE,
    output: OutputOpt = Output.text,
) -> None:
    """What the reconciler applied, when, with what result; drift; suspension."""
    store = _store(name, state=StateKind.auto, state_dir=state_dir, kubeconfig=kubeconfig,
                   context=context, as_user=as_user, namespace=system_namespace)
    try:
        status = _load_status(store, name)
    except typer.Exit:             # reported; the rollouts are still worth showing
        rollouts, unreadable = _rollouts(store, name)
        for state in rollouts:
            console.print(f"rollout {state.namespace}/{state.service} {state.phase.value} "
                          f"{state.stage_label}", highlight=False, markup=False)
        if unreadable:
            err_console.print(f"rollouts unreadable: {unreadable}", highlight=False,
                              markup=False, soft_wrap=True)
        raise
    rollouts, unreadable = _rollouts(store, name)
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
    _print_status(status)
    for number, state in enumerate(rollouts):
        style = {"failed": "red", "succeeded": "green"}.get(state.phase.value, "yellow")
        console.print(f"{'rollouts' if number == 0 else '':<12} {state.namespace}/"
                      f"{state.service} [{style}]{state.phase.value}[/] {state.stage_label} — "
                      f"{state.traffic.describe()}", highlight=False, soft_wrap=True)
    if unreadable:
        console.print(f"rollouts     [red]unreadable[/]: {unreadable}", highlight=False,
                      soft_wrap=True)
    if status.history:
        console.print("history      (newest first; `meshctl history` for all)",
                      highlight=False)
        for attempt in status.history[:5]:
            console.print(f"  {_line(attempt)}", highlight=False, soft_wrap=True,
                          markup=False)


def _rollouts(store: StateStore, name: str) -> tuple[list[Any], str]:
    """The canary rollouts kept beside this status (``meshctl canary status`` has the
    detail), by namespace and service; and an error message when they cannot be read."""
    from reconciler.ports import RolloutStoreError
    from reconciler.runtime.rollout_store import beside

    rollouts = beside(store, name)
    if rollouts is None:
        return [], ""
    try:
        found, errors = rollouts.list_readable()
    except RolloutStoreError as exc:
        return [], str(exc)
    return [s.state for s in found], "; ".join(errors)


@app.command("history")
def history_cmd(
    name: NameOpt = "default",
    state_dir: StateDirOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    as_user: AsOpt = None,
    system_namespace: NamespaceOpt = STATE_NAMESPACE,
    output: OutputOpt = Output.text,
) -> None:
    """Every recorded reconcile, newest first."""
    store = _store(name, state=StateKind.auto, state_dir=state_dir, kubeconfig=kubeconfig,
                   context=context, as_user=as_user, namespace=system_namespace)
    status = _load_status(store, name)
    if output is not Output.text:
        emit(status.to_dict()["history"], output)
        return
    console.print(f"{'REVISION':12}  {'RESULT':11}  {'STARTED (UTC)':19}  {'TRIGGER':8}  "
                  f"{'TIME':>7}  DETAIL", highlight=False, style="bold")
    for attempt in status.history:
        console.print(_line(attempt), highlight=False, soft_wrap=True, markup=False)


# --- control: rollback / suspend / resume ----------------------------------------------------


def _request(store: StateStore, **changes: Any) -> Control:
    try:
        control = store.load_control().request(requested_by=_who(), **changes)
        store.save_control(control)
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


WaitOpt = Annotated[str, typer.Option(
    "--wait", help="Wait this long for the running reconciler to act (0: don't wait).")]


@app.command("rollback")
def rollback_cmd(
    revision: Annotated[str, typer.Argument(help="A revision from `meshctl history` (a "
                                            "unique prefix is enough).")],
    name: NameOpt = "default",
    state_dir: StateDirOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    as_user: AsOpt = None,
    system_namespace: NamespaceOpt = STATE_NAMESPACE,
    wait: WaitOpt = "60s",
) -> None:
    """Re-apply an earlier revision's output and suspend auto-sync until `meshctl resume`."""
    store = _store(name, state=StateKind.auto, state_dir=state_dir, kubeconfig=kubeconfig,
                   context=context, as_user=as_user, namespace=system_namespace)
    status = _load_status(store, name)
    if len(revision) < 4:
        fail("give at least 4 characters of the revision", 2)
    matches = {a.revision for a in status.history
               if a.result is not Result.FAILED and a.revision.startswith(revision)}
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
             f"`meshctl reconcile --name {name}` will carry it out", 1)
    last = done.last
    if last is not None and last.result is Result.FAILED and last.trigger == "rollback":
        fail(f"rollback failed: {last.failure.describe() if last.failure else '?'}", 1)
    console.print(f"[green]rolled back[/] to {full[:12]}; auto-sync is suspended — "
                  "`meshctl resume` follows the branch again", highlight=False)


def _toggle(suspend: bool, *, name: str, reason: str | None, state_dir: Path | None,
            kubeconfig: str | None, context: str | None, as_user: str | None,
            namespace: str, wait: str) -> None:
    store = _store(name, state=StateKind.auto, state_dir=state_dir, kubeconfig=kubeconfig,
                   context=context, as_user=as_user, namespace=namespace)
    why = (reason or f"suspended by {_who()}") if suspend else None
    control = _request(store, suspended=suspend, reason=why, rollback=None)
    verb = "suspend" if suspend else "resume"
    console.print(f"requested {verb} (control generation {control.generation})",
                  highlight=False)
    seconds = parse_duration(wait, what="--wait")
    if seconds and _await(store, control.generation, seconds) is None:
        fail(f"no reconciler acted within {wait}; the request stays recorded", 1)


@app.command("suspend")
def suspend_cmd(
    name: NameOpt = "default",
    reason: Annotated[str | None, typer.Option("--reason", help="Shown in status.")] = None,
    state_dir: StateDirOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    as_user: AsOpt = None,
    system_namespace: NamespaceOpt = STATE_NAMESPACE,
    wait: WaitOpt = "0",
) -> None:
    """Stop following the branch (drift is still reported, not healed)."""
    _toggle(True, name=name, reason=reason, state_dir=state_dir, kubeconfig=kubeconfig,
            context=context, as_user=as_user, namespace=system_namespace, wait=wait)


@app.command("resume")
def resume_cmd(
    name: NameOpt = "default",
    state_dir: StateDirOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    as_user: AsOpt = None,
    system_namespace: NamespaceOpt = STATE_NAMESPACE,
    wait: WaitOpt = "0",
) -> None:
    """Follow the branch again (after `suspend` or `rollback`)."""
    _toggle(False, name=name, reason=None, state_dir=state_dir, kubeconfig=kubeconfig,
            context=context, as_user=as_user, namespace=system_namespace, wait=wait)


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
) -> None:
    """The in-cluster reconciler: ServiceAccount, least-privilege RBAC, Deployment, Service.

    Create the webhook secret first: kubectl -n meshdsl-system create secret generic
    meshdsl-webhook --from-literal=secret=$(openssl rand -hex 32)
    """
    from reconciler.runtime.install import InstallOptions, manifests

    if not print_:
        fail("only --print is supported: meshctl install --repo URL --print | kubectl apply "
             "-f -", 2)
    docs = manifests(InstallOptions(repo=repo, branch=branch, path=path, name=name,
                                    namespace=namespace, image=image, replicas=replicas))
    typer.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)

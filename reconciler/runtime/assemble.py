"""Build a running GitOps reconciler from one typed :class:`ReconcileConfig`.

``meshctl reconcile`` only parses its options into a :class:`ReconcileConfig`; this module
turns that into parts (source, deployer, state store, sandbox, rollout driver, leader
election, webhook server, directory watcher) and owns their lifetime: an
:class:`Assembly` is a context manager whose exit stops every part it started, in reverse
order, whatever happened in between — so ``--once``, a signal and an error all shut down
the same way. Anything the environment refuses (no Envoy, a locked state directory, an
unusable kubeconfig, a busy port) is an :class:`AssemblyError` with one line to show.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType

from meshdsl.compile.manifest import NAMESPACE
from reconciler.delivery.queries import MetricQuery
from reconciler.metrics import PrometheusSource
from reconciler.metrics.envoy_stats import EnvoyStatsSource
from reconciler.ports import Deployer, MetricsError, MetricsSource, Source
from reconciler.runtime.deploy import KubeDeployer, LocalDeployer
from reconciler.runtime.leader import LeaderElector, LeaseError, api_client
from reconciler.runtime.loop import Reconciler, Settings
from reconciler.runtime.rollout_store import beside
from reconciler.runtime.rollouts import RolloutDriver
from reconciler.runtime.sandbox import Limits, Sandbox
from reconciler.runtime.status import ClusterStore, DiskStore, StateLockedError, Status
from reconciler.runtime.telemetry import Telemetry, configure_logging, event
from reconciler.sources.directory import DirectorySource
from reconciler.sources.git import GitSource
from reconciler.sources.watch import DirectoryWatcher
from reconciler.sources.webhook import DeliveryCheck, WebhookServer
from reconciler.targets.envoy import LocalMesh, find_envoy
from reconciler.targets.envoy.errors import EnvoyNotFoundError
from reconciler.targets.kube import KubeConfigError, KubeTarget
from reconciler.targets.webhooks import HttpWebhookCaller


class TargetKind(StrEnum):
    kube = "kube"
    local = "local"


class StateKind(StrEnum):
    auto = "auto"
    cluster = "cluster"
    disk = "disk"


class AssemblyError(Exception):
    """The environment refuses a part (message: one line for the user)."""


def _xdg(var: str, default: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / default


def default_state_dir(name: str) -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "meshdsl" / name


def default_cache_dir(name: str) -> Path:
    return _xdg("XDG_CACHE_HOME", ".cache") / "meshdsl" / "reconcile" / name


@dataclass(frozen=True)
class KubeConnection:
    """How to reach an API server, the way kubectl does."""

    kubeconfig: str | None = None
    context: str | None = None
    as_user: str | None = None

    @property
    def selects_cluster(self) -> bool:
        return bool(self.kubeconfig or self.context)


@dataclass(frozen=True)
class ReconcileConfig:
    """Everything ``meshctl reconcile`` was told, parsed and checked (durations in seconds,
    ``None`` for off; ``state`` already resolved to disk or cluster)."""

    name: str
    program: str
    target: TargetKind
    state: StateKind
    state_dir: Path
    cache_dir: Path
    system_namespace: str
    repo: str | None = None
    directory: Path | None = None
    branch: str | None = None
    tag: str | None = None
    kube: KubeConnection = KubeConnection()
    listen: tuple[str, int] | None = None
    webhook_secret: bytes | None = b""
    poll_interval: float | None = 60.0
    drift_interval: float | None = 60.0
    self_heal: bool = True
    prune: bool = True
    allowed_signers: Path | None = None
    program_timeout: float = 10.0
    program_memory_mb: int = 1024
    leader_elect: bool = False
    lease_duration: float = 15.0
    identity: str | None = None
    once: bool = False
    gateway_port: int | None = None
    rollouts: bool = True
    prometheus: str | None = None
    rollout_period: float = 1.0
    log_format: str = "json"
    allow_namespaces: tuple[str, ...] = ()   # reserved namespaces the mesh may write
    adopt: tuple[str, ...] = ()              # existing objects to take over (KIND/NS/NAME)
    apply_as: str | None = None              # apply the mesh as this user (impersonation)
    dashboard: bool = False                  # serve the read-only page beside the loop
    dashboard_listen: str = "127.0.0.1:0"


class _NoMetrics:
    """The metrics source when none was configured: every query is an error, so a canary
    halts (no data is never a pass) and its status says what to do."""

    def measure(self, query: MetricQuery) -> float | None:
        raise MetricsError("no metrics source: start meshctl reconcile with --prometheus URL")

    def sample(self) -> None:
        """Nothing to sample."""


def _source(config: ReconcileConfig) -> Source:
    if config.repo is not None:
        return GitSource(config.repo, branch=None if config.tag else (config.branch or "main"),
                         tag=config.tag, cache_dir=config.cache_dir)
    assert config.directory is not None
    return DirectorySource(config.directory, cache_dir=config.cache_dir)


def _kube(config: ReconcileConfig, *, as_user: str | None = None) -> KubeTarget:
    try:
        return KubeTarget.from_kubeconfig(config.kube.kubeconfig, context=config.kube.context,
                                          impersonate=as_user or config.kube.as_user,
                                          pool_size=12)
    except KubeConfigError as exc:
        raise AssemblyError(str(exc)) from exc


def _local_mesh(config: ReconcileConfig) -> LocalMesh:
    """The local Envoy mesh; it starts on the first deploy and keeps its files (configs,
    logs, certificates) under the state directory."""
    try:
        find_envoy()
    except EnvoyNotFoundError as exc:
        raise AssemblyError(str(exc)) from exc
    return LocalMesh(workdir=config.state_dir / "mesh", gateway_port=config.gateway_port)


def _metrics(config: ReconcileConfig, mesh: LocalMesh | None) -> MetricsSource:
    """Prometheus when given; else each local Envoy's own stats; else no source at all."""
    if config.prometheus is not None:
        return PrometheusSource(config.prometheus)
    if mesh is not None:
        return EnvoyStatsSource(lambda: [u.removesuffix("/stats/prometheus")
                                         for u in mesh.stats_urls().values()])
    return _NoMetrics()


def _leader(config: ReconcileConfig, kube: KubeTarget) -> LeaderElector:
    namespace = config.system_namespace
    try:
        if kube.get(NAMESPACE.key("", namespace)) is None:
            kube.apply({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": namespace}}, force=True)
        client = api_client(config.kube.kubeconfig, context=config.kube.context,
                            impersonate=config.kube.as_user)
    except LeaseError as exc:
        raise AssemblyError(str(exc)) from exc
    except Exception as exc:
        raise AssemblyError(f"cannot prepare leader election: {exc}") from exc
    return LeaderElector(client, namespace=namespace,
                         name=f"meshdsl-reconciler-{config.name}",
                         identity=config.identity, lease_duration=config.lease_duration)


class Assembly:
    """The parts of one reconciler; use as a context manager (exit stops them all)."""

    def __init__(self, config: ReconcileConfig) -> None:
        self.config = config
        self._stack = ExitStack()
        self.server: WebhookServer | None = None
        self.watcher: DirectoryWatcher | None = None
        self.leader: LeaderElector | None = None
        self.local_mesh: LocalMesh | None = None   # the local target's mesh, for the dashboard
        try:
            self._build()
        except BaseException:
            self._stack.close()
            raise

    def _build(self) -> None:
        config = self.config
        configure_logging(config.log_format)
        self.source = _source(config)
        kube: KubeTarget | None = None
        mesh: LocalMesh | None = None
        self.deployer: Deployer
        if config.target is TargetKind.local:
            mesh = self.local_mesh = _local_mesh(config)
            local = LocalDeployer(mesh)
            self._stack.callback(local.stop)
            self.deployer = local
        else:
            kube = _kube(config)
            applier = kube if config.apply_as is None else _kube(config, as_user=config.apply_as)
            if applier is not kube:
                self._stack.callback(applier.close)
            self.deployer = KubeDeployer(applier, prune=config.prune,
                                         inventory_namespace=config.system_namespace,
                                         owner=config.name,
                                         allow_namespaces=config.allow_namespaces,
                                         adopt=config.adopt)
        self.store: ClusterStore | DiskStore
        if config.state is StateKind.cluster:
            if kube is None:
                raise AssemblyError("--state cluster needs the kube target")
            self.store = ClusterStore(kube, config.name, namespace=config.system_namespace)
        else:
            disk = DiskStore(config.state_dir)
            try:
                disk.lock()
            except StateLockedError as exc:
                raise AssemblyError(
                    f"{exc}; stop it first (or use another --name/--state-dir)") from exc
            self.store = disk
        driver = None
        if config.rollouts:
            rollout_store = beside(self.store, config.name)
            assert rollout_store is not None, "the status is kept on disk or in the cluster"
            driver = RolloutDriver(rollout_store, _metrics(config, mesh),
                                   webhooks=HttpWebhookCaller())
        self.sandbox = Sandbox(Limits(timeout=config.program_timeout,
                                      memory_mb=config.program_memory_mb),
                               warm=not config.once)
        self._stack.callback(self.sandbox.close)
        self.telemetry = Telemetry(config.name)
        if config.leader_elect and not config.once:
            if kube is None:
                raise AssemblyError("--leader-elect needs the kube target")
            self.leader = _leader(config, kube)
        settings = Settings(
            name=config.name, program=config.program, poll_interval=config.poll_interval,
            drift_interval=config.drift_interval, self_heal=config.self_heal,
            allowed_signers=config.allowed_signers, rollout_period=config.rollout_period)
        self.reconciler = Reconciler(settings, source=self.source, deployer=self.deployer,
                                     store=self.store, sandbox=self.sandbox,
                                     leader=self.leader, telemetry=self.telemetry,
                                     rollouts=driver)
        if self.leader is not None:
            self.leader.on_change(self.reconciler.on_leadership)

    def __enter__(self) -> Assembly:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()

    def once(self) -> Status:
        """One reconcile (a few attempts on transient failures); the status it recorded."""
        return self.reconciler.reconcile({"start"}, max_attempts=5)

    def start(self) -> None:
        """Start serving: webhook server, directory watcher, leader election, the loop."""
        config = self.config
        self._stack.callback(lambda: event("stopped", name=config.name))
        if config.listen is not None:
            self.server = self._server(config.listen)
        if config.directory is not None:
            reconciler = self.reconciler
            self.watcher = DirectoryWatcher(config.directory,
                                            lambda: reconciler.trigger("watch")).start()
            self._stack.callback(self.watcher.stop)
        self.sandbox.prepare()
        if self.leader is not None:
            self.leader.start()
            leader = self.leader
            self._stack.callback(lambda: leader.stop(release=True))
        self.reconciler.start()
        self._stack.callback(self.reconciler.stop)
        event("started", name=config.name, source=self.source.describe(),
              target=self.deployer.identity, state=self.store.describe(),
              url=self.server.url if self.server else None,
              leader_election=self.leader is not None, pid=os.getpid())

    def _server(self, address: tuple[str, int]) -> WebhookServer:
        secret, name, telemetry = self.config.webhook_secret, self.config.name, self.telemetry
        if secret == b"":
            event("webhook-refusing", level=30, reason="no webhook secret: set "
                  "MESHDSL_WEBHOOK_SECRET or --webhook-secret-file; pushes get 401")

        def rejected(check: DeliveryCheck) -> None:
            telemetry.webhooks.labels(name, "unauthorized").inc()
            event("webhook-rejected", level=30, reason=check.reason,
                  provider=check.provider.value)

        server = WebhookServer(
            host=address[0], port=address[1], secret=secret, on_push=self.reconciler.on_push,
            on_rejected=rejected, health=self.reconciler.live, ready=self.reconciler.ready,
            metrics=telemetry.exposition)
        try:
            server.start()
        except OSError as exc:
            raise AssemblyError(f"cannot listen on {address[0]}:{address[1]}: {exc}") from exc
        self._stack.callback(server.stop)
        return server

    def serve(self, stopping: threading.Event, *, poll: float = 0.5) -> None:
        """Run until ``stopping`` is set or the loop reports itself unhealthy."""
        while not stopping.wait(poll):
            ok, _ = self.reconciler.healthy()
            if not ok:
                break


Factory = Callable[[ReconcileConfig], Assembly]
assemble: Factory = Assembly

"""Real canary rollouts on this machine: a local mesh, a Prometheus scraping its Envoys
through the Envoy -> Istio bridge, a traffic generator, and the rollout driver in a thread.

Used by the end-to-end tests, ``bench/canary.py`` and ``meshctl demo bookinfo``: the same
pieces a user gets with ``meshctl reconcile --target local``, wired in one place. Every
loop here is bounded and every process started is stopped by :meth:`CanaryRig.stop`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from meshdsl.compile import Weights
from meshdsl.model.spec import MeshSpec
from reconciler.demo.prometheus import LocalPrometheus, ScrapeJob
from reconciler.metrics import PrometheusSource
from reconciler.metrics.recording_rules import (
    ENVOY_STATS_FILTER,
    istio_bridge_relabel_configs,
    istio_bridge_rule_groups,
)
from reconciler.ports import MetricsSource, WebhookCaller
from reconciler.processes.lifecycle import Component
from reconciler.runtime.rollout_store import DiskRolloutStore
from reconciler.runtime.rollouts import RolloutDriver, RolloutReport
from reconciler.targets.envoy.mesh import LocalMesh

__all__ = ["SCRAPE_INTERVAL", "TICK_PERIOD", "CanaryRig", "Sample", "TrafficGenerator",
           "envoy_scrape_job", "outcome"]

SCRAPE_INTERVAL = "100ms"
"""How often the rig's Prometheus scrapes the Envoys and evaluates the bridge rule: a
request is in ``istio_requests_total`` at most two of these after Envoy counted it. With
a 2 s analysis interval every 100 ms of lag lets a 5xx near the end of a step slip to the
next analysis (bench/canary.py: detect and restore improve from 1 s -> 250 ms -> 100 ms).
It costs Prometheus ~7% of a core (~3% at 250 ms): Envoy sends only the bridged stats and
the rule is one cheap expression."""

TICK_PERIOD = 0.05
"""How often the rig ticks the rollout driver: how late a due analysis (or a rollback) may
start. An idle tick costs well under a millisecond."""


@dataclass(frozen=True)
class Sample:
    """One request of the generator: when, its status (0: no answer), who served it."""

    at: float
    status: int
    served_by: str


@dataclass
class TrafficGenerator(Component):
    """GETs ``url`` about ``rate`` times a second, until stopped or ``max_seconds``
    passed, from ``workers`` threads (each paced at ``rate / workers``: one thread waits
    for each answer, so a slow answer would otherwise lower the rate). ``classify`` turns a
    response into (status, served_by) — e.g. to read a downstream call's result out of a
    frontend's JSON."""

    url: str
    rate: float = 30.0
    max_seconds: float = 300.0
    timeout: float = 2.0
    classify: Callable[[httpx.Response], tuple[int, str]] | None = None
    workers: int = 1
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Self:
        for i in range(max(1, self.workers)):
            thread = threading.Thread(target=self._run, name=f"traffic-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)

    def _run(self) -> None:
        period = max(1, self.workers) / self.rate
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(timeout=self.timeout, trust_env=False) as client:
            next_at = time.monotonic()
            while not self._stop.is_set() and time.monotonic() < deadline:
                at = time.time()
                try:
                    response = client.get(self.url)
                    status, served = (self.classify(response) if self.classify is not None
                                      else (response.status_code,
                                            response.headers.get("x-served-by", "")))
                except httpx.HTTPError:
                    status, served = 0, ""
                self.samples.append(Sample(at, status, served))
                next_at += period
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def since(self, at: float) -> list[Sample]:
        return sorted((s for s in list(self.samples) if s.at >= at), key=lambda s: s.at)

    def share(self, served_by: str, *, since: float, until: float | None = None) -> float:
        window = [s for s in self.since(since) if until is None or s.at < until]
        return sum(1 for s in window if s.served_by == served_by) / max(1, len(window))


def envoy_scrape_job(mesh: LocalMesh, name: str = "envoy") -> ScrapeJob:
    """Every proxy's ``/stats/prometheus`` as one Prometheus scrape job: the stats the
    Envoy -> Istio bridge reads (Envoy filters them), relabelled into Istio's series."""
    targets = sorted(url.removeprefix("http://").removesuffix("/stats/prometheus")
                     for url in mesh.stats_urls().values())
    return ScrapeJob(name, targets, metrics_path="/stats/prometheus",
                     params={"filter": ENVOY_STATS_FILTER},
                     metric_relabel_configs=istio_bridge_relabel_configs())


@dataclass(eq=False)
class CanaryRig:
    """LocalMesh + Prometheus (bridge rules) + RolloutDriver ticking in a thread.

    ``start(spec)`` runs the program's *rollout view* from the first moment (so a plan's
    rollout starts at 100% stable, never at the program's raw weights); ``commit(spec,
    revision)`` is a new Git revision; ``apply`` is the driver's only route writer.
    ``metrics``: the driver's source (default: the rig's own Prometheus)."""

    state_dir: Path
    _: KW_ONLY
    period: float = TICK_PERIOD
    webhooks: WebhookCaller | None = None
    on_report: Callable[[RolloutReport], None] | None = None
    metrics: MetricsSource | None = None
    gateway_port: int | None = None
    scrape_interval: str = SCRAPE_INTERVAL
    mesh: LocalMesh | None = field(default=None, init=False)
    prometheus: LocalPrometheus | None = field(default=None, init=False)
    driver: RolloutDriver | None = field(default=None, init=False)
    pushes: list[tuple[float, Weights]] = field(default_factory=list, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir)
        self.store = DiskRolloutStore.in_state_dir(self.state_dir)

    def _apply(self, spec: MeshSpec, weights: Weights) -> None:
        assert self.mesh is not None
        self.mesh.apply(spec, weights)
        self.pushes.append((time.time(), {k: dict(v) for k, v in weights.items()}))

    def start(self, spec: MeshSpec, revision: str = "r1", *, drive: bool = True) -> Self:
        try:
            self.mesh = LocalMesh(workdir=self.state_dir / "mesh",
                                  gateway_port=self.gateway_port)
            self.mesh.start(spec, {})
            self.prometheus = LocalPrometheus(
                [envoy_scrape_job(self.mesh)], scrape_interval=self.scrape_interval,
                rule_groups=istio_bridge_rule_groups(interval=self.scrape_interval),
                workdir=self.state_dir / "prometheus").start()
            metrics = self.metrics or PrometheusSource(self.prometheus.url)
            self.driver = RolloutDriver(self.store, metrics, self._apply,
                                        webhooks=self.webhooks, on_report=self.on_report)
            self.driver.set_program(spec, revision)
            self.driver.sync()
            if drive:
                self.drive()
        except BaseException:
            self.stop()
            raise
        return self

    def drive(self) -> None:
        """Start ticking the driver in a thread."""
        assert self.driver is not None
        self._stop.clear()
        self._thread = threading.Thread(target=self.driver.run, args=(self._stop,),
                                        kwargs={"period": self.period}, name="rollouts",
                                        daemon=True)
        self._thread.start()

    def commit(self, spec: MeshSpec, revision: str) -> None:
        """A new revision: the driver runs its plans and the mesh gets its view now
        (new apps start; a scrape target set that changed is reloaded)."""
        assert self.driver is not None and self.mesh is not None
        before = set(self.mesh.stats_urls())
        self.driver.set_program(spec, revision)
        self.driver.tick()
        if set(self.mesh.stats_urls()) != before and self.prometheus is not None:
            self.prometheus.reload_targets([envoy_scrape_job(self.mesh)])

    def wait(self, predicate: Callable[[], bool], timeout: float, *, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"after {timeout:.0f}s: {what or 'condition'} not met")
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        try:
            if self.prometheus is not None:
                self.prometheus.stop()
        finally:
            if self.mesh is not None:
                self.mesh.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def outcome(rig: CanaryRig, namespace: str, service: str) -> str:
    stored = rig.store.load(namespace, service)
    return "none" if stored is None else stored.state.phase.value

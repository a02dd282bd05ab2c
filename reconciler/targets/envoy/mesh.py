"""The whole local mesh: apps, an Envoy per workload, gateway and waypoint, live-updated.

:class:`LocalMesh` is what ``meshctl up`` runs. Given a :class:`MeshSpec` it

1. places everything on loopback (:mod:`.allocation`: free ports, stable across updates)
   and issues a SPIFFE certificate per service account from a local CA (:mod:`.pki`);
2. starts each workload's app (:mod:`.apps`) and one :class:`EnvoyProcess` per proxy that
   ``meshdsl.compile.envoy.compile_local`` emits — a sidecar per (service, version) (in an
   ambient namespace an L4 proxy, plus the namespace's waypoint) and one per gateway
   deployment;
3. pushes every proxy's listeners, route tables and clusters with a version string
   ``<generation>-<config digest>``, and on :meth:`LocalMesh.apply` pushes again to the
   proxies whose config changed — nothing restarts, no request fails.

**Config delivery: files, not an ADS server.** Each Envoy reads LDS/CDS/RDS from
DiscoveryResponse files that are replaced atomically (:mod:`.files`). Envoy watches them
with inotify and applies a replaced file in milliseconds; an update is a rename, so there
is no torn state; the config each proxy runs is on disk to read (``cat lds.yaml``) and
survives a crash of ``meshctl``. An ADS server would need a gRPC stack and Envoy's
protobufs in Python (no maintained library) and per-stream ACK bookkeeping, for what the
local mesh never uses: many remote proxies, incremental pushes, on-demand resources. What
ADS gives for free — acknowledgement and rejection — :class:`EnvoyProcess` reads from
the admin API (``update_success``/``update_rejected`` and ``version_text``), so
:meth:`LocalMesh.versions` reports what every Envoy actually runs.

**Route tables** travel by RDS while the file watches fit, else inline (:mod:`.routes`).

Update order keeps traffic flowing: new apps and proxies start and receive their config
before any caller's clusters include them; proxies that go away stop only after every
other proxy stopped routing to them. Within one Envoy, :meth:`EnvoyProcess.update` is
make-before-break (clusters, then routes, then listeners).
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from meshdsl.compile import Weights
from meshdsl.compile.envoy import (
    Address,
    EnvoyCompileError,
    LocalPlacement,
    ProxyConfig,
    WorkloadKey,
    compile_local,
)
from meshdsl.compile.envoy.placement import service_ports
from meshdsl.compile.envoy.tracing import with_tracing
from meshdsl.model.spec import MeshSpec
from reconciler.ports import Deployed, DeployError
from reconciler.processes.lifecycle import in_parallel
from reconciler.targets.envoy.allocation import Credentials, extend, local_run
from reconciler.targets.envoy.apps import LocalApp, app_environment
from reconciler.targets.envoy.errors import EnvoyError, LocalMeshError
from reconciler.targets.envoy.files import inline_rds
from reconciler.targets.envoy.process import EnvoyProcess
from reconciler.targets.envoy.report import Applied, Row, gateway_scheme, table_rows
from reconciler.targets.envoy.routes import (
    RouteDelivery,
    config_digest,
    inline_routes,
    watch_budget,
)

__all__ = ["Applied", "LocalMesh", "Row"]

_MAX_PARALLEL = 8

@dataclass
class _Proxy:
    envoy: EnvoyProcess
    config: ProxyConfig | None = None
    digest: str = ""
    version: str = ""
    inline: bool = False


class LocalMesh:
    """A mesh running on this machine. Use as a context manager, or ``start``/``stop``.

    ``apply`` may be called from any thread (calls are serialised); Envoys and apps started
    from the main thread also stop if this process dies. ``workdir`` holds every Envoy's
    files and log, each app's log and the CA; a temporary one is removed by :meth:`stop`.
    """

    def __init__(self, spec: MeshSpec | None = None, *, workdir: Path | str | None = None,
                 gateway_port: int | None = None, weights: Weights | None = None,
                 pki: bool = True, log_level: str = "warn", envoy: Path | None = None,
                 drain_time_s: int = 2, update_timeout: float = 15.0,
                 app_startup_timeout: float = 20.0,
                 route_delivery: RouteDelivery = "auto",
                 trace_collector: Address | None = None) -> None:
        self._initial = spec
        # Where the Envoys send Zipkin spans when a Telemetry asks for tracing (the
        # dashboard's collector); None: no tracing. Read at every apply.
        self.trace_collector = trace_collector
        self._initial_weights = weights
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="localmesh-")).resolve()
        self._gateway_port = gateway_port
        self._pki = pki
        self._log_level = log_level
        self._envoy_binary = envoy
        self._drain_time_s = drain_time_s
        self._update_timeout = update_timeout
        self._app_startup_timeout = app_startup_timeout
        self._route_delivery = route_delivery
        self._lock = threading.RLock()
        self._credentials: Credentials | None = None
        self._spec: MeshSpec | None = None
        self._weights: Weights | None = None
        self._placement: LocalPlacement | None = None
        self._proxies: dict[str, _Proxy] = {}
        self._apps: dict[WorkloadKey, LocalApp] = {}
        self._generation = 0
        self._started = False

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, spec: MeshSpec | None = None, weights: Weights | None = None) -> Self:
        """Start every app and proxy of ``spec`` and push their configs; on any failure,
        stop what was started and raise."""
        spec = spec or self._initial
        if spec is None:
            raise LocalMeshError("LocalMesh.start needs a MeshSpec")
        with self._lock:
            if self._started:
                raise LocalMeshError(f"the local mesh in {self.workdir} is already running")
            self._started = True
            try:
                self.workdir.mkdir(parents=True, exist_ok=True)
                if self._pki:
                    self._credentials = Credentials.create(self.workdir / "pki")
                self._apply(spec, weights if weights is not None else self._initial_weights)
            except BaseException:
                self.stop()
                raise
        return self

    def apply(self, spec: MeshSpec, weights: Weights | None = None) -> Applied:
        """Make the running mesh serve ``spec`` (with canary ``weights``), touching only
        what changed. Raises :class:`LocalMeshError`; what already serves keeps serving."""
        with self._lock:
            if not self._started:
                raise LocalMeshError("the local mesh is not running; call start() first")
            return self._apply(spec, weights)

    def stop(self) -> None:
        """Stop every Envoy, then every app; remove a temporary workdir. Idempotent."""
        with self._lock:
            proxies, self._proxies = list(self._proxies.values()), {}
            apps, self._apps = list(self._apps.values()), {}
            self._started = False
            try:
                in_parallel([p.envoy.stop for p in proxies], workers=_MAX_PARALLEL)
            finally:
                try:
                    in_parallel([a.stop for a in apps])
                finally:
                    if self._owns_workdir:
                        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self if self._started else self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- the update -----------------------------------------------------------------------

    def _apply(self, spec: MeshSpec, weights: Weights | None) -> Applied:
        began = time.perf_counter()
        placement = extend(spec, self._placement, previous_spec=self._spec,
                           credentials=self._credentials, gateway_port=self._gateway_port)
        try:
            configs = compile_local(spec, placement, weights or None)
            if self.trace_collector is not None:
                configs = with_tracing(configs, spec, self.trace_collector)
        except EnvoyCompileError as err:
            raise LocalMeshError(f"mesh {spec.name!r} cannot run locally: {err}") from err
        removed_apps, launched = self._replace_apps(spec, placement)
        gone = [pid for pid in self._proxies if pid not in configs]
        fresh = [pid for pid in configs if pid not in self._proxies or not self._alive(pid)]
        for pid in fresh:  # while the apps start; from this thread (see EnvoyProcess)
            self._start_proxy(pid, configs[pid])
        in_parallel([app.wait_listening for app in launched])
        inline = self._inline_routes(configs)
        digests = {pid: config_digest(config, inline=pid in inline) for pid, config in configs.items()}
        changed = [pid for pid in configs
                   if pid not in fresh and self._proxies[pid].digest != digests[pid]]
        apps_started = tuple(app.key.proxy_id for app in launched)
        apps_stopped = tuple(k.proxy_id for k in removed_apps)
        touched = bool(fresh or changed or gone or apps_started or apps_stopped)
        generation = self._generation + 1 if touched else self._generation
        failures = self._push(fresh, configs, digests, generation, inline)
        failures += self._push(changed, configs, digests, generation, inline)
        # Only now that no proxy routes to them any more:
        in_parallel([self._proxies.pop(pid).envoy.stop for pid in gone])
        in_parallel([self._apps.pop(key).stop for key in removed_apps])
        self._spec, self._weights, self._placement = spec, weights, placement
        self._generation = generation
        if failures:
            raise LocalMeshError(f"{len(failures)} proxy(ies) refused their new config and "
                                 "serve the previous one (none at startup):\n"
                                 + "\n".join(failures))
        return Applied(
            generation=generation, started=tuple(fresh), updated=tuple(changed),
            unchanged=tuple(p for p in configs if p not in fresh and p not in changed),
            stopped=tuple(gone), apps_started=apps_started, apps_stopped=apps_stopped,
            notes={pid: c.notes for pid, c in configs.items() if c.notes},
            seconds=time.perf_counter() - began)

    def _replace_apps(self, spec: MeshSpec, placement: LocalPlacement
                      ) -> tuple[list[WorkloadKey], list[LocalApp]]:
        """Launch new apps, restart changed or exited ones (same port), without waiting for
        them to listen; returns the apps to stop once no proxy routes to them, and those
        launched. Only the program's own ``run_locally`` decides "changed": a new service
        elsewhere in the mesh does not restart every app."""
        port_names = {(s.namespace, s.name, p.number): p.name
                      for s in spec.services for p in service_ports(s)}
        wanted: dict[WorkloadKey, LocalApp] = {}
        for key, where in placement.sidecars.items():
            run = local_run(spec, key)
            if run is not None and run.command and not run.address:
                wanted[key] = LocalApp(
                    key, run, where.app, environment=app_environment(key, where, port_names),
                    log_path=self.workdir / "apps" / f"{key.proxy_id}.log",
                    startup_timeout=self._app_startup_timeout)
        restart = [k for k, app in self._apps.items()
                   if k in wanted and (wanted[k].spec != app.spec or not app.running())]
        in_parallel([self._apps.pop(k).stop for k in restart])
        launched: list[LocalApp] = []
        for key, app in wanted.items():
            if key not in self._apps:
                self._apps[key] = app.launch()
                launched.append(app)
        return [k for k in self._apps if k not in wanted], launched

    def _start_proxy(self, proxy_id: str, config: ProxyConfig) -> None:
        old = self._proxies.pop(proxy_id, None)
        if old is not None:
            old.envoy.stop()
        workdir = self.workdir / "proxies" / proxy_id
        shutil.rmtree(workdir, ignore_errors=True)
        cluster = (config.workload.service if config.workload else config.waypoint.name
                   if config.waypoint else config.gateway or proxy_id)
        envoy = EnvoyProcess(workdir, node_id=proxy_id, node_cluster=cluster,
                             log_level=self._log_level, drain_time_s=self._drain_time_s,
                             envoy=self._envoy_binary)
        self._proxies[proxy_id] = _Proxy(envoy.start())

    def _inline_routes(self, configs: Mapping[str, ProxyConfig]) -> set[str]:
        return inline_routes(configs, self._route_delivery, watch_budget())

    def _push(self, proxy_ids: list[str], configs: Mapping[str, ProxyConfig],
              digests: Mapping[str, str], generation: int, inline: set[str]) -> list[str]:
        """Update these proxies in parallel; returns one line per proxy that failed."""

        failures: dict[str, str] = {}

        def push(proxy_id: str) -> None:
            config, proxy = configs[proxy_id], self._proxies[proxy_id]
            version = f"{generation}-{digests[proxy_id][:10]}"
            listeners, routes = config.listeners, config.routes
            if proxy_id in inline:
                listeners, routes = inline_rds(config.listeners, config.routes), []
            try:
                proxy.envoy.update(listeners, config.clusters, version, routes=routes,
                                   timeout=self._update_timeout)
            except EnvoyError as err:
                failures[proxy_id] = f"{proxy_id}: {err}"
                return
            proxy.config, proxy.digest, proxy.version = config, digests[proxy_id], version
            proxy.inline = proxy_id in inline

        in_parallel([functools.partial(push, pid) for pid in proxy_ids], workers=_MAX_PARALLEL)
        return [failures[pid] for pid in proxy_ids if pid in failures]

    def _alive(self, proxy_id: str) -> bool:
        return self._proxies[proxy_id].envoy.running()

    # --- observation ----------------------------------------------------------------------

    @property
    def spec(self) -> MeshSpec:
        if self._spec is None:
            raise LocalMeshError("the local mesh is not running")
        return self._spec

    @property
    def placement(self) -> LocalPlacement:
        if self._placement is None:
            raise LocalMeshError("the local mesh is not running")
        return self._placement

    @property
    def generation(self) -> int:
        return self._generation

    def proxies(self) -> list[str]:
        return sorted(self._proxies)

    def envoy(self, proxy: str) -> EnvoyProcess:
        return self._proxies[self._proxy_id(proxy)].envoy

    def config(self, proxy: str) -> ProxyConfig:
        config = self._proxies[self._proxy_id(proxy)].config
        if config is None:
            raise LocalMeshError(f"{proxy} has no config yet")
        return config

    def route_delivery(self) -> dict[str, str]:
        """How each proxy receives its route tables: ``rds`` (files) or ``inline``."""
        with self._lock:
            return {pid: "inline" if p.inline else "rds" for pid, p in sorted(
                self._proxies.items())}

    def pushed_versions(self) -> dict[str, str]:
        """The version last pushed to each proxy (what :meth:`versions` should report)."""
        with self._lock:
            return {pid: p.version for pid, p in sorted(self._proxies.items())}

    def versions(self) -> dict[str, str]:
        """The config version each Envoy reports it runs (listeners and clusters agree, or
        ``lds=…,cds=…`` while an update is half applied)."""
        out: dict[str, str] = {}
        with self._lock:
            proxies = sorted(self._proxies.items())
        for pid, proxy in proxies:
            try:
                live = proxy.envoy.versions()
            except EnvoyError:
                out[pid] = "unreachable"
                continue
            out[pid] = (live.listeners if live.listeners == live.clusters
                        else f"lds={live.listeners},cds={live.clusters}")
        return out

    def stats_urls(self) -> dict[str, str]:
        """Each Envoy's Prometheus endpoint (``/stats/prometheus`` on its admin port)."""
        with self._lock:
            return {pid: f"{p.envoy.admin_url}/stats/prometheus"
                    for pid, p in sorted(self._proxies.items())}

    def gateway_url(self, port: int | None = None, gateway: str | None = None) -> str:
        """``http(s)://127.0.0.1:<local port>`` of a gateway server port (default: the
        ingress gateway's lowest port)."""
        gateways = self.placement.gateways
        if not gateways:
            raise LocalMeshError(f"mesh {self.spec.name!r} has no gateway")
        name = gateway or ("istio-ingressgateway" if "istio-ingressgateway" in gateways
                           else sorted(gateways)[0])
        ports = gateways[name].ports
        number = port if port is not None else min(ports)
        return f"{gateway_scheme(self.spec, name, number)}://127.0.0.1:{ports[number]}"

    def outbound_url(self, caller: str, service: str, *, port: int | None = None) -> str:
        """Where ``caller``'s app reaches ``service`` (``name`` or ``name.namespace``)
        through its sidecar: ``http://127.0.0.1:<outbound port>``."""
        key = self._key(caller)
        name, _, namespace = service.partition(".")
        namespace = namespace or key.namespace
        outbound = self.placement.sidecars[key].outbound
        numbers = sorted(n for (ns, svc, n) in outbound if (ns, svc) == (namespace, name))
        if not numbers or (port is not None and port not in numbers):
            raise LocalMeshError(f"{key.proxy_id} has no outbound listener for "
                                 f"{namespace}/{name}{f':{port}' if port else ''}")
        return f"http://127.0.0.1:{outbound[(namespace, name, port or numbers[0])]}"

    def inbound_address(self, proxy: str) -> Address:
        return self.placement.sidecars[self._key(proxy)].inbound

    def app_address(self, proxy: str) -> Address:
        return self.placement.sidecars[self._key(proxy)].app

    def table(self, *, live: bool = True) -> list[Row]:
        """A row per proxy, gateways and waypoints first; ``live`` asks every Envoy for its
        version."""
        with self._lock:
            return self._table(self.versions() if live else self.pushed_versions())

    def _table(self, versions: Mapping[str, str]) -> list[Row]:
        proxies = {pid: (p.config, p.envoy.admin_url) for pid, p in self._proxies.items()}
        return table_rows(self.spec, self.placement, proxies, self._apps, versions)

    def _proxy_id(self, name: str) -> str:
        if name in self._proxies:
            return name
        matches = sorted(p for p in self._proxies
                         if p.split(".", 1)[0] == name or p.rsplit("-", 1)[0] == name
                         or p.startswith(f"{name}."))
        if not matches:
            raise LocalMeshError(f"no proxy {name!r} (proxies: {', '.join(self.proxies())})")
        return matches[0]

    def _key(self, name: str) -> WorkloadKey:
        pid = self._proxy_id(name)
        for key in self.placement.sidecars:
            if key.proxy_id == pid:
                return key
        raise LocalMeshError(f"{pid} is not a sidecar")

    # --- the Deployer port (reconciler.ports.Deployer), for the GitOps loop ----------------

    needs_spec = True   # it runs the program's spec, not Istio manifests

    @property
    def identity(self) -> str:
        return f"local envoy mesh {self.workdir}"

    def deploy(self, output: dict[str, Any], *, mesh: str, heal: bool,
               dry_run: bool = False, fence: Callable[[], bool] | None = None) -> Deployed:
        """Run the sandbox's output locally. It must carry ``spec`` (the sandbox adds it when
        asked to); ``weights`` (``{"namespace/service": {"v1": 90, ...}}``) is optional.
        ``heal`` is implied: a dead Envoy is always restarted. ``dry_run`` compiles and
        reports which proxies would start, change or stop, touching nothing that runs."""
        if fence is not None and not dry_run and not fence():
            raise DeployError("stopped before writing: this replica is no longer the "
                              "leader", kind="fenced", transient=True)
        if not output.get("spec"):
            raise DeployError(f"mesh {mesh}: the local target needs the program's spec in the "
                              "output (run the sandbox with spec=True)", kind="invalid",
                              transient=False)
        spec = MeshSpec.model_validate(output["spec"])
        weights = _weights(output.get("weights") or {})
        try:
            if dry_run:
                return Deployed(changes={k: v for k, v in self.plan(spec, weights).items() if v})
            if not self._started:
                self.start(spec, weights)
                started = self.proxies()
                return Deployed(changes={"started": len(started)}, write_calls=len(started))
            applied = self.apply(spec, weights)
        except LocalMeshError as err:
            raise DeployError(str(err), kind="apply", transient=False) from err
        except EnvoyError as err:
            raise DeployError(str(err), kind="unreachable", transient=True) from err
        changes = {k: v for k, v in applied.summary().items() if v}
        return Deployed(changes=changes, write_calls=len(applied.started)
                        + len(applied.updated) + len(applied.stopped),
                        warnings=tuple(f"{pid}: {note}" for pid, notes in applied.notes.items()
                                       for note in notes))

    def plan(self, spec: MeshSpec, weights: Weights | None = None) -> dict[str, int]:
        """How many proxies :meth:`apply` would start, update, leave alone and stop."""
        with self._lock:
            placement = extend(spec, self._placement, previous_spec=self._spec,
                               credentials=self._credentials, gateway_port=self._gateway_port)
            try:
                configs = compile_local(spec, placement, weights or None)
            except EnvoyCompileError as err:
                raise LocalMeshError(f"mesh {spec.name!r} cannot run locally: {err}") from err
            inline = self._inline_routes(configs)
            running = {pid: p for pid, p in self._proxies.items() if p.envoy.running()}
            changed = [pid for pid in configs if pid in running
                       and running[pid].digest != config_digest(configs[pid], inline=pid in inline)]
            fresh = [pid for pid in configs if pid not in running]
            return {"would start": len(fresh), "would update": len(changed),
                    "unchanged": len(configs) - len(fresh) - len(changed),
                    "would stop": sum(1 for pid in self._proxies if pid not in configs)}


def _weights(raw: Mapping[str, Mapping[str, int]]) -> Weights:
    out: dict[tuple[str, str], Mapping[str, int]] = {}
    for name, split in raw.items():
        namespace, _, service = name.partition("/")
        out[(namespace, service)] = dict(split)
    return out

"""One real Envoy process of the local mesh, configured through files and updated live.

An :class:`EnvoyProcess` owns a directory: the bootstrap, ``cds.yaml``, ``lds.yaml``,
``rds/<table>.yaml``, the admin address Envoy reports, and Envoy's log. Updating the mesh
never restarts Envoy: :meth:`EnvoyProcess.update` replaces the files in the order Envoy's
xDS protocol recommends (make before break), and reads the admin API until Envoy reports the
new version, so when it returns the new config serves traffic and the old one is gone:

1. clusters: the new set *plus* the clusters being removed (current routes still use them);
2. route tables (RDS), then listeners (LDS), waiting until no listener is warming;
3. clusters: exactly the new set — now nothing refers to the removed ones.

When the clusters did not change at all, step 1 is skipped and step 3 only reports the new
version, so a route change reaches traffic without waiting for a cluster round trip.

Several processes coexist on one machine: each has its own admin port (Envoy picks a free
one; we read it from ``--admin-address-path``) and hot restart is disabled, so no shared
memory or domain socket (``--base-id``) is involved. ``--concurrency 1`` keeps a local mesh of
many Envoys light.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from reconciler.processes.lifecycle import Component, NeverReady, terminate, wait_ready
from reconciler.processes.spawn import spawn
from reconciler.processes.workfiles import WorkFile
from reconciler.targets.envoy.admin import EnvoyAdmin
from reconciler.targets.envoy.binary import find_envoy, strip_banner
from reconciler.targets.envoy.errors import (
    EnvoyError,
    EnvoyStartError,
    EnvoyTimeoutError,
    EnvoyUpdateRejectedError,
)
from reconciler.targets.envoy.files import (
    CLUSTER_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    bind_rds,
    bootstrap,
    by_name,
    discovery_response,
    rds_file_name,
    referenced_route_names,
    render,
    write_atomic,
)

__all__ = ["EnvoyProcess", "XdsVersions"]

_POLL_INTERVAL = 0.02
_LOG_TAIL_LINES = 40
_INITIAL_VERSION = "0"
# Stat name prefixes (regexes) of the xDS subscriptions; RDS ones are per HCM and table:
# http.<stat_prefix>.rds.<table, with ':' turned into '_'>.update_success
_LDS_STATS = r"listener_manager\.lds"
_CDS_STATS = r"cluster_manager\.cds"
_RDS_STATS = r"http\..+\.rds\..+"
# CDS and LDS files: (update stats, XdsVersions field, gauge of those still warming, wait text)
_FILES = {
    CLUSTER_TYPE: (_CDS_STATS, "clusters", "cluster_manager.warming_clusters", ""),
    LISTENER_TYPE: (_LDS_STATS, "listeners", "listener_manager.total_listeners_warming",
                    " and warmed"),
}


@dataclass(frozen=True)
class XdsVersions:
    """The config versions a running Envoy reports (``version_info`` of the last files)."""

    listeners: str
    clusters: str


@dataclass(frozen=True)
class _Counters:
    """How many file updates of one xDS kind Envoy has processed, and how many it rejected."""

    processed: int
    rejected: int


class EnvoyProcess(Component):
    """Start, feed, observe and stop one Envoy. Use as a context manager.

    ``secrets`` (Envoy ``Secret`` dicts, e.g. from :func:`pki.workload_secrets`) and
    ``static_clusters`` are fixed in the bootstrap; listeners, routes and clusters change
    through :meth:`update`. Not thread-safe: one thread updates a given process.
    """

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        node_id: str = "local-mesh",
        node_cluster: str = "local",
        secrets: Sequence[Mapping[str, Any]] = (),
        static_clusters: Sequence[Mapping[str, Any]] = (),
        log_level: str = "info",
        drain_time_s: int = 5,
        startup_timeout: float = 20.0,
        envoy: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="envoy-")).resolve()
        self.node_id = node_id
        self.node_cluster = node_cluster
        self._secrets = list(secrets)
        self._static_clusters = list(static_clusters)
        self._log_level = log_level
        self._drain_time_s = drain_time_s
        self._startup_timeout = startup_timeout
        self._envoy = envoy
        self._extra_args = list(extra_args)
        self._process: subprocess.Popen[bytes] | None = None
        self._admin: EnvoyAdmin | None = None
        self._clusters: dict[str, Mapping[str, Any]] = {}
        self._listeners: dict[str, str] = {}
        self._route_names: set[str] = set()
        self._route_tables: dict[str, dict[str, Any]] = {}

    # --- paths ----------------------------------------------------------------------------

    bootstrap_path = WorkFile("bootstrap.yaml")
    lds_path = WorkFile("lds.yaml")
    cds_path = WorkFile("cds.yaml")
    rds_dir = WorkFile("rds")

    def rds_path(self, route_config_name: str) -> Path:
        """Where the route table ``route_config_name`` lives (see :func:`files.bind_rds`)."""
        return self.rds_dir / rds_file_name(route_config_name)

    log_path = WorkFile("envoy.log")
    admin_address_path = WorkFile("admin-address")

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> Self:
        """Write the bootstrap and empty LDS/CDS, start Envoy, wait until ``/ready``."""
        if self._process is not None:
            raise EnvoyError(f"Envoy in {self.workdir} is already started")
        with self.stopping_on_error():
            self._launch()
            self._wait_started()
        return self

    def _launch(self) -> None:
        binary = self._envoy or find_envoy()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rds_dir.mkdir(parents=True, exist_ok=True)
        self.admin_address_path.unlink(missing_ok=True)
        for path, type_url in ((self.cds_path, CLUSTER_TYPE), (self.lds_path, LISTENER_TYPE)):
            write_atomic(path, render(discovery_response(type_url, [], _INITIAL_VERSION)))
        config = bootstrap(
            node_id=self.node_id,
            node_cluster=self.node_cluster,
            lds_path=self.lds_path,
            cds_path=self.cds_path,
            secrets=self._secrets,
            static_clusters=self._static_clusters,
        )
        write_atomic(self.bootstrap_path, render(config))
        command = [
            str(binary),
            "-c", str(self.bootstrap_path),
            "--concurrency", "1",
            "--disable-hot-restart",
            "--admin-address-path", str(self.admin_address_path),
            "--log-level", self._log_level,
            # A changed listener drains its old connections; "immediate" closes each after
            # its next response, so keep-alive clients move to the new listener promptly.
            "--drain-strategy", "immediate",
            "--drain-time-s", str(self._drain_time_s),
            # Envoy only warns about unknown fields or enum values in xDS files by default,
            # then serves a config that differs from the one written: reject instead.
            "--reject-unknown-dynamic-fields",
            *self._extra_args,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self._process = spawn(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.workdir
            )

    def _wait_started(self) -> None:
        def ready() -> bool:
            if self._admin is None and self.admin_address_path.is_file():
                address = self.admin_address_path.read_text().strip()
                if address:
                    self._admin = EnvoyAdmin(f"http://{address}")
            return self._admin is not None and self._admin.ready()

        try:
            wait_ready(ready, timeout=self._startup_timeout, what=f"Envoy in {self.workdir}",
                       process=self._running(), interval=_POLL_INTERVAL)
        except NeverReady as exc:
            raise EnvoyStartError(f"{exc}\n{self.log_tail()}") from exc

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit code.

        A working directory this object created is removed; one passed in is kept (logs).
        """
        process, self._process = self._process, None
        code = terminate(process, timeout)
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return code


    # --- observation --------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._running().pid

    @property
    def admin(self) -> EnvoyAdmin:
        """The admin API client (only while running)."""
        self._running()
        if self._admin is None:
            raise EnvoyError(f"Envoy in {self.workdir} has no admin address yet")
        return self._admin

    @property
    def admin_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the admin API (``/stats/prometheus`` lives there)."""
        return self.admin.url

    def ready(self) -> bool:
        return self._process is not None and self._process.poll() is None and self.admin.ready()

    def running(self) -> bool:
        """The process is alive (no admin request; see :meth:`ready` for readiness)."""
        return self._process is not None and self._process.poll() is None

    def stats_prometheus(self) -> str:
        return self.admin.stats_prometheus()

    def versions(self) -> XdsVersions:
        stats = self.admin.stats(r"^(listener_manager\.lds|cluster_manager\.cds)\.version_text$")
        return XdsVersions(
            listeners=str(stats.get("listener_manager.lds.version_text", "")),
            clusters=str(stats.get("cluster_manager.cds.version_text", "")),
        )

    def wait_for_version(self, version: str, timeout: float = 10.0) -> None:
        """Poll the admin API until Envoy reports ``version`` for listeners and clusters."""
        self._await(
            lambda: self.versions() == XdsVersions(version, version),
            lambda: f"version {version!r} (reports {self.versions()})",
            timeout,
        )

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The end of Envoy's log, minus its banner of linked extensions."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return f"(no Envoy log at {self.log_path})"
        kept = strip_banner(text.splitlines())
        return f"--- last lines of {self.log_path} ---\n" + "\n".join(kept[-lines:])

    # --- update -------------------------------------------------------------------------

    def update(
        self,
        listeners: Sequence[Mapping[str, Any]],
        clusters: Sequence[Mapping[str, Any]],
        version: str,
        *,
        routes: Sequence[Mapping[str, Any]] = (),
        timeout: float = 10.0,
    ) -> None:
        """Make Envoy serve exactly these resources, without a restart or a failed request.

        Listeners may inline their route tables or name them via RDS
        (``rds: {route_config_name: NAME}``) with the tables passed as ``routes``. Returns
        when Envoy reports ``version`` for everything; raises
        :class:`EnvoyUpdateRejectedError` (Envoy keeps serving the previous config) or
        :class:`EnvoyTimeoutError`. ``timeout`` bounds each of the up to four steps.
        """
        new_clusters = by_name(clusters, "cluster")
        new_routes = by_name(routes, "route table")
        bound = bind_rds(listeners, self.rds_path)
        missing = referenced_route_names(listeners) - set(new_routes)
        if missing:
            raise ValueError(f"listeners use route tables not given in routes: {sorted(missing)}")
        by_name(listeners, "listener")

        # Make before break: clusters about to go stay until nothing routes to them.
        removed = {n: c for n, c in self._clusters.items() if n not in new_clusters}
        # Unchanged clusters are rewritten last, only to report the new version: a route
        # change (the common case: weights, matches) then reaches traffic one step sooner.
        same_clusters = not removed and dict(new_clusters) == self._clusters
        if removed:
            keep_alive = [*new_clusters.values(), *removed.values()]
            self._write_clusters(keep_alive, f"{version}+draining", timeout)
        elif not same_clusters:
            self._write_clusters(list(new_clusters.values()), version, timeout)
        self._write_routes(new_routes, version, timeout)
        rendered = {str(listener["name"]): render(listener) for listener in bound}
        drains = any(rendered.get(name) != text for name, text in self._listeners.items())
        self._write_file(self.lds_path, LISTENER_TYPE, bound, version, timeout)
        self._listeners = rendered
        if removed:
            if drains:
                self._await_drained(self._drain_time_s + timeout)
            self._write_clusters(list(new_clusters.values()), version, timeout)
        elif same_clusters:
            self._write_clusters(list(new_clusters.values()), version, timeout)
        for name in self._route_names - set(new_routes):
            self._route_tables.pop(name, None)
            self.rds_path(name).unlink(missing_ok=True)
        self._route_names = set(new_routes)

    def _await_drained(self, timeout: float) -> None:
        """Wait until replaced listeners and filter chains finished draining.

        Their open connections still route with the old tables, which may name the clusters
        about to be removed; Envoy keeps draining ones for ``drain_time_s``.
        """
        self._await(
            lambda: (
                self._gauge("listener_manager.total_listeners_draining") == 0
                and self._gauge("listener_manager.total_filter_chains_draining") == 0
            ),
            "replaced listeners to finish draining",
            timeout,
        )

    def _write_clusters(
        self, clusters: Sequence[Mapping[str, Any]], version: str, timeout: float
    ) -> None:
        self._write_file(self.cds_path, CLUSTER_TYPE, clusters, version, timeout)
        self._clusters = {str(c["name"]): c for c in clusters}

    def _write_file(self, path: Path, type_url: str, resources: Sequence[Mapping[str, Any]],
                    version: str, timeout: float) -> None:
        """Write the clusters (CDS) or listeners (LDS) file; wait until Envoy took it and
        every one of them warmed."""
        stats, what, warming, warmed = _FILES[type_url]
        before = self._counters(stats)
        write_atomic(path, render(discovery_response(type_url, resources, version)))
        self._await_update(stats, what, before, timeout)
        self._await(
            lambda: getattr(self.versions(), what) == version and self._gauge(warming) == 0,
            f"{what} at version {version!r}{warmed}",
            timeout,
        )

    def _write_routes(
        self, routes: Mapping[str, Mapping[str, Any]], version: str, timeout: float
    ) -> None:
        """Write every route table; wait for those a current listener already subscribes to.

        Tables only new listeners use are read when those listeners start, which the
        listener step waits for (a listener warms until its routes arrive).
        """
        # An unchanged table is not rewritten: Envoy would accept it but keep reporting the
        # old version in its config dump, and nothing would change for traffic anyway.
        changed = {n: t for n, t in routes.items() if self._route_tables.get(n) != t}
        subscribed = set(self._route_versions()) & set(changed)
        before = self._counters(_RDS_STATS)
        for name, table in changed.items():
            document = discovery_response(ROUTE_TYPE, [table], version)
            write_atomic(self.rds_path(name), render(document))
            self._route_tables[name] = dict(table)
        if subscribed:
            self._await_update(_RDS_STATS, "route tables", before, timeout, len(subscribed))
            self._await(
                lambda: all(self._route_versions().get(n) == version for n in subscribed),
                f"route tables {sorted(subscribed)} at version {version!r}",
                timeout,
            )

    # --- internals ----------------------------------------------------------------------

    def _route_versions(self) -> dict[str, str]:
        """Route table name -> version_info of the RDS tables Envoy currently holds."""
        dump = self.admin.config_dump("dynamic_route_configs")
        out: dict[str, str] = {}
        for entry in dump.get("configs", []):
            config = entry.get("route_config", {})
            if "name" in config:
                out[str(config["name"])] = str(entry.get("version_info", ""))
        return out

    def _counters(self, prefix: str) -> _Counters:
        """Sum of the update outcome counters of the subscriptions under ``prefix`` (a regex)."""
        stats = self.admin.stats(rf"^{prefix}\.update_(success|rejected|failure)$")
        processed = rejected = 0
        for name, value in stats.items():
            processed += int(value)
            if not name.endswith(".update_success"):
                rejected += int(value)
        return _Counters(processed=processed, rejected=rejected)

    def _gauge(self, name: str) -> int:
        return int(self.admin.stats(rf"^{re.escape(name)}$").get(name, 0))

    def _await_update(
        self, prefix: str, what: str, before: _Counters, timeout: float, files: int = 1
    ) -> None:
        """Wait until Envoy processed ``files`` more files of this kind; raise on rejection."""
        now = before

        def processed() -> bool:
            nonlocal now
            now = self._counters(prefix)
            return now.processed >= before.processed + files or now.rejected > before.rejected

        self._await(processed, f"Envoy to read the new {what} file", timeout)
        if now.rejected > before.rejected:
            raise EnvoyUpdateRejectedError(
                f"Envoy in {self.workdir} rejected the {what} update and keeps its previous "
                f"config:\n{self._rejections()}\n{self.log_tail(10)}"
            )

    def _rejections(self) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        lines = [ln for ln in text.splitlines() if "rejected" in ln or "error" in ln.lower()]
        return "\n".join(lines[-5:])

    def _await(
        self,
        condition: Callable[[], bool],
        what: str | Callable[[], str],
        timeout: float,
    ) -> None:
        """Poll ``condition`` until true; bounded by ``timeout`` and by Envoy staying alive."""
        deadline = time.monotonic() + timeout
        while not condition():
            self._check_alive("while waiting")
            if time.monotonic() >= deadline:
                detail = what() if callable(what) else what
                raise EnvoyTimeoutError(
                    f"Envoy in {self.workdir}: no {detail} after {timeout:.1f}s\n" + self.log_tail()
                )
            time.sleep(_POLL_INTERVAL)

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise EnvoyError(f"Envoy in {self.workdir} is not running (call start())")
        return self._process

    def _check_alive(self, when: str) -> None:
        code = self._running().poll()
        if code is not None:
            raise EnvoyStartError(
                f"Envoy in {self.workdir} exited with code {code} {when}\n" + self.log_tail()
            )

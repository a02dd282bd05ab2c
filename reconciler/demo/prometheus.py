"""A real Prometheus on 127.0.0.1 for tests and the local mesh: scrape, record, query.

Canary analysis asks Prometheus questions (PromQL over Envoy's or Istio's metrics). To test
that for real, this starts the Debian ``prometheus`` binary with a private config and TSDB
directory, scraping the given targets and evaluating recording rules every
``scrape_interval`` (1 s unless told; sub-second intervals work), so a test sees its own
traffic in Prometheus within a few seconds at most.

Install once per machine: ``apt-get install -y --no-install-recommends prometheus``
(``scripts/install-components`` does it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import yaml

from reconciler.processes.lifecycle import Component, NeverReady, log_tail, terminate, wait_ready
from reconciler.processes.ports import free_port
from reconciler.processes.spawn import spawn
from reconciler.processes.workfiles import WorkFile

__all__ = ["LocalPrometheus", "PrometheusError", "ScrapeJob", "by_label", "find_prometheus"]

PROMETHEUS_BINARY_ENV = "MESHDSL_PROMETHEUS"
_LOG_TAIL_LINES = 30


class PrometheusError(Exception):
    """Prometheus is missing, did not start, rejected its config, or failed a query."""


@dataclass(frozen=True)
class ScrapeJob:
    """Targets (``host:port``) scraped at ``metrics_path`` with the URL query ``params``;
    ``labels`` are added to them, and ``metric_relabel_configs`` (Prometheus' own syntax)
    rewrite each scraped series before it is stored."""

    name: str
    targets: Sequence[str]
    metrics_path: str = "/metrics"
    labels: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    metric_relabel_configs: Sequence[Mapping[str, Any]] = ()


def find_prometheus() -> Path:
    """``$MESHDSL_PROMETHEUS``, ``prometheus`` on PATH, or Debian's ``/usr/bin/prometheus``."""
    override = os.environ.get(PROMETHEUS_BINARY_ENV)
    for candidate in (override, shutil.which("prometheus"), "/usr/bin/prometheus"):
        if candidate and os.access(candidate, os.X_OK) and Path(candidate).is_file():
            return Path(candidate)
    raise PrometheusError(
        "prometheus binary not found (looked at $MESHDSL_PROMETHEUS, PATH, /usr/bin); install "
        "it with `apt-get install -y --no-install-recommends prometheus` or run "
        "scripts/install-components"
    )


def by_label(result: Sequence[Mapping[str, Any]], label: str) -> dict[str, float]:
    """An instant-vector result as ``{value of label: sample value}``."""
    return {
        str(sample["metric"].get(label, "")): float(sample["value"][1])
        for sample in result
        if "value" in sample
    }


class LocalPrometheus(Component):
    """One Prometheus process with its own config, TSDB and port. Use as a context manager."""

    def __init__(
        self,
        jobs: Sequence[ScrapeJob] = (),
        *,
        rule_groups: Sequence[Mapping[str, Any]] = (),
        workdir: Path | str | None = None,
        scrape_interval: str = "1s",
        startup_timeout: float = 30.0,
        binary: Path | None = None,
    ) -> None:
        self._jobs = list(jobs)
        self._rule_groups = [dict(g) for g in rule_groups]
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="prometheus-")).resolve()
        self._scrape_interval = scrape_interval
        self._startup_timeout = startup_timeout
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None
        self.port = 0

    config_path = WorkFile("prometheus.yml")
    rules_path = WorkFile("rules.yml")
    log_path = WorkFile("prometheus.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> Self:
        """Write the config, start Prometheus, wait for ``/-/ready`` (bounded)."""
        if self._process is not None:
            raise PrometheusError("this Prometheus is already started")
        with self.stopping_on_error():
            self._launch()
            self._wait_ready()
            self.wait_scraped(self._startup_timeout)
        return self

    def _launch(self) -> None:
        binary = self._binary or find_prometheus()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self.port = free_port()
        command = [
            str(binary),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",  # POST /-/reload applies a new config synchronously
            "--storage.tsdb.retention.time=1d",
        ]
        with open(self.log_path, "ab") as log:
            self._process = spawn(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.workdir
            )
        self._client = httpx.Client(base_url=self.url, timeout=10.0, trust_env=False)

    def _wait_ready(self) -> None:
        def ready() -> bool:
            try:
                return self._http().get("/-/ready").status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_ready(ready, timeout=self._startup_timeout, what="Prometheus",
                       process=self._process, interval=0.1)
        except NeverReady as exc:
            raise PrometheusError(f"{exc}\n{self.log_tail()}") from exc

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; removes a working dir it created."""
        process, self._process = self._process, None
        terminate(process, timeout)
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


    # --- configuration ------------------------------------------------------------------

    def reload_targets(
        self,
        jobs: Sequence[ScrapeJob],
        *,
        rule_groups: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Scrape ``jobs`` from now on (and use new rules if given), without a restart."""
        self._jobs = list(jobs)
        if rule_groups is not None:
            self._rule_groups = [dict(g) for g in rule_groups]
        self._write_config()
        response = self._http().post("/-/reload")
        if response.status_code != 200:
            raise PrometheusError(
                f"Prometheus rejected the new config: {response.text.strip()}\n" + self.log_tail()
            )
        self.wait_scraped(self._startup_timeout)

    def wait_scraped(self, timeout: float = 15.0) -> None:
        """Wait until every configured target has been scraped once (up or down).

        Prometheus 2.42 hands new targets to its scrapers at most every 5 s, so the first
        scrape comes up to ~6 s after start or reload; waiting here makes "started" mean
        "scraping", and later waits for data take about one scrape interval.
        """
        expected = {(job.name, target) for job in self._jobs for target in job.targets}
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            scraped = {
                (t["labels"].get("job"), t["labels"].get("instance"))
                for t in self.targets()
                if t.get("health") in ("up", "down")
            }
            if scraped == expected:
                return
            if time.monotonic() >= deadline:
                raise PrometheusError(
                    f"after {timeout:.0f}s, scraped targets are {sorted(map(str, scraped))}, "
                    f"expected {sorted(map(str, expected))}\n" + self.log_tail()
                )
            time.sleep(0.1)

    def _write_config(self) -> None:
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self._scrape_interval,
                "scrape_timeout": self._scrape_interval,  # must not exceed the interval
                "evaluation_interval": self._scrape_interval,
            },
            "scrape_configs": [_scrape_config(job) for job in self._jobs],
        }
        if self._rule_groups:
            self.rules_path.write_text(yaml.safe_dump({"groups": self._rule_groups}))
            config["rule_files"] = [str(self.rules_path)]
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    # --- queries ------------------------------------------------------------------------

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Evaluate ``promql`` now; the result samples (``metric`` + ``value`` or ``values``).

        A scalar or string result comes back as one sample with empty ``metric``.
        """
        try:
            response = self._http().get("/api/v1/query", params={"query": promql})
        except httpx.HTTPError as err:
            raise PrometheusError(f"Prometheus at {self.url} unreachable: {err}") from err
        body = response.json() if response.content else {}
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(
                f"query {promql!r} failed ({response.status_code}): "
                f"{body.get('errorType', '')} {body.get('error', response.text[:300])}"
            )
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(
        self,
        promql: str,
        condition: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 15.0,
        *,
        interval: float = 0.25,
    ) -> list[dict[str, Any]]:
        """Query until ``condition(result)`` holds; the last result, or a timeout error."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if condition(result):
                return result
            if time.monotonic() >= deadline:
                raise PrometheusError(f"after {timeout:.1f}s, {promql!r} still returns {result!r}")
            time.sleep(interval)

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their health (``up``/``down``) and last error."""
        body = self._http().get("/api/v1/targets", params={"state": "active"}).json()
        targets: list[dict[str, Any]] = body["data"]["activeTargets"]
        return targets

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return log_tail(self.log_path, lines)

    # --- internals ----------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        if self._client is None:
            raise PrometheusError("Prometheus is not running (call start())")
        return self._client

    def _check_alive(self) -> None:
        if self._process is None:
            raise PrometheusError("Prometheus is not running (call start())")
        code = self._process.poll()
        if code is not None:
            raise PrometheusError(f"Prometheus exited with code {code}\n" + self.log_tail())


def _scrape_config(job: ScrapeJob) -> dict[str, Any]:
    config: dict[str, Any] = {"job_name": job.name, "metrics_path": job.metrics_path}
    if job.params:
        config["params"] = {name: [value] for name, value in job.params.items()}
    config["static_configs"] = [{"targets": list(job.targets), "labels": dict(job.labels)}]
    if job.metric_relabel_configs:
        config["metric_relabel_configs"] = [dict(c) for c in job.metric_relabel_configs]
    return config

"""The apps behind the local sidecars: one process per workload that declares a command.

A mesh program says how each version runs on a laptop (``svc.run_locally(version,
command=[...], address=..., env=...)``). The runtime picks the app's port, substitutes it
into the command and starts it; the app then sees the mesh the way a pod does:

- ``{port}``, ``{host}``, ``{service}``, ``{version}`` and ``{namespace}`` in the command
  and in ``env`` values are replaced (other braces are left alone);
- ``PORT``, ``MESH_SERVICE``, ``MESH_VERSION``, ``MESH_NAMESPACE`` are set, and for every
  service of its own namespace the Kubernetes-style ``<NAME>_SERVICE_HOST`` /
  ``<NAME>_SERVICE_PORT`` point at *this workload's sidecar* listener for that service —
  where Istio would intercept ``reviews:9080``, a local app calls ``127.0.0.1:<port>``.

An app counts as started once its port accepts TCP connections (any protocol). Each app
gets its own session, so a Ctrl-C in the terminal reaches ``meshctl`` alone, which then
stops apps in order; a parent-death signal stops them if ``meshctl`` itself is killed.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from meshdsl.compile.envoy import WorkloadKey
from meshdsl.compile.envoy.placement import Address, SidecarPlacement
from meshdsl.model.service import LocalRun
from reconciler.processes.lifecycle import (
    ChildExited,
    Component,
    NotReady,
    log_tail,
    terminate,
    wait_ready,
)
from reconciler.processes.spawn import spawn
from reconciler.targets.envoy.errors import LocalAppError

__all__ = ["LocalApp", "app_environment", "expand"]

_PLACEHOLDER = re.compile(r"\{(port|host|service|version|namespace)\}")
_POLL = 0.02
_LOG_TAIL = 30


def expand(text: str, values: Mapping[str, str]) -> str:
    """``text`` with the known ``{placeholders}`` replaced; other braces stay as written."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _env_name(service: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", service).upper()


def app_environment(key: WorkloadKey, where: SidecarPlacement,
                    ports: Mapping[tuple[str, str, int], str]) -> dict[str, str]:
    """The variables the runtime sets for one workload's app (before ``LocalRun.env``).

    ``ports`` names each service port (``(namespace, service, number)`` → port name), for
    the ``<NAME>_SERVICE_PORT_<PORT NAME>`` variables of multi-port services.
    """
    env = {"PORT": str(where.app.port), "MESH_SERVICE": key.service,
           "MESH_VERSION": key.version, "MESH_NAMESPACE": key.namespace}
    first: dict[str, int] = {}
    for (namespace, service, number), local in sorted(where.outbound.items()):
        if namespace != key.namespace:
            continue
        name = _env_name(service)
        env[f"{name}_SERVICE_HOST"] = where.inbound.host
        if service not in first:
            first[service] = local
            env[f"{name}_SERVICE_PORT"] = str(local)
        port_name = ports.get((namespace, service, number))
        if port_name:
            env[f"{name}_SERVICE_PORT_{_env_name(port_name)}"] = str(local)
    return env


@dataclass(frozen=True)
class AppSpec:
    """Everything that decides whether a running app can stay or must be restarted."""

    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    address: Address


class LocalApp(Component):
    """One workload's app process, on ``address`` (its port is already substituted)."""

    def __init__(self, key: WorkloadKey, run: LocalRun, address: Address, *,
                 environment: Mapping[str, str], log_path: Path,
                 startup_timeout: float = 20.0) -> None:
        values = {"port": str(address.port), "host": address.host, "service": key.service,
                  "version": key.version, "namespace": key.namespace}
        self.key = key
        self.address = address
        self.command = [expand(part, values) for part in run.command]
        self.run_env = {k: expand(v, values) for k, v in run.env.items()}
        self.env = {**environment, **self.run_env}
        self.log_path = log_path
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def spec(self) -> AppSpec:
        """What the program declared for this app (the mesh-provided variables aside)."""
        return AppSpec(tuple(self.command), tuple(sorted(self.run_env.items())), self.address)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> LocalApp:
        """Start the command and wait until its port accepts connections."""
        return self.launch().wait_listening()

    def launch(self) -> LocalApp:
        """Start the command without waiting (see :meth:`wait_listening`)."""
        if not self.command:
            raise LocalAppError(f"{self.key.proxy_id}: run_locally() has no command")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if _accepts(self.address):
            raise LocalAppError(
                f"{self.key.proxy_id}: {self.address} is already in use by another process; "
                "stop it, or give this version run_locally(address=...) to use it as is")
        with open(self.log_path, "ab") as log:
            try:
                self._process = spawn(
                    self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    env={**os.environ, **self.env}, start_new_session=True)
            except OSError as err:
                raise LocalAppError(f"{self.key.proxy_id}: cannot run {self.command[0]!r}: "
                                    f"{err}") from err
        return self

    def wait_listening(self) -> LocalApp:
        """Wait until the app's port accepts connections; stop it and raise if it exits or
        times out first."""
        with self.stopping_on_error():
            self._wait_listening()
        return self

    def _wait_listening(self) -> None:
        try:
            wait_ready(lambda: _accepts(self.address), timeout=self._startup_timeout,
                       what=f"{self.key.proxy_id}: the app", process=self._process,
                       interval=_POLL)
        except ChildExited as exc:
            raise LocalAppError(f"{self.key.proxy_id}: the app exited with code {exc.code} "
                                f"before listening on {self.address}\n{self.log_tail()}"
                                ) from exc
        except NotReady as exc:
            raise LocalAppError(
                f"{self.key.proxy_id}: the app did not listen on {self.address} within "
                f"{self._startup_timeout:.0f}s (does its command use {{port}} or $PORT?)"
                f"\n{self.log_tail()}") from exc

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM to the app's process group, SIGKILL after ``timeout`` seconds."""
        process, self._process = self._process, None
        terminate(process, timeout, group=True)   # and the children it left behind

    def log_tail(self, lines: int = _LOG_TAIL) -> str:
        return log_tail(self.log_path, lines)


def _accepts(address: Address) -> bool:
    try:
        with socket.create_connection((address.host, address.port), timeout=0.2):
            return True
    except OSError:
        return False

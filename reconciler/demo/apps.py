"""Run ``examples/apps/demo_app.py`` instances as real upstream services for tests.

The local mesh needs something behind its Envoys that says which service and version
answered (``x-served-by``) and can misbehave on demand; the demo app does both, and this
wrapper starts it on a free loopback port, waits for ``/healthz``, and stops it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Self

from reconciler.processes.lifecycle import Component, terminate
from reconciler.processes.ports import free_port, wait_http
from reconciler.processes.spawn import spawn

__all__ = ["DEMO_APP", "DemoApp", "demo_command"]

DEMO_APP = Path(__file__).resolve().parents[2] / "examples" / "apps" / "demo_app.py"
"""The demo service script in this repository's examples."""


def demo_command(*args: str) -> list[str]:
    """The demo app as a mesh program's local run command (``run_locally``): the runtime
    fills in the ``{service}``/``{version}``/``{port}`` placeholders; ``args`` are its flags
    (``--error-rate 0.2``, ``--latency-ms 300``...)."""
    return [sys.executable, str(DEMO_APP), "--name", "{service}", "--version", "{version}",
            "--port", "{port}", *args]


class DemoApp(Component):
    """One demo service instance (``name``-``version``) on 127.0.0.1:``port``."""

    def __init__(
        self,
        name: str,
        version: str = "v1",
        *,
        port: int | None = None,
        error_rate: float = 0.0,
        latency_ms: float = 0.0,
        fail_first: int | None = None,
        seed: int | None = None,
        script: Path = DEMO_APP,
        startup_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.version = version
        self.port = port or free_port()
        self._args = ["--error-rate", str(error_rate), "--latency-ms", str(latency_ms)]
        if fail_first is not None:
            self._args += ["--fail-first", str(fail_first)]
        if seed is not None:
            self._args += ["--seed", str(seed)]
        self._script = script
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def served_by(self) -> str:
        """The ``x-served-by`` header value this instance answers with."""
        return f"{self.name}-{self.version}"

    def start(self) -> Self:
        if not self._script.is_file():
            raise FileNotFoundError(f"demo app not found at {self._script}")
        command = [sys.executable, str(self._script), "--name", self.name]
        command += ["--version", self.version, "--port", str(self.port), *self._args]
        self._process = spawn(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_http(f"{self.url}/healthz", self._startup_timeout)
        except TimeoutError as err:
            stderr = self._stop_and_read_stderr()
            raise RuntimeError(f"demo app {self.served_by} did not start: {err}\n{stderr}") from err
        return self

    def stop(self) -> None:
        self._stop_and_read_stderr()

    def _stop_and_read_stderr(self) -> str:
        process, self._process = self._process, None
        if process is None:
            return ""
        terminate(process, 5)
        stderr = process.stderr.read() if process.stderr is not None else b""
        return stderr.decode(errors="replace")[-2000:]


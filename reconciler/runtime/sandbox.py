"""Run a user's mesh program in a child process and get its compiled output back as data.

The reconciler holds cluster credentials and runs unattended; the program is arbitrary
Python from a Git commit. So the program never runs in the reconciler's process:

- a fresh process per program, forked from a server that has meshdsl imported
  (:mod:`.compile_worker`): one job, then it exits; nothing of an earlier program stays;
- a scrubbed environment — only ``PATH``, ``PYTHONPATH``, ``LANG`` and Python's own
  switches: no ``KUBECONFIG``, tokens, cloud credentials or ``HOME`` secrets;
- limits: address space (``RLIMIT_AS``), CPU time (``RLIMIT_CPU``), no core dumps, its own
  process group (so a timeout kills everything it started), and a wall-clock timeout;
- the result is JSON on a pipe; a program that prints cannot corrupt it.

This is containment against mistakes (a loop, a leak, a stray ``print``), not a boundary
against a hostile author running as the same user: files readable by the reconciler are
readable by the program. Run the reconciler in a container whose only secret is mounted
for it alone (see ``meshctl install``) — and only apply commits you trust (``--verify``).

Importing meshdsl takes most of a second of CPU, so the sandbox keeps that fork server
running: a push costs a ``fork()``, not an interpreter start. Limits are applied in the
forked child before the program runs (``preexec_fn`` is unsafe in a process with threads,
which the reconciler is). If the server dies it is started again.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import reconciler
from reconciler.errors import ReconcilerError

__all__ = ["Compiled", "Limits", "ProgramFailed", "Sandbox"]

_PASS_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT")
_STDERR_TAIL = 4000
_STARTUP_TIMEOUT = 60.0
_REPLY_TIMEOUT = 10.0


@dataclass(frozen=True)
class Limits:
    timeout: float = 10.0          # wall clock, seconds, for load + validate + compile
    memory_mb: int = 1024          # address space of the worker
    cpu_seconds: float | None = None   # default: the timeout, rounded up, plus 2


class ProgramFailed(ReconcilerError):
    """The program did not produce a valid mesh. ``kind``: syntax, exception, timeout,
    memory, validation, compile, invalid or crash; ``location``: file:line in the
    repository when known; ``details``: the traceback or findings, one line each."""

    def __init__(self, kind: str, message: str, *, location: str | None = None,
                 details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.kind, self.message, self.location, self.details = kind, message, location, details

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


@dataclass(frozen=True)
class Compiled:
    mesh: str
    manifests: list[dict[str, Any]]
    warnings: tuple[str, ...] = ()
    spec: dict[str, Any] | None = None
    stderr: str = field(default="", compare=False)
    tenancy: dict[str, Any] | None = None   # the program's fence (meshdsl.compile.tenancy)

    def output(self) -> dict[str, Any]:
        """What the state store keeps and a deployer consumes."""
        out: dict[str, Any] = {"mesh": self.mesh, "manifests": self.manifests}
        if self.tenancy is not None:
            out["tenancy"] = self.tenancy
        if self.spec is not None:
            out["spec"] = self.spec
        return out


def _pythonpath() -> str:
    """Where our packages live, so the worker imports this very meshdsl."""
    root = str(Path(reconciler.__file__).resolve().parents[1])
    return root


def scrubbed_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env.update({"PYTHONPATH": _pythonpath(), "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONHASHSEED": "0", "PYTHONUNBUFFERED": "1", "PYTHONNOUSERSITE": "1"})
    return env


class _Server:
    """The fork server process and line-oriented, deadline-bounded reads of its replies."""

    def __init__(self, argv: list[str], cwd: str) -> None:
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=scrubbed_env(), cwd=cwd, close_fds=True, start_new_session=True)
        self._buffer = b""
        self.ready = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def readline(self, timeout: float) -> bytes | None:
        """One line from the server; ``None`` on timeout or when it exited. Raw reads, so
        nothing is left in a Python-side buffer between calls."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def wait_ready(self, timeout: float) -> bool:
        if not self.ready:
            self.ready = self.readline(timeout) == b"ready"
        return self.ready

    def send(self, job: dict[str, Any]) -> bool:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(job) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        return True

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.close()


class Sandbox:
    """Runs programs one at a time (calls are serialised). ``warm``: start the fork server
    ahead of time (:meth:`prepare`) and keep it; otherwise it is started per run."""

    def __init__(self, limits: Limits = Limits(), *, warm: bool = True,
                 python: str = sys.executable) -> None:
        self.limits, self.warm, self.python = limits, warm, python
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._home = tempfile.mkdtemp(prefix="meshdsl-sandbox-")
        self._closed = False

    @property
    def cpu_seconds(self) -> float:
        if self.limits.cpu_seconds is not None:
            return self.limits.cpu_seconds
        return math.ceil(self.limits.timeout) + 2

    def _argv(self) -> list[str]:
        return [self.python, "-s", "-m", "reconciler.runtime.compile_worker", "--serve",
                "--memory-mb", str(self.limits.memory_mb),
                "--cpu-seconds", str(self.cpu_seconds)]

    def _ensure_server(self) -> _Server:
        server = self._server
        if server is None or not server.alive():
            if server is not None:
                server.kill()
            server = self._server = _Server(self._argv(), self._home)
        return server

    def prepare(self) -> None:
        """Start the fork server now (otherwise the first run starts it)."""
        with self._lock:
            if not self._closed:
                self._ensure_server()

    def run(self, checkout: Path, program: str, *, spec: bool = False) -> Compiled:
        """Run ``program`` (a path inside ``checkout``, optionally ``:attribute``); return
        its compiled output or raise :class:`ProgramFailed`."""
        job = {"checkout": str(checkout), "program": program, "timeout": self.limits.timeout,
               "spec": spec, "memory_mb": self.limits.memory_mb}
        with self._lock:
            if self._closed:
                raise ProgramFailed("crash", "the sandbox is closed")
            try:
                return self._run(job, program)
            finally:
                if not self.warm and self._server is not None:
                    self._server.kill()
                    self._server = None

    def _run(self, job: dict[str, Any], program: str) -> Compiled:
        server = self._ensure_server()
        if not server.wait_ready(_STARTUP_TIMEOUT) or not server.send(job):
            server.kill()
            self._server = None
            raise ProgramFailed("crash", f"the compile worker did not start within "
                                f"{_STARTUP_TIMEOUT:g} s (is meshdsl importable by "
                                f"{self.python}?)")
        started = server.readline(_REPLY_TIMEOUT)
        try:
            pid = int(json.loads(started or b"{}")["started"])
        except (ValueError, KeyError, TypeError):
            server.kill()
            self._server = None
            raise ProgramFailed("crash", "the compile worker did not start the program") \
                from None
        reply = server.readline(self.limits.timeout + 2.0)
        killed = False
        if reply is None:
            killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            reply = server.readline(_REPLY_TIMEOUT)
        if reply is None:
            server.kill()
            self._server = None
            raise ProgramFailed("crash", "the compile worker stopped answering")
        data = json.loads(reply)
        if killed:
            raise ProgramFailed(
                "timeout", f"{program} did not finish within {self.limits.timeout:g} s and "
                "was killed (an endless loop in native code?)")
        return self._result(int(data.get("done", 0)), data.get("result"),
                            str(data.get("stderr") or ""), program)

    def _result(self, code: int, data: Any, stderr: str, program: str) -> Compiled:
        err = stderr[-_STDERR_TAIL:]
        if not isinstance(data, dict):
            if code < 0:
                name = signal.Signals(-code).name
                hint = (" (CPU time limit)" if -code in (signal.SIGXCPU, signal.SIGKILL)
                        else "")
                raise ProgramFailed("crash", f"{program} was killed by {name}{hint}",
                                    details=tuple(err.splitlines()[-10:]))
            raise ProgramFailed("crash", f"{program} exited (status {code}) without a result",
                                details=tuple(err.splitlines()[-10:]))
        if not data.get("ok"):
            raise ProgramFailed(str(data.get("kind") or "exception"),
                                str(data.get("message") or "failed"),
                                location=data.get("location"),
                                details=tuple(str(d) for d in data.get("details") or ()))
        return Compiled(mesh=str(data["mesh"]), manifests=list(data["manifests"]),
                        warnings=tuple(data.get("warnings") or ()), spec=data.get("spec"),
                        stderr=err, tenancy=data.get("tenancy"))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            server, self._server = self._server, None
        if server is not None:
            server.kill()
        with contextlib.suppress(OSError):
            os.rmdir(self._home)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Run a user's mesh program in a sandbox and get its mesh back as data the parent checks.

The reconciler holds cluster credentials and runs unattended; the program is arbitrary
Python from a Git commit, possibly hostile. So the program never runs in the reconciler's
process, and never with its view of the machine:

- isolation (:mod:`.isolation`): bubblewrap — its own user, PID, network (empty: no
  ``127.0.0.1``), IPC and mount namespaces; the checkout and the Python it needs,
  read-only, nothing else of the file system; a scrubbed environment. Without bubblewrap
  (``MESHDSL_SANDBOX=none``, or ``auto`` where it does not work) it is a plain child
  process, and a loud warning says so;
- limits (:func:`.compile_worker.limit_worker`): processes, open files, file size, memory
  (``RLIMIT_AS``), CPU time, no core dumps; a wall-clock timeout after which the whole
  sandbox is killed — every process in its PID namespace dies with it;
- one sandbox per program run: nothing of an earlier program stays. A warm sandbox (the
  next one, started as soon as a run ends) has meshdsl imported already, so a push costs
  a copy of the checkout, not an interpreter start;
- the result (:mod:`.verdict`): bounded in size, read over a pipe the program never holds,
  and only data — the parent parses the spec, validates and compiles it itself.
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
from typing import IO, Any

from meshdsl.compile.tenancy import declaration
from meshdsl.validate import Severity
from reconciler.runtime.cgroup import PidsCgroup
from reconciler.runtime.compile_worker import MAX_RESULT, NPROC
from reconciler.runtime.isolation import (
    CHECKOUT,
    CheckoutTooLarge,
    Isolation,
    Mode,
    clear_staging,
    probe,
    stage_checkout,
)
from reconciler.runtime.records import FailureKind, ProgramError
from reconciler.runtime.verdict import Judged, Rejected, judge

__all__ = ["Compiled", "Limits", "Mode", "Sandbox"]

_PASS_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
_STDERR_TAIL = 4000
_STARTUP_TIMEOUT = 60.0
_REPLY_TIMEOUT = 10.0
_HEADER_MAX = 64 << 10
_KINDS = frozenset({          # what a worker may say its program failed of (else EXCEPTION)
    FailureKind.SYNTAX, FailureKind.EXCEPTION, FailureKind.TIMEOUT, FailureKind.MEMORY,
    FailureKind.VALIDATION, FailureKind.INVALID})
_warned = False


@dataclass(frozen=True)
class Limits:
    timeout: float = 10.0          # wall clock, seconds, for load + validate
    memory_mb: int = 1024          # address space of the program's process
    cpu_seconds: float | None = None   # default: the timeout, rounded up, plus 2


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


def scrubbed_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env.update({"PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
                "PYTHONUNBUFFERED": "1", "PYTHONNOUSERSITE": "1"})
    return env


def _warn(reason: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        print(f"WARNING: mesh programs run WITHOUT a sandbox ({reason}): a program can read "
              "this process's files and network. Install bubblewrap (apt-get install "
              "bubblewrap) or set MESHDSL_SANDBOX=none to accept this.", file=sys.stderr,
              flush=True)


def _text(value: Any, limit: int) -> str:
    return str(value)[:limit]


class _Worker:
    """One sandbox for one program run, and deadline- and size-bounded reads of it."""

    def __init__(self, argv: list[str], *, home: Path, isolation: Isolation | None,
                 checkout: Path | None = None) -> None:
        self.log = open(home / "worker.log", "w+b")  # noqa: SIM115 (closed in kill)
        self.checkout = checkout if isolation is not None else None
        env = scrubbed_env()
        if isolation is not None:
            command, fds = isolation.command(argv, env, checkout=checkout)
            try:
                self.process = subprocess.Popen(
                    command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                    env={"PATH": env["PATH"]}, cwd=home, pass_fds=fds,
                    start_new_session=True)
            finally:
                for fd in fds:
                    os.close(fd)
        else:
            env["PYTHONPATH"] = _pythonpath()
            self.process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                env=env, cwd=home, close_fds=True, start_new_session=True)
        self.cgroup = PidsCgroup(NPROC)
        self._buffer = b""
        self.ready = False

    def _fill(self, deadline: float) -> bool:
        assert self.process.stdout is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        fd = self.process.stdout.fileno()
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            return False
        chunk = os.read(fd, 1 << 20)
        self._buffer += chunk
        return bool(chunk)

    def readline(self, timeout: float) -> bytes | None:
        """One line (at most :data:`_HEADER_MAX` bytes); ``None`` on timeout, exit or an
        over-long line."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            if len(self._buffer) > _HEADER_MAX or not self._fill(deadline):
                return None
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def read_exactly(self, size: int, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while len(self._buffer) < size:
            if not self._fill(deadline):
                return None
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def wait_ready(self, timeout: float) -> bool:
        if not self.ready:
            self.ready = self.readline(timeout) == b"ready"
            if self.ready:   # before the program runs: nothing it starts is outside
                self.cgroup.adopt(self.process.pid)
        return self.ready

    def send(self, job: dict[str, Any]) -> bool:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(job) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        return True

    def log_tail(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            self.log.seek(0, os.SEEK_END)
            size = self.log.tell()
            self.log.seek(max(0, size - 2000))
            return self.log.read().decode(errors="replace").strip()
        return ""

    def kill(self) -> None:
        """End the sandbox: bwrap's session, and with its PID namespace every process."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.cgroup.kill()
        with contextlib.suppress(Exception):
            self.process.wait(timeout=5)
        streams: list[IO[bytes] | None] = [self.process.stdin, self.process.stdout, self.log]
        for stream in streams:
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.close()


def _pythonpath() -> str:
    import meshdsl
    import reconciler

    return os.pathsep.join(sorted({str(Path(m.__file__ or ".").resolve().parents[1])
                                   for m in (meshdsl, reconciler)}))


class Sandbox:
    """Runs programs one at a time (calls are serialised), each in a sandbox of its own.
    ``warm``: start the next sandbox ahead of time (:meth:`prepare`, and after each run);
    otherwise one is started per run. ``mode``: see :class:`.isolation.Mode`."""

    def __init__(self, limits: Limits = Limits(), *, warm: bool = True,
                 python: str = sys.executable, mode: Mode | str | None = None) -> None:
        self.limits, self.warm, self.python = limits, warm, python
        self.mode = Mode(mode or os.environ.get("MESHDSL_SANDBOX") or Mode.AUTO)
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._home = Path(tempfile.mkdtemp(prefix="meshdsl-sandbox-"))
        os.chmod(self._home, 0o755)
        self._staging = self._home / "checkout"
        clear_staging(self._staging)
        self._isolation: Isolation | None = None
        self._probed = False
        self._closed = False

    @property
    def cpu_seconds(self) -> float:
        if self.limits.cpu_seconds is not None:
            return self.limits.cpu_seconds
        return math.ceil(self.limits.timeout) + 2

    @property
    def isolated(self) -> bool:
        """Whether programs run inside bubblewrap (probed once)."""
        self._probe()
        return self._isolation is not None

    def _probe(self) -> None:
        if self._probed:
            return
        self._probed = True
        if self.mode is Mode.NONE:
            _warn("--sandbox none")
            return
        bwrap = probe()
        if bwrap is not None:
            self._isolation = Isolation(bwrap=bwrap, staging=self._staging)
        elif self.mode is Mode.AUTO:
            _warn("bubblewrap is not installed or cannot create namespaces here")

    def _argv(self) -> list[str]:
        return [self.python, "-s", "-m", "reconciler.runtime.compile_worker", "--serve",
                "--memory-mb", str(self.limits.memory_mb),
                "--cpu-seconds", str(self.cpu_seconds)]

    def _start(self, checkout: Path | None = None) -> _Worker:
        self._probe()
        if self.mode is Mode.REQUIRE and self._isolation is None:
            raise ProgramError("bubblewrap is required (MESHDSL_SANDBOX=require) but it is "
                               "not installed or cannot create namespaces here",
                               kind=FailureKind.SANDBOX)
        return _Worker(self._argv(), home=self._home, isolation=self._isolation,
                       checkout=checkout)

    def prepare(self) -> None:
        """Start the next sandbox now (otherwise the first run starts it)."""
        with self._lock:
            if not self._closed and self._worker is None:
                with contextlib.suppress(ProgramError):
                    self._worker = self._start()

    def run(self, checkout: Path, program: str, *, spec: bool = False) -> Compiled:
        """Run ``program`` (a path inside ``checkout``, optionally ``:attribute``); return
        its compiled output or raise :class:`~reconciler.runtime.records.ProgramError`."""
        judged, stderr = self.evaluate(checkout, program)
        if judged.errors:
            first = judged.errors[0]
            raise ProgramError(f"{len(judged.errors)} validation error(s); nothing applied",
                               kind=FailureKind.VALIDATION,
                               location=str(first.source) if first.source else None,
                               details=(str(f) for f in judged.errors))
        try:
            manifests = judged.manifests()
        except Exception as exc:  # a compiler bug, reported as such
            raise ProgramError(f"compiling {program} failed: {type(exc).__name__}: {exc}",
                               kind=FailureKind.COMPILE) from exc
        return Compiled(
            mesh=judged.spec.name, manifests=manifests,
            warnings=tuple(str(f) for f in judged.findings
                           if f.severity is not Severity.ERROR),
            spec=judged.spec.model_dump(mode="json") if spec else None, stderr=stderr,
            tenancy=declaration(judged.spec))

    def evaluate(self, checkout: Path, program: str) -> tuple[Judged, str]:
        """Run ``program`` and judge the spec it returns (:func:`.verdict.judge`): the
        spec and every finding, errors included. Raises
        :class:`~reconciler.runtime.records.ProgramError` when there is no spec (the
        program failed, or returned something that is not one)."""
        with self._lock:
            if self._closed:
                raise ProgramError("the sandbox is closed", kind=FailureKind.CRASH)
            worker, self._worker = self._worker, None
            try:
                claim, stderr = self._run(worker or self._start(checkout.resolve()),
                                          checkout, program)
            finally:
                if self.warm and not self._closed:
                    with contextlib.suppress(ProgramError):
                        self._worker = self._start()
        try:
            return judge(claim), stderr
        except Rejected as exc:
            raise ProgramError(f"{program}: {exc}", kind=FailureKind.INVALID) from None

    def _job(self, worker: _Worker, checkout: Path, program: str) -> dict[str, Any]:
        root = str(checkout)
        if worker.checkout is not None:
            root = CHECKOUT
        elif self._isolation is not None:
            try:
                root = stage_checkout(checkout, self._staging).path
            except CheckoutTooLarge as exc:
                raise ProgramError(str(exc), kind=FailureKind.INVALID) from None
            except OSError as exc:
                raise ProgramError(f"cannot copy the checkout into the sandbox: {exc}",
                                   kind=FailureKind.CRASH) from None
        return {"checkout": root, "program": program, "timeout": self.limits.timeout,
                "memory_mb": self.limits.memory_mb}

    def _run(self, worker: _Worker, checkout: Path, program: str
             ) -> tuple[dict[str, Any], str]:
        try:
            if not worker.wait_ready(_STARTUP_TIMEOUT):
                tail = worker.log_tail().splitlines()
                raise ProgramError(f"the sandbox did not start within {_STARTUP_TIMEOUT:g} s"
                                   + (f": {tail[-1]}" if tail else ""),
                                   kind=FailureKind.CRASH, details=tail[-10:])
            if not worker.send(self._job(worker, checkout, program)):
                raise ProgramError("the sandbox stopped before the program ran",
                                   kind=FailureKind.CRASH)
            return self._reply(worker, program)
        finally:
            worker.kill()

    def _reply(self, worker: _Worker, program: str) -> tuple[dict[str, Any], str]:
        if worker.readline(_REPLY_TIMEOUT) is None:
            raise ProgramError("the sandbox did not start the program", kind=FailureKind.CRASH)
        header = worker.readline(self.limits.timeout + 2.0)
        if header is None:
            raise ProgramError(f"{program} did not finish within {self.limits.timeout:g} s "
                               "and was killed with everything it started",
                               kind=FailureKind.TIMEOUT)
        try:
            head = json.loads(header)
            code, size = int(head["done"]), int(head["size"])
            stderr = _text(head.get("stderr") or "", _STDERR_TAIL * 2)[-_STDERR_TAIL:]
            flooded = bool(head.get("flooded"))
        except (ValueError, KeyError, TypeError):
            raise ProgramError("the sandbox answered garbage", kind=FailureKind.CRASH) from None
        if flooded or not 0 <= size <= MAX_RESULT:
            raise ProgramError(f"{program} returned more than {MAX_RESULT >> 20} MiB; refused",
                               kind=FailureKind.INVALID)
        body = worker.read_exactly(size, _REPLY_TIMEOUT)
        try:
            data = json.loads(body) if body and body.strip() else None
        except (ValueError, RecursionError):
            data = None
        return self._claim(code, data, stderr, program), stderr

    def _claim(self, code: int, data: Any, stderr: str, program: str) -> dict[str, Any]:
        lines = tuple(stderr.splitlines()[-10:])
        if not isinstance(data, dict):
            if code < 0:
                name = signal.Signals(-code).name
                hint = (" (CPU time limit)" if -code in (signal.SIGXCPU, signal.SIGKILL)
                        else "")
                raise ProgramError(f"{program} was killed by {name}{hint}",
                                   kind=FailureKind.CRASH, details=lines)
            raise ProgramError(f"{program} exited (status {code}) without a result",
                               kind=FailureKind.CRASH, details=lines)
        if data.get("ok") is not True:
            kind = str(data.get("kind"))
            location = data.get("location")
            details = data.get("details")
            raise ProgramError(
                _text(data.get("message") or "failed", 2000),
                kind=FailureKind(kind) if kind in _KINDS else FailureKind.EXCEPTION,
                location=_text(location, 300) if isinstance(location, str) else None,
                details=tuple(_text(d, 500) for d in details[:30])
                if isinstance(details, list) else ())
        return data

    def close(self) -> None:
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill()
        clear_staging(self._staging)
        with contextlib.suppress(OSError):
            for entry in self._home.iterdir():
                if entry.is_dir():
                    entry.rmdir()
                else:
                    entry.unlink()
            self._home.rmdir()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

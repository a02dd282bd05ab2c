"""The process that runs a user's mesh program (started by :mod:`.sandbox`, never by hand).

``python -m reconciler.runtime.compile_worker [--memory-mb N] CHECKOUT PROGRAM`` loads and
validates the program and writes one JSON document to its *original* stdout; whatever the
program prints goes to stderr instead. With ``--serve`` (how the sandbox starts it, inside
bubblewrap) it imports meshdsl (the slow part), limits itself (:func:`limit_worker`),
announces ``ready`` and runs the one job read from stdin in a forked child; then it exits.

The channel to the parent (this process's stdout) is closed in the child before the
program runs, so the program never holds it. What the child returns on its own pipe is
bounded (:data:`MAX_RESULT`) and is only a *claim*: ``{"ok": true, "spec", "sources"}``
or ``{"ok": false, "kind", "message", "location", "details"}`` (a
:class:`~reconciler.runtime.records.ProgramError` as data). The parent parses the spec
again, validates and compiles it itself (:mod:`.verdict`); ``sources`` only says where
each finding is in the user's files. Paths are relative to the checkout, so ``mesh.py:12``
reads the same everywhere. ``kind`` is a
:class:`~reconciler.runtime.records.FailureKind`: ``syntax``, ``exception``, ``timeout``,
``memory`` or ``invalid``.

The worker waits for the child to *exit*, not for its pipes to close: a process the
program left running cannot hold the run open (the sandbox's PID namespace ends it).

A program that loops is interrupted by ``SIGALRM`` after the job's timeout *inside* its own
code, so the error names the line it was stuck on; the sandbox's wall-clock kill is only
the backstop for code that never returns to the interpreter.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from reconciler.runtime.records import FailureKind, ProgramError

if TYPE_CHECKING:
    from reconciler.runtime.loader import Loaded

__all__ = ["main", "run"]

_STDERR_KEEP = 8000
MAX_RESULT = 16 << 20     # bytes of result JSON the worker accepts from the program
NPROC = 64
NOFILE = 256
FSIZE = 16 << 20


class ProgramTimeout(BaseException):
    """Raised into the user's code by SIGALRM; a BaseException so ``except Exception`` in
    the program does not swallow it."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise ProgramTimeout()


def _rel(text: str, roots: list[str]) -> str:
    for root in roots:
        text = text.replace(root + os.sep, "")
    return text


def _user_location(tb: TracebackType | None, roots: list[str]) -> str | None:
    """file:line of the innermost frame inside the checkout."""
    found = None
    for frame in traceback.extract_tb(tb):
        path = os.path.abspath(frame.filename)
        if any(path.startswith(root + os.sep) for root in roots):
            found = f"{_rel(path, roots)}:{frame.lineno}"
    return found


def _failure(error: ProgramError, roots: list[str]) -> dict[str, Any]:
    """The claim of a failed run: the error as data, its paths relative to the checkout."""
    return {"ok": False, "kind": error.kind.value, "message": _rel(error.message, roots),
            "location": _rel(error.location, roots) if error.location else None,
            "details": [_rel(d, roots) for d in error.details][:30]}


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Load, validate and compile one program; never raises (except on interpreter exit)."""
    from meshdsl.model.base import bulk_build

    with bulk_build():
        return _run(job)


def _load(job: dict[str, Any], roots: list[str]) -> Loaded:
    """The job's program loaded, or a :class:`ProgramError` saying how it failed."""
    from reconciler.runtime.loader import load

    checkout = Path(job["checkout"])
    program, _, attr = str(job["program"]).partition(":")
    path = (checkout / program).resolve()
    if not any(str(path).startswith(root + os.sep) for root in roots):
        raise ProgramError(f"{program} is outside the repository", kind=FailureKind.INVALID)
    if not path.is_file():
        raise ProgramError(f"{program} does not exist in this revision",
                           kind=FailureKind.INVALID)
    os.chdir(checkout)
    timeout = float(job.get("timeout") or 0)
    stuck = (f"{program} did not finish within {timeout:g} s (an endless loop?); it was "
             "interrupted here")
    if timeout > 0:
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        try:
            return load(f"{path}:{attr}" if attr else str(path))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except ProgramError as exc:
        if isinstance(exc.__cause__, ProgramTimeout):
            raise ProgramError(stuck, kind=FailureKind.TIMEOUT, location=exc.location,
                               details=exc.details) from exc
        raise
    except ProgramTimeout as exc:
        raise ProgramError(stuck, kind=FailureKind.TIMEOUT,
                           location=_user_location(exc.__traceback__, roots)) from exc
    except MemoryError as exc:
        raise ProgramError(f"{program} ran out of memory (limit "
                           f"{job.get('memory_mb', '?')} MiB)", kind=FailureKind.MEMORY,
                           location=_user_location(exc.__traceback__, roots)) from exc


def _run(job: dict[str, Any]) -> dict[str, Any]:
    from meshdsl.validate import validate

    checkout = Path(job["checkout"])
    roots = sorted({str(checkout), os.path.realpath(checkout)}, key=len, reverse=True)
    try:
        loaded = _load(job, roots)
    except ProgramError as exc:
        return _failure(exc, roots)
    findings = validate(loaded.spec)
    # Errors included: the parent validates again and decides. The spec is all the parent reads: it parses, validates and compiles it again itself.
    # The findings carry only where each one is in the user's files (for display).
    # ``declared``: where each declared object is, so checks the parent runs later (the
    # CRD check) point at the user's lines too.
    from meshdsl.model.base import declared_sources

    return {"ok": True, "spec": loaded.spec.model_dump(mode="json"),
            "sources": [[f.code, f.path, _rel(f.source.file, roots), f.source.line]
                        for f in findings if f.source is not None],
            "declared": [[list(path), _rel(loc.file, roots), loc.line]
                         for path, loc in declared_sources(loaded.spec)]}


def _setrlimit(which: int, value: int) -> None:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(which, (value, value))


def _limit_memory(megabytes: int) -> None:
    if megabytes > 0:
        _setrlimit(resource.RLIMIT_AS, megabytes << 20)
    _setrlimit(resource.RLIMIT_CORE, 0)


def _limit_cpu(seconds: float) -> None:
    """``seconds`` more CPU time from now (what the process used before does not count)."""
    if seconds <= 0:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    soft = used + int(seconds)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 2))


def limit_worker(*, memory_mb: int) -> None:
    """Limits for this process and everything it starts: processes, open files, file size,
    no core dumps, and memory (the program's budget plus room for the result it returns).
    Not ptrace-able or readable through ``/proc`` by the program it forks."""
    _setrlimit(resource.RLIMIT_NPROC, NPROC)
    _setrlimit(resource.RLIMIT_NOFILE, NOFILE)
    _setrlimit(resource.RLIMIT_FSIZE, FSIZE)
    _limit_memory(memory_mb + (MAX_RESULT >> 20) * 3 + 256 if memory_mb > 0 else 0)
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)   # PR_SET_DUMPABLE, 0


def _child(job: dict[str, Any], result_w: int, stderr_w: int, *, memory_mb: int,
           cpu: float) -> None:
    """In the forked child: limits, then the program; never returns."""
    code = 0
    try:
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(stderr_w, 1)       # the program's prints go to stderr, never the result
        os.dup2(stderr_w, 2)
        _limit_memory(memory_mb)
        _limit_cpu(cpu)
        job.setdefault("memory_mb", memory_mb)
        result = run(job)
        with os.fdopen(result_w, "w", encoding="utf-8") as out:
            json.dump(result, out, separators=(",", ":"))
    except BaseException:
        code = 70
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)   # no interpreter teardown: the result is written


def _drain(pid: int, result_r: int, stderr_r: int) -> tuple[bytes | None, bytes, int]:
    """Read the child's result and stderr until the child exits — not until the pipes
    close: a process it left behind may hold them open. The result is bounded
    (:data:`MAX_RESULT`; ``None`` when over it, and the child is killed), stderr keeps its
    tail. Returns (result, stderr tail, exit code)."""
    result = bytearray()
    tail = b""
    pidfd = os.pidfd_open(pid)
    for fd in (result_r, stderr_r):
        os.set_blocking(fd, False)
    watched = [result_r, stderr_r, pidfd]
    flooded = False
    while pidfd in watched:
        readable, _, _ = select.select(watched, [], [])
        for fd in readable:
            if fd == pidfd:
                watched.remove(pidfd)
                continue
            data = _read(fd)
            if not data:
                watched.remove(fd)
            elif fd == stderr_r:
                tail = (tail + data)[-_STDERR_KEEP:]
            elif not flooded:
                result += data
                if len(result) > MAX_RESULT:
                    flooded = True
                    with contextlib.suppress(OSError):
                        os.killpg(pid, signal.SIGKILL)
    for fd in (result_r, stderr_r):      # what the child wrote before it exited
        while not flooded and (data := _read(fd)):
            if fd == stderr_r:
                tail = (tail + data)[-_STDERR_KEEP:]
            else:
                result += data
                flooded = len(result) > MAX_RESULT
    os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)   # what it left in its group
    return (None if flooded else bytes(result)), tail, os.waitstatus_to_exitcode(status)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return b""


def _serve(*, memory_mb: int, cpu: float) -> int:
    """Import meshdsl, say ``ready``, run the one job read from stdin, report, exit."""
    import meshdsl.compile
    import meshdsl.validate  # noqa: F401
    import reconciler.runtime.loader  # noqa: F401

    limit_worker(memory_mb=memory_mb)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    line = sys.stdin.buffer.readline(1 << 16)
    if not line.strip():
        return 0
    job = json.loads(line)
    result_r, result_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(result_r)
        os.close(stderr_r)
        os.close(1)              # the channel to the parent: never the program's
        _child(job, result_w, stderr_w, memory_mb=memory_mb, cpu=cpu)
    os.close(result_w)
    os.close(stderr_w)
    out.write(json.dumps({"started": pid}) + "\n")
    out.flush()
    result, stderr, code = _drain(pid, result_r, stderr_r)
    # a header line, then the result's bytes as they are (the parent bounds and parses them)
    out.write(json.dumps({"done": code, "flooded": result is None,
                          "size": len(result or b""),
                          "stderr": stderr.decode(errors="replace")}) + "\n")
    out.flush()
    out.buffer.write(result or b"")
    out.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    memory_mb, cpu = 0, 0.0
    serve = False
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag == "--serve":
            serve = True
        elif flag == "--memory-mb":
            memory_mb = int(args.pop(0))
        elif flag == "--cpu-seconds":
            cpu = float(args.pop(0))
        else:
            print(f"compile_worker: unknown flag {flag}", file=sys.stderr)
            return 2
    if serve:
        return _serve(memory_mb=memory_mb, cpu=cpu)
    if len(args) != 2:
        print("usage: python -m reconciler.runtime.compile_worker [--serve] "
              "[--memory-mb N] [--cpu-seconds S] [CHECKOUT PROGRAM]", file=sys.stderr)
        return 2
    _limit_memory(memory_mb)
    _limit_cpu(cpu)
    print(json.dumps(run({"checkout": args[0], "program": args[1],
                          "memory_mb": memory_mb}), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

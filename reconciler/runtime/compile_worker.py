"""The process that runs a user's mesh program (started by :mod:`.sandbox`, never by hand).

``python -m reconciler.runtime.compile_worker [--memory-mb N] CHECKOUT PROGRAM`` loads the
program, validates and compiles it, and writes one JSON document to its *original* stdout;
whatever the program prints goes to stderr instead, so it cannot corrupt the result. With
``--serve`` it first imports meshdsl (the slow part) and then waits for one job as a JSON
line on stdin (after announcing ``ready`` on stdout) — the sandbox keeps one such warm
worker ready, so a push does not pay for the imports. Either way one process runs one program and exits.

The result is ``{"ok": true, "mesh", "manifests", "warnings", "spec"?}`` or ``{"ok": false,
"kind", "message", "location", "details"}``; every path in it is relative to the checkout,
so ``mesh.py:12`` reads the same on every machine. ``kind`` is one of ``syntax``,
``exception``, ``timeout``, ``memory``, ``validation``, ``compile``, ``invalid``.

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
from typing import Any

__all__ = ["main", "run"]

_STDERR_KEEP = 8000


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


def _failure(kind: str, message: str, roots: list[str], *, location: str | None = None,
             details: list[str] | None = None) -> dict[str, Any]:
    return {"ok": False, "kind": kind, "message": _rel(message, roots),
            "location": _rel(location, roots) if location else None,
            "details": [_rel(d, roots) for d in (details or [])][:30]}


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Load, validate and compile one program; never raises (except on interpreter exit)."""
    from meshdsl.model.base import bulk_build

    with bulk_build():
        return _run(job)


def _run(job: dict[str, Any]) -> dict[str, Any]:
    from meshdsl.compile import compile_mesh
    from meshdsl.validate import Severity, validate
    from reconciler.runtime.loader import ProgramError, load

    checkout = Path(job["checkout"])
    roots = sorted({str(checkout), os.path.realpath(checkout)}, key=len, reverse=True)
    program, _, attr = str(job["program"]).partition(":")
    path = (checkout / program).resolve()
    if not any(str(path).startswith(root + os.sep) for root in roots):
        return _failure("invalid", f"{program} is outside the repository", roots)
    if not path.is_file():
        return _failure("invalid", f"{program} does not exist in this revision", roots)
    os.chdir(checkout)
    timeout = float(job.get("timeout") or 0)
    if timeout > 0:
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        try:
            loaded = load(f"{path}:{attr}" if attr else str(path))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except ProgramError as exc:
        cause = exc.__cause__
        if isinstance(cause, ProgramTimeout):
            return _failure("timeout", f"{program} did not finish within {timeout:g} s "
                            "(an endless loop?); it was interrupted here", roots,
                            location=exc.location, details=exc.frames)
        kind = ("syntax" if isinstance(cause, SyntaxError) else
                "memory" if isinstance(cause, MemoryError) else
                "exception" if cause is not None else "invalid")
        return _failure(kind, exc.message, roots, location=exc.location, details=exc.frames)
    except ProgramTimeout as exc:
        return _failure("timeout", f"{program} did not finish within {timeout:g} s (an "
                        "endless loop?); it was interrupted here", roots,
                        location=_user_location(exc.__traceback__, roots))
    except MemoryError as exc:
        return _failure("memory", f"{program} ran out of memory (limit "
                        f"{job.get('memory_mb', '?')} MiB)", roots,
                        location=_user_location(exc.__traceback__, roots))
    findings = validate(loaded.spec)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        return _failure("validation", f"{len(errors)} validation error(s); nothing applied",
                        roots, location=str(errors[0].source) if errors[0].source else None,
                        details=[str(f) for f in errors])
    try:
        manifests = compile_mesh(loaded.spec)
    except Exception as exc:  # a compiler bug, reported as such
        return _failure("compile", f"compiling {program} failed: {type(exc).__name__}: {exc}",
                        roots)
    result: dict[str, Any] = {
        "ok": True, "mesh": loaded.spec.name, "manifests": manifests,
        "warnings": [_rel(str(f), roots) for f in findings if f.severity is not Severity.ERROR],
    }
    if job.get("spec"):
        result["spec"] = loaded.spec.model_dump(mode="json")
    return result


def _limit_memory(megabytes: int) -> None:
    if megabytes > 0:
        limit = megabytes << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _limit_cpu(seconds: float) -> None:
    """``seconds`` more CPU time from now (what the process used before does not count)."""
    if seconds <= 0:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    soft = used + int(seconds)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 2))


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


def _drain(result_r: int, stderr_r: int) -> tuple[bytes, bytes]:
    """Read the child's result and stderr pipes to EOF (both, so neither fills up)."""
    chunks: dict[int, list[bytes]] = {result_r: [], stderr_r: []}
    sizes = {result_r: 0, stderr_r: 0}
    open_fds = [result_r, stderr_r]
    while open_fds:
        readable, _, _ = select.select(open_fds, [], [])
        for fd in readable:
            data = os.read(fd, 65536)
            if not data:
                open_fds.remove(fd)
                continue
            sizes[fd] += len(data)
            if fd == stderr_r and sizes[fd] > _STDERR_KEEP * 4:
                chunks[fd] = [b"".join(chunks[fd])[-_STDERR_KEEP:]]
            chunks[fd].append(data)
    return b"".join(chunks[result_r]), b"".join(chunks[stderr_r])[-_STDERR_KEEP:]


def _serve(*, memory_mb: int, cpu: float) -> int:
    import meshdsl.compile
    import meshdsl.validate  # noqa: F401
    import reconciler.runtime.loader  # noqa: F401

    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        result_r, result_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(result_r)
            os.close(stderr_r)
            _child(job, result_w, stderr_w, memory_mb=memory_mb, cpu=cpu)
        os.close(result_w)
        os.close(stderr_w)
        out.write(json.dumps({"started": pid}) + "\n")
        out.flush()
        result, stderr = _drain(result_r, stderr_r)
        os.close(result_r)
        os.close(stderr_r)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        try:
            decoded: Any = json.loads(result) if result.strip() else None
        except ValueError:
            decoded = None
        out.write(json.dumps({"done": code, "result": decoded,
                              "stderr": stderr.decode(errors="replace")}) + "\n")
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

"""Waiting for a child to be ready, and stopping it.

Every long-running child (Envoy, an app, Prometheus, etcd, kube-apiserver, a demo app)
goes through the same two steps: poll a readiness check until it passes — failing at once
when the child exits instead of waiting out the deadline — and, at the end, SIGTERM then
SIGKILL after a grace period, reaping it so no zombie is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["ChildExited", "Closeable", "Component", "NeverReady", "NotReady", "in_parallel",
           "log_tail", "terminate", "wait_ready"]


class NeverReady(Exception):
    """The child did not become ready: it exited (:class:`ChildExited`) or the deadline
    passed (:class:`NotReady`)."""


class NotReady(NeverReady, TimeoutError):
    """The readiness check did not pass within the deadline."""


class ChildExited(NeverReady, RuntimeError):
    """The child exited while we waited for it to become ready."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def wait_ready(ready: Callable[[], bool], *, timeout: float, what: str,
               process: subprocess.Popen[bytes] | None = None,
               interval: float = 0.05) -> None:
    """Poll ``ready()`` until it returns True. Raises :class:`ChildExited` as soon as
    ``process`` exits and :class:`NotReady` after ``timeout`` seconds; ``what`` names the
    child in both messages."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and (code := process.poll()) is not None:
            raise ChildExited(f"{what} exited with code {code} before it was ready", code)
        if ready():
            return
        if time.monotonic() >= deadline:
            raise NotReady(f"{what} not ready after {timeout:.0f}s")
        time.sleep(interval)


def terminate(process: subprocess.Popen[bytes] | None, timeout: float = 10.0, *,
              group: bool = False) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit code (None: no process).

    ``group``: signal the child's whole process group (a child started with
    ``start_new_session=True``), and SIGKILL whatever it left behind."""
    if process is None:
        return None

    def send(sig: signal.Signals) -> None:
        if group:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
        else:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)

    if process.poll() is None:
        send(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
            process.wait(timeout=timeout)
    if group:
        send(signal.SIGKILL)
    return process.returncode


def in_parallel(calls: Iterable[Callable[[], object]], *, workers: int = 8) -> None:
    """Run ``calls`` concurrently (starting and stopping children is mostly waiting), at
    most ``workers`` at a time; the first error is raised after all have run."""
    todo = list(calls)
    if not todo:
        return
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
        futures = [pool.submit(call) for call in todo]
    for future in futures:
        future.result()


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` of a child's log, headed by its path (for error messages)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    kept = text.splitlines()[-lines:]
    return f"--- last lines of {path} ---\n" + "\n".join(kept)


class Component:
    """A thing with a ``start()`` and a ``stop()`` (a process, or several): used as a
    context manager, entering starts it and leaving stops it. ``stop()`` must be safe to
    call at any point, so :meth:`stopping_on_error` can undo a start that failed half way."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

    @contextlib.contextmanager
    def stopping_on_error(self) -> Iterator[None]:
        """Run the block; if it raises (Ctrl-C included), stop everything, then re-raise."""
        try:
            yield
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class Closeable:
    """A thing with a ``close()`` (a client, a cache of connections): used as a context
    manager, entering gives it as it is and leaving closes it. Unlike a
    :class:`Component`, it is ready when built."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

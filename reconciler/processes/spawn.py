"""Child processes that die with this one: the local mesh's Envoys and apps, and the
real components tests start (etcd, kube-apiserver, Prometheus, demo apps).

A reconciler killed by SIGKILL cannot stop its children; without help they would keep
running — and a restarted reconciler would find the old mesh still holding the gateway's
port (Envoy binds with SO_REUSEPORT, so both would answer, the old one with stale routes).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["spawn"]


def _death_signal_preexec() -> Callable[[], None] | None:
    """A preexec_fn arming PR_SET_PDEATHSIG (Linux): the child gets SIGTERM when the thread
    that forked it exits — and exits itself if this process died before it was armed."""
    if not sys.platform.startswith("linux"):
        return None
    with contextlib.suppress(OSError, AttributeError):
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        pr_set_pdeathsig = 1
        parent = os.getpid()

        def preexec() -> None:
            prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
            if os.getppid() != parent:  # the parent died between fork and prctl
                os.kill(os.getpid(), signal.SIGTERM)

        return preexec
    return None


_spawner: concurrent.futures.ThreadPoolExecutor | None = None
_spawner_guard = threading.Lock()


def spawn(command: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen`` whose child is SIGTERMed when this process dies, even by
    SIGKILL, whichever thread calls it.

    PR_SET_PDEATHSIG fires when the *forking thread* exits, so a child forked from a
    short-lived thread (a pool worker of the reconcile loop) would be killed early or, when
    the signal is not armed, orphaned by a crash — and a restarted reconciler would find
    the old mesh still holding its ports. Children forked off the main thread are forked by
    one long-lived spawner thread instead, which lives as long as the process."""
    preexec = _death_signal_preexec()
    if preexec is None or threading.current_thread() is threading.main_thread():
        return subprocess.Popen(list(command), preexec_fn=preexec, **popen)
    global _spawner
    with _spawner_guard:
        if _spawner is None:
            _spawner = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="meshdsl-spawner")
        pool = _spawner
    return pool.submit(lambda: subprocess.Popen(list(command), preexec_fn=preexec,
                                                **popen)).result()

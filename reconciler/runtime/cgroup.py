"""A pids cgroup per sandbox: a bound on processes that holds even for root.

``RLIMIT_NPROC`` is not enforced for processes whose user is root outside their user
namespace — which is what a sandbox started by a root reconciler is. So when the pids
controller is writable (cgroup v2 with delegation, or v1's ``pids`` hierarchy), each
sandbox gets a child cgroup with ``pids.max`` set, and ending the sandbox kills everything
in it. Where it is not writable this is a no-op and the rlimit is the only bound (enough
for a reconciler that does not run as root, as ``meshctl install`` runs it).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from pathlib import Path

__all__ = ["PidsCgroup"]

_ROOT = Path("/sys/fs/cgroup")
_counter = itertools.count()


def _own(controller: str) -> Path | None:
    """This process's cgroup directory for ``controller`` (v1) or the unified one (v2)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return _ROOT / controller / path.lstrip("/")
    if (_ROOT / "cgroup.controllers").exists():
        for line in lines:
            if line.startswith("0::"):
                return _ROOT / line[3:].lstrip("/")
    return None


class PidsCgroup:
    """A child pids cgroup with ``pids.max``; :meth:`adopt` moves a process tree in."""

    def __init__(self, limit: int) -> None:
        self.path: Path | None = None
        parent = _own("pids")
        if parent is None:
            return
        path = parent / f"meshdsl-sandbox-{os.getpid()}-{next(_counter)}"
        try:
            path.mkdir()
            (path / "pids.max").write_text(f"{limit}\n")
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            return
        self.path = path

    def adopt(self, root_pid: int) -> None:
        """Move ``root_pid`` and its descendants in (call before they run untrusted code)."""
        if self.path is None:
            return
        for pid in _tree(root_pid):
            with contextlib.suppress(OSError):
                (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def kill(self) -> None:
        """SIGKILL every process in the cgroup, then remove it."""
        if self.path is None:
            return
        with contextlib.suppress(OSError):
            (self.path / "cgroup.kill").write_text("1\n")
        for _ in range(50):
            try:
                pids = [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
            except OSError:
                break
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            self.path.rmdir()
        self.path = None


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found

"""Children of the local mesh die with the process that started them, from any thread.

A reconciler killed with SIGKILL must not leave its Envoys and apps running: a restarted
one would find the old mesh still holding the gateway's port (Envoy binds with
SO_REUSEPORT, so both would answer and the old one would serve stale routes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

PARENT = r"""
import sys, threading, time
from reconciler.processes.spawn import spawn
pids = []
def start():
    pids.append(spawn([sys.executable, "-c", "import time; time.sleep(120)"]).pid)
worker = threading.Thread(target=start)
worker.start()
worker.join()                    # the forking thread is gone before the parent dies
print(pids[0], flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:   # a zombie waiting for init counts as dead
        return stat.read().split(")")[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_a_child_spawned_off_the_main_thread_dies_when_the_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        time.sleep(0.5)
        assert _alive(child), "the child must outlive the thread that asked for it"
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the child survived its parent's SIGKILL"
    finally:
        parent.kill()
        parent.wait(timeout=10)

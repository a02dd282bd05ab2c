"""``scripts/local-apiserver up | down | status``: one detached local API server per machine.

``up`` starts :class:`~reconciler.testing.apiserver.LocalApiServer` detached (it outlives
this command), installs the CRDs (Istio's and Gateway API's by default; ``--crds PATH``,
repeatable, or ``$MESHDSL_SHARED_DIR`` from any checkout) and prints the kubeconfig path;
its pids are kept in a state file so ``down`` and ``status`` find it again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from reconciler.testing.apiserver import READY_TIMEOUT, STOP_TIMEOUT, LocalApiServer
from reconciler.testing.components import (
    K8S_VERSION,
    LocalApiServerError,
    default_crd_files,
    state_dir,
    write_private,
)

__all__ = ["main"]


def _pid_running(pid: int, executable: str | None = None) -> bool:
    """True when ``pid`` is alive (not a zombie) and, if given, runs ``executable``."""
    proc = Path("/proc") / str(pid)
    if proc.parent.is_dir():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
            return False
        return executable is None or os.fsdecode(cmdline[0]) == executable
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate_pid(pid: int, executable: str | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout``, a process that is not our child."""
    if not _pid_running(pid, executable):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_running(pid, executable):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and _pid_running(pid, executable):
        time.sleep(0.1)


# --- command line: local-apiserver up | down | status -------------------------------------------


def _state_file() -> Path:
    return state_dir() / "state.json"


def _read_state() -> dict[str, Any] | None:
    try:
        data = json.loads(_state_file().read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        print(f"local-apiserver: ignoring unreadable {_state_file()}: {err}", file=sys.stderr)
        return None
    return data if isinstance(data, dict) else None


def _processes(state: dict[str, Any]) -> Iterator[tuple[str, int, str | None]]:
    processes = state.get("processes", {})
    if not isinstance(processes, dict):
        return
    for name in ("kube-apiserver", "etcd"):  # stop order
        entry = processes.get(name)
        if isinstance(entry, dict) and isinstance(entry.get("pid"), int):
            exe = entry.get("exe")
            yield name, int(entry["pid"]), str(exe) if exe else None


def _state_running(state: dict[str, Any]) -> bool:
    procs = list(_processes(state))
    return bool(procs) and all(_pid_running(pid, exe) for _, pid, exe in procs)


def _stop_state(state: dict[str, Any], timeout: float = STOP_TIMEOUT) -> None:
    for _, pid, exe in _processes(state):
        _terminate_pid(pid, exe, timeout)
    workdir = state.get("workdir")
    if isinstance(workdir, str) and workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        _state_file().unlink()


def _cmd_up(args: argparse.Namespace) -> int:
    state = _read_state()
    if state is not None:
        if _state_running(state):
            print(f"local-apiserver: already running at {state.get('url')}", file=sys.stderr)
            print(state["kubeconfig"])
            return 0
        print("local-apiserver: cleaning up a stale previous run", file=sys.stderr)
        _stop_state(state)
    if not args.no_crds:
        for crds in args.crds or default_crd_files():
            if not crds.is_file():
                raise LocalApiServerError(
                    f"CRD file not found: {crds} (give --crds PATH, set MESHDSL_SHARED_DIR to "
                    "the directory holding istio/ and gateway-api/, or use --no-crds)")
    run_dir = state_dir() / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    state_dir().mkdir(parents=True, exist_ok=True)
    server = LocalApiServer(
        workdir=run_dir, keep_workdir=True, detached=True, ready_timeout=args.timeout
    )
    started = time.monotonic()
    try:
        server.start()
        print(f"local-apiserver: API server ready at {server.url}", file=sys.stderr)
        if not args.no_crds:
            names = server.install_crds(args.crds or None, timeout=args.timeout)
            print(f"local-apiserver: {len(names)} CRDs established", file=sys.stderr)
        tmp = _state_file().with_suffix(".tmp")
        write_private(tmp, json.dumps(server.state(), indent=2) + "\n")
        tmp.replace(_state_file())
    except BaseException:
        server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    print(
        f"local-apiserver: up in {time.monotonic() - started:.1f} s (pids {server.pids}); "
        f"kubectl {K8S_VERSION}: {server.kubectl}",
        file=sys.stderr,
    )
    print(server.kubeconfig)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    state = _read_state()
    if state is None:
        print("local-apiserver: not running", file=sys.stderr)
        return 0
    _stop_state(state, timeout=args.timeout)
    print("local-apiserver: stopped", file=sys.stderr)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    state = _read_state()
    running = state is not None and _state_running(state)
    if args.json:
        print(json.dumps({"running": running, **(state or {})}, indent=2))
    elif state is None:
        print("not running")
    elif running:
        procs = ", ".join(f"{name}={pid}" for name, pid, _ in _processes(state))
        print(f"running: {state.get('url')} ({procs})")
        print(f"kubeconfig: {state.get('kubeconfig')}")
        print(f"kubectl: {state.get('kubectl')}")
    else:
        print("not running (stale state; `down` cleans it up)")
    return 0 if running else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="local-apiserver",
        description=f"A real local kube-apiserver {K8S_VERSION} + etcd on 127.0.0.1.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start detached, install Istio CRDs, print kubeconfig path")
    up.add_argument(
        "--crds", type=Path, action="append", default=None, metavar="PATH",
        help="a CRD YAML file, repeatable (default: Istio's bundle and Gateway API's standard "
        "channel from $MESHDSL_SHARED_DIR, else ../shared beside the checkout)")
    up.add_argument("--no-crds", action="store_true", help="do not install any CRDs")
    up.add_argument("--timeout", type=float, default=READY_TIMEOUT, help="readiness timeout, s")
    up.set_defaults(func=_cmd_up)
    down = sub.add_parser("down", help="stop the server started by `up`")
    down.add_argument("--timeout", type=float, default=STOP_TIMEOUT, help="SIGKILL after, s")
    down.set_defaults(func=_cmd_down)
    status = sub.add_parser("status", help="exit 0 when running, 1 otherwise")
    status.add_argument("--json", action="store_true", help="print the state as JSON")
    status.set_defaults(func=_cmd_status)
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except LocalApiServerError as err:
        print(f"local-apiserver: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

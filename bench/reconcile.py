"""Benchmark: from ``git push`` to the change being live, through ``meshctl reconcile``.

Three runs, each over N pushes of a one-line change (a new weight split):

- **kube, webhook**: ``meshctl reconcile --target kube`` (a subprocess, as users run it)
  against a real local kube-apiserver 1.20.2; a bare repository's ``post-receive`` hook
  (``scripts/post-receive``) signs and POSTs the push. *Live* = the VirtualService read
  back from the API server carries the new weights (checked every 5 ms).
- **kube, polling**: the same with the webhook off, polling at the default interval
  (``--interval``, 60 s). Each push waits a random part of an interval first, so pushes
  land at random phases of the poll timer.
- **local, webhook**: the reconciler (in-process here, to reach the mesh's addresses)
  drives the local Envoy mesh; *live* = a request through the client's sidecar is served
  by the new version.

Latency is measured from ``git push`` *returning* (what a user waits for; the hook has
already notified the reconciler by then, as on a real Git server) and, more
conservatively, from starting the push.

Run: .venv/bin/python bench/reconcile.py [--pushes 20] [--poll-pushes 20]
     [--poll-interval 60] [--skip-poll] [--skip-local]
Results go to bench/RESULTS.md (section "reconcile").
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.machine import describe, write_section
from meshdsl.compile.manifest import ResourceKey
from reconciler.processes.lifecycle import terminate
from reconciler.processes.ports import free_port
from reconciler.runtime.status import ClusterStore
from reconciler.targets.kube import KubeTarget
from reconciler.testing.apiserver import LocalApiServer
from reconciler.testing.gitops import GitServer, mesh_program
from reconciler.testing.local_gitops import LocalGitOps, local_program

SECRET = b"bench-secret"
MESHCTL = str(Path(sys.executable).parent / "meshctl")
NET = "networking.istio.io"


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.005) -> float:
    """Poll ``check``; returns the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> str:
    return (f"p50 {statistics.median(values) * 1000:.0f} ms, p99 "
            f"{percentile(values, 99) * 1000:.0f} ms, min {min(values) * 1000:.0f} ms, "
            f"max {max(values) * 1000:.0f} ms")


class Run:
    def __init__(self, name: str) -> None:
        self.name = name
        self.after_push: list[float] = []     # push returned → live
        self.whole: list[float] = []          # push started → live
        self.push_time: list[float] = []      # the git push itself


def start_cli(api: LocalApiServer, repo: Path, name: str, port: int, cache: Path,
              interval: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MESHDSL_WEBHOOK_SECRET": SECRET.decode()}
    with log.open("ab") as out:
        return subprocess.Popen(
            [MESHCTL, "reconcile", "--repo", str(repo), "--name", name,
             "--kubeconfig", str(api.kubeconfig), "--listen", f"127.0.0.1:{port}",
             "--cache-dir", str(cache), "--interval", interval, "--drift-interval", "0"],
            stdout=out, stderr=out, env=env)


def kube_run(api: LocalApiServer, root: Path, *, pushes: int, webhook: bool,
             poll_interval: float) -> Run:
    name = f"bench-{'webhook' if webhook else 'poll'}"
    port = free_port()
    git = GitServer(root / name, webhook_url=f"http://127.0.0.1:{port}/webhook"
                    if webhook else None, secret=SECRET)
    admin = KubeTarget.from_kubeconfig(str(api.kubeconfig))
    reader = ClusterStore(admin, name)
    first = git.push({"mesh.py": mesh_program(name, name, weights=(100, 0))}, "start")
    interval = "0" if webhook else f"{poll_interval:g}s"
    proc = start_cli(api, git.origin, name, port, root / f"{name}-cache", interval,
                     root / f"{name}.log")
    run = Run(name)
    try:
        wait_until(lambda: (s := reader.load_status()) is not None
                   and s.applied_revision == first, 120, "the first apply", 0.1)
        for i in range(1, pushes + 1):
            if not webhook:
                time.sleep(random.uniform(0, poll_interval))
            weights = (100 - i, i)

            def live(weights: tuple[int, int] = weights) -> bool:
                vs = admin.get(ResourceKey(NET, "VirtualService", name, "web"))
                route = (vs or {}).get("spec", {}).get("http", [{}])[-1].get("route", [])
                return tuple(r.get("weight") for r in route) == weights

            started = time.monotonic()
            git.push({"mesh.py": mesh_program(name, name, weights=weights)}, f"push {i}")
            returned = time.monotonic()
            done = wait_until(live, poll_interval * 2 + 60, f"push {i} live")
            run.after_push.append(max(0.0, done - returned))
            run.whole.append(done - started)
            run.push_time.append(returned - started)
            print(f"  {name} push {i}: {run.after_push[-1] * 1000:.0f} ms after the push "
                  f"returned ({(returned - started) * 1000:.0f} ms push)", flush=True)
            time.sleep(0.3)
    finally:
        terminate(proc, 20)
    return run


def local_run(root: Path, *, pushes: int) -> Run:
    rig = LocalGitOps(root / "local", name="bench-local", program_timeout=10).start()
    run = Run("local-webhook")
    try:
        first = rig.git.push({"mesh.py": local_program("benchlocal", "v1")}, "start")
        wait_until(lambda: rig.applied(first), 120, "the local mesh", 0.1)
        url = rig.local.outbound_url("client", "reviews")
        with httpx.Client(timeout=5, trust_env=False) as client:
            for i in range(1, pushes + 1):
                version = "v2" if i % 2 else "v1"

                def serving(version: str = version) -> bool:
                    try:
                        response = client.get(url)
                    except httpx.HTTPError:
                        return False
                    return bool(response.headers.get("x-served-by") == f"reviews-{version}")

                time.sleep(1.5)   # let the sandbox's next warm worker finish starting
                started = time.monotonic()
                rig.git.push({"mesh.py": local_program("benchlocal", version)}, f"push {i}")
                returned = time.monotonic()
                done = wait_until(serving, 60, f"push {i} served")
                run.after_push.append(max(0.0, done - returned))
                run.whole.append(done - started)
                run.push_time.append(returned - started)
                print(f"  local push {i}: {run.after_push[-1] * 1000:.0f} ms after the push "
                      "returned", flush=True)
    finally:
        rig.stop()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pushes", type=int, default=20)
    parser.add_argument("--poll-pushes", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=60.0,
                        help="seconds (meshctl reconcile's default --interval is 60s)")
    parser.add_argument("--skip-poll", action="store_true")
    parser.add_argument("--skip-local", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
        root = Path(tmp)
        with LocalApiServer() as api:
            api.install_crds()
            print("kube target, webhook:", flush=True)
            runs.append(kube_run(api, root, pushes=args.pushes, webhook=True,
                                 poll_interval=args.poll_interval))
            if not args.skip_poll:
                print(f"kube target, polling every {args.poll_interval:g} s:", flush=True)
                runs.append(kube_run(api, root, pushes=args.poll_pushes, webhook=False,
                                     poll_interval=args.poll_interval))
        if not args.skip_local:
            print("local target, webhook:", flush=True)
            runs.append(local_run(root, pushes=args.pushes))
    load_after = os.getloadavg()[0]

    rows = []
    verdicts = []
    for run in runs:
        target = 1.5 if run.name.startswith("local") else 1.0
        p50 = statistics.median(run.after_push)
        label = {"bench-webhook": "kube, webhook", "bench-poll":
                 f"kube, polling every {args.poll_interval:g} s",
                 "local-webhook": "local Envoy mesh, webhook"}[run.name]
        rows.append(f"| {label} | {len(run.after_push)} | **{p50 * 1000:.0f} ms** | "
                    f"{percentile(run.after_push, 99) * 1000:.0f} ms | "
                    f"{statistics.median(run.whole) * 1000:.0f} ms | "
                    f"{percentile(run.whole, 99) * 1000:.0f} ms | "
                    f"{statistics.median(run.push_time) * 1000:.0f} ms |")
        if "polling" not in label:
            verdicts.append(f"{label}: p50 {p50 * 1000:.0f} ms vs target < {target:g} s — "
                            f"{'met' if p50 < target else 'MISSED'}")
    body = f"""{describe()}
Load average (1 min) before/after: {load_before:.2f}/{load_after:.2f} — the machine is shared.

**Push → live**: a one-line change (a new weight split) committed and pushed to a bare
repository; *live* means the kube-apiserver returns the new VirtualService (kube target,
`meshctl reconcile` as a subprocess, status in ConfigMaps, leader election on) or a request
through the client's Envoy sidecar is served by the new version (local target).

| mode | pushes | p50 after `git push` returned | p99 | p50 from push start | p99 | `git push` itself (incl. hook) |
|---|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

Targets: {"; ".join(verdicts)}.
For comparison, Argo CD polls Git every 3 min by default and Flux recommends intervals of
1 min or more: with polling alone the expected delay is half the interval plus the apply
(as measured above); the webhook removes it.

Run: `.venv/bin/python bench/reconcile.py --pushes {args.pushes} --poll-pushes {args.poll_pushes} --poll-interval {args.poll_interval:g}`
"""
    write_section("reconcile", body)
    print(body)


if __name__ == "__main__":
    main()

"""Soak benchmark: a storm of pushes at one `meshctl reconcile --target kube` process.

N pushes (default 1,000) to a mesh of S services (default 300), each a one-service change
(a new weight split for ``web``), pushed as fast as ``git push`` returns; the bare
repository's ``post-receive`` hook signs and POSTs every push to the reconciler's webhook.
The reconciler is a subprocess, as users run it (status in ConfigMaps, drift checks every
``--drift-interval``), against a real local kube-apiserver 1.20.2.

Reported: convergence after the last push (the API server serves the last weights and the
status names the last commit as applied), reconciles vs pushes (bursts coalesce), skipped
commits recorded, peak RSS, and open descriptors/sockets of the reconciler sampled over the
whole run (issue #19: they must stay flat; they used to grow by three per apply).

Run: .venv/bin/python bench/soak.py [--pushes 1000] [--services 300] [--drift-interval 5s]
Results go to bench/RESULTS.md (section "soak").
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.machine import describe, write_section
from bench.reconcile import wait_until
from meshdsl.compile.manifest import ResourceKey
from reconciler.processes.lifecycle import terminate
from reconciler.processes.ports import free_port
from reconciler.runtime.status import ClusterStore, Result
from reconciler.targets.kube import KubeTarget
from reconciler.testing.apiserver import LocalApiServer
from reconciler.testing.gitops import GitServer
from reconciler.testing.observe import descriptors, metric_total

SECRET = b"bench-secret"
MESHCTL = str(Path(sys.executable).parent / "meshctl")
NET = "networking.istio.io"
NAME = "soak"


def program(services: int, weights: tuple[int, int]) -> str:
    """``services`` services in 10 namespaces; only ``web`` carries ``weights``."""
    lines = ["from meshdsl import Mesh", "", f"mesh = Mesh({NAME!r}, namespace={NAME!r})",
             f"mesh.namespace({NAME!r})",
             "web = mesh.service('web', versions=['v1', 'v2'])",
             f"web.route(to={{web.v1: {weights[0]}, web.v2: {weights[1]}}})",
             "scopes = [mesh.namespace(f'soak-{i}') for i in range(10)]",
             f"for i in range({services - 1}):",
             "    svc = scopes[i % 10].service(f'svc-{i:03d}', versions=['v1', 'v2'])",
             "    svc.route(to={svc.v1: 90, svc.v2: 10})"]
    return "\n".join(lines) + "\n"


def weights_for(push: int) -> tuple[int, int]:
    share = 1 + push % 98
    return 100 - share, share


class Sampler(threading.Thread):
    """Descriptors, sockets and RSS of one process, once per ``period``."""

    def __init__(self, pid: int, period: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples: list[tuple[float, int, int, int]] = []   # (t, fds, sockets, rss KiB)
        self.peak_rss = 0
        self._done = threading.Event()

    def sample(self) -> None:
        try:
            fds, sockets = descriptors(self.pid)
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return
        rss, hwm = (int(m) for m in re.findall(r"Vm(?:RSS|HWM):\s+(\d+)", status)[::-1])
        self.peak_rss = max(self.peak_rss, hwm)
        self.samples.append((time.monotonic(), fds, sockets, rss))

    def run(self) -> None:
        while not self._done.wait(self.period):
            self.sample()

    def stop(self) -> None:
        self._done.set()
        self.join(5)
        self.sample()


@dataclass
class Soak:
    push_seconds: float
    converged: float
    started: float
    applied: float
    unchanged: float
    failed: float
    internal: float
    webhooks: float
    skipped: int
    ready: int
    samples: list[tuple[float, int, int, int]]
    peak_rss: int


def soak(api: LocalApiServer, root: Path, *, pushes: int, services: int,
         drift_interval: str) -> Soak:
    port = free_port()
    git = GitServer(root / "git", webhook_url=f"http://127.0.0.1:{port}/webhook",
                    secret=SECRET)
    admin = KubeTarget.from_kubeconfig(str(api.kubeconfig))
    reader = ClusterStore(admin, NAME)
    first = git.push({"mesh.py": program(services, (100, 0))}, "start")
    env = {**os.environ, "MESHDSL_WEBHOOK_SECRET": SECRET.decode()}
    log = (root / "reconcile.log").open("ab")
    proc = subprocess.Popen(
        [MESHCTL, "reconcile", "--repo", str(git.origin), "--name", NAME,
         "--kubeconfig", str(api.kubeconfig), "--listen", f"127.0.0.1:{port}",
         "--cache-dir", str(root / "cache"), "--interval", "0",
         "--drift-interval", drift_interval], stdout=log, stderr=log, env=env)
    sampler = Sampler(proc.pid)
    try:
        wait_until(lambda: (s := reader.load_status()) is not None
                   and s.applied_revision == first, 300, "the first apply", 0.1)
        sampler.start()
        started = time.monotonic()
        last = first
        for i in range(1, pushes + 1):
            last = git.push({"mesh.py": program(services, weights_for(i))}, f"push {i}")
            if i % 100 == 0:
                print(f"  {i} pushes in {time.monotonic() - started:.0f} s", flush=True)
        pushed = time.monotonic()
        expected = weights_for(pushes)

        def live() -> bool:
            vs = admin.get(ResourceKey(NET, "VirtualService", NAME, "web")) or {}
            route = vs.get("spec", {}).get("http", [{}])[-1].get("route", [])
            status = reader.load_status()
            return (tuple(r.get("weight") for r in route) == expected
                    and status is not None and status.applied_revision == last)

        converged = wait_until(live, 600, "the last push live", 0.02) - pushed
        exposition = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code
        status = reader.load_status()
        sampler.stop()
    finally:
        terminate(proc, 30)
        log.close()
    assert status is not None
    return Soak(
        push_seconds=pushed - started, converged=converged, started=started,
        applied=metric_total(exposition, "meshdsl_reconciles_total", result="applied"),
        unchanged=metric_total(exposition, "meshdsl_reconciles_total", result="unchanged"),
        failed=metric_total(exposition, "meshdsl_reconciles_total", result="failed"),
        internal=metric_total(exposition, "meshdsl_reconcile_errors_total", kind="internal"),
        webhooks=metric_total(exposition, "meshdsl_webhook_requests_total", outcome="accepted"),
        skipped=sum(1 for a in status.history if a.result is Result.SKIPPED),
        ready=ready, samples=sampler.samples, peak_rss=sampler.peak_rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pushes", type=int, default=1000)
    parser.add_argument("--services", type=int, default=300)
    parser.add_argument("--drift-interval", default="5s")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp, LocalApiServer() as api:
        api.install_crds()
        r = soak(api, Path(tmp), pushes=args.pushes, services=args.services,
                 drift_interval=args.drift_interval)
    load_after = os.getloadavg()
    samples, t0 = r.samples, r.started
    step = max(1, len(samples) // 10)
    shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    rows = "\n".join(f"| {t - t0:.0f} s | {fds} | {sockets} | {rss / 1024:.0f} MiB |"
                     for t, fds, sockets, rss in shown)
    fds = [s[1] for s in samples]
    socks = [s[2] for s in samples]
    half = len(fds) // 2
    flat = max(fds[half:]) <= max(fds[:half]) + 8 if half else True
    busy = (" — other work shared the 2 cores, so the times are pessimistic"
            if max(*load_before, *load_after) > 2 * (os.cpu_count() or 1) else "")
    body = f"""{describe()}
Load average (1/5/15 min) before: {"/".join(f"{x:.1f}" for x in load_before)}, after:
{"/".join(f"{x:.1f}" for x in load_after)}{busy}.

**{args.pushes} pushes** of a one-service change (a new weight split) to a mesh of
**{args.services} services**, as fast as `git push` returns (all pushed in
{r.push_seconds:.0f} s; the `post-receive` hook POSTs each to the webhook), at one
`meshctl reconcile --target kube` subprocess (drift checks every {args.drift_interval}).

| figure | value |
|---|---:|
| convergence after the last push returned | **{r.converged:.2f} s** |
| pushes accepted by the webhook | {r.webhooks:.0f} |
| reconciles that applied a new commit | {r.applied:.0f} (bursts coalesce) |
| reconciles with nothing new (drift checks, pushes already covered) | {r.unchanged:.0f} |
| failed reconciles / internal errors | {r.failed:.0f} / {r.internal:.0f} |
| skipped commits in the kept history (last 50 entries) | {r.skipped} |
| peak RSS of the reconciler | {r.peak_rss / 1024:.0f} MiB |
| open descriptors, min-max over the run | {min(fds)} to {max(fds)} |
| open sockets, min-max over the run | {min(socks)} to {max(socks)} |
| descriptors flat (second half ≤ first half's peak + 8) | {"yes" if flat else "NO"} |
| `/readyz` at the end | {r.ready} |

Descriptors over time (sampled every second; every {step}th shown):

| time after the first push | descriptors | sockets | RSS |
|---:|---:|---:|---:|
{rows}

Before the fix (issue #19) descriptors grew by three per apply and a 400-push storm jammed
at push 334 with the default limit of 1,024.

Run: `.venv/bin/python bench/soak.py --pushes {args.pushes} --services {args.services} --drift-interval {args.drift_interval}`
"""
    write_section("soak", body)
    print(body)


if __name__ == "__main__":
    main()

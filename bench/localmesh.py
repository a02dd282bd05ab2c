"""Benchmark: what the local mesh costs per request, and how fast a route change lands.

1. **Added latency.** One service (the demo app) under STRICT mTLS, called three ways, each
   path alone at the rate it is judged at (1000 req/s through the path, the load of Istio's
   published figures, and 300), the paths taking turns over ``--runs`` runs, each over its
   own keep-alive connection:

   - *direct*: the app's own port;
   - *sidecars*: the caller's sidecar (outbound) → the service's sidecar (inbound, mTLS
     between them) → app — Istio's "client + server proxy" path;
   - *gateway*: the ingress gateway → the service's sidecar (mTLS) → app;
   - *waypoint*: in an ambient namespace, the caller's L4 proxy → the namespace's waypoint
     → the service's L4 proxy → app, mTLS on both hops — Istio's ambient path with a
     waypoint (its service runs on the same app process, so every path ends in one app);
   - *bare hop* (reference): one Envoy with a minimal static config in front of the app —
     what a single proxy hop costs on this machine, whatever the mesh config.

   Added latency = percentile(path) - percentile(direct), for p50 and p99.
2. **Config propagation.** A probe thread sends requests through the gateway back to back;
   the route is flipped between v1 and v2 ``--changes`` times. Measured from the moment the
   change starts to the first response served by the new version:

   - *apply*: ``LocalMesh.apply(spec)`` — compile, write files, Envoy reloads;
   - *watch*: ``meshctl up --watch`` in a subprocess, from writing ``mesh.py`` — adds the
     200 ms debounce, reloading the program and validating it.

Run: .venv/bin/python bench/localmesh.py [--rates 1000,300] [--seconds 20] [--changes 20]
Results go to bench/RESULTS.md (section "localmesh").
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import describe, write_section
from meshdsl.model import Mesh
from meshdsl.model.spec import MeshSpec
from reconciler.demo.apps import DEMO_APP
from reconciler.targets.envoy.allocation import listener_ports
from reconciler.targets.envoy.mesh import LocalMesh
from reconciler.targets.envoy.process import EnvoyProcess
from reconciler.testing.envoy_config import (
    http_listener,
    route_table,
    static_cluster,
    weighted_route,
)

REPO = Path(__file__).resolve().parent.parent
TARGET_P50_MS, TARGET_P99_MS, TARGET_PROPAGATION_MS = 1.0, 3.0, 500.0

PROGRAM = '''
import sys
from meshdsl import Mesh

mesh = Mesh("bench", namespace="bench")
mesh.mtls("STRICT")
echo = mesh.service("echo", port=8080, versions=["v1", "v2"])
echo.run_locally(command=[sys.executable, {demo!r}, "--name", "{{service}}",
                          "--version", "{{version}}", "--port", "{{port}}"])
echo.route(to=echo.v1)  # in-mesh callers reach the same instance the direct path calls
mesh.service("client", port=8080).deploy("v1", image="none")
gateway = mesh.gateway("front")
gateway.http("*")
gateway.routes("front", hosts=["*"]).route(to=echo.{version})
'''

AMBIENT = '''
ambient = mesh.namespace("ambient", mode="ambient")
waypointed = ambient.service("echo", port=8080, versions=["v1"])
waypointed.run_locally("v1", address={app!r})  # the same app process as bench/echo v1
waypointed.route(to=waypointed.v1)
ambient.service("client", port=8080).deploy("v1", image="none")
'''


def spec(version: str, app: str | None = None) -> MeshSpec:
    """The bench mesh routing the gateway to ``version``; with ``app`` (echo v1's address)
    also the ambient namespace whose echo is that app."""
    namespace: dict[str, object] = {}
    program = PROGRAM.format(demo=str(DEMO_APP), version=version)
    exec(program + (AMBIENT.format(app=app) if app else ""), namespace)
    mesh = namespace["mesh"]
    assert isinstance(mesh, Mesh)
    return mesh.build()


class Target:
    """One keep-alive HTTP/1.1 connection and the latencies measured through it."""

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name = name
        self.connection = http.client.HTTPConnection(host, port, timeout=10)
        self.samples: list[float] = []
        self.failures = 0

    def request(self, record: bool = True) -> str:
        began = time.perf_counter()
        self.connection.request("GET", "/bench", headers={"host": "bench.local"})
        response = self.connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - began
        if response.status != 200:
            self.failures += 1
        elif record:
            self.samples.append(elapsed * 1000)
        return response.headers.get("x-served-by", "")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def bare_hop(envoy: EnvoyProcess, app_port: int) -> int:
    """Configure ``envoy`` as one plain HTTP hop to the app; returns its listener port."""
    (port,) = listener_ports(1)
    envoy.update([http_listener("bare", port, route_config=route_table(
        "bare", [weighted_route({"app": 1})]))], [static_cluster("app", app_port)], "1")
    return port


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes have used so far (``/proc/<pid>/stat``)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / tick


HOPS = {"direct": 0, "sidecars": 2, "gateway": 2, "waypoint": 3, "bare hop": 1}
MESH_PATHS = ("sidecars", "gateway", "waypoint")


def latency(mesh: LocalMesh, bare: int, reference: int, rate: float, seconds: float,
            order: int) -> tuple[list[Target], dict[str, float]]:
    """Each path alone at ``rate`` req/s for ``seconds`` (the paths take turns, starting
    at ``order``), and the Envoy CPU microseconds per request per hop on each path."""
    app = mesh.app_address("echo-v1.bench")
    sidecar = int(mesh.outbound_url("client-v1.bench", "echo").rsplit(":", 1)[1])
    gateway = int(mesh.gateway_url().rsplit(":", 1)[1])
    waypoint = int(mesh.outbound_url("client-v1.ambient", "echo").rsplit(":", 1)[1])
    targets = [Target("direct", app.host, app.port), Target("sidecars", "127.0.0.1", sidecar),
               Target("gateway", "127.0.0.1", gateway),
               Target("waypoint", "127.0.0.1", waypoint), Target("bare hop", "127.0.0.1", bare)]
    envoys = [mesh.envoy(proxy).pid for proxy in mesh.proxies()] + [reference]
    for _ in range(300):  # warm up: connections, TLS sessions, Python and Envoy caches
        for target in targets:
            target.request(record=False)
    interval = 1.0 / rate
    count = int(rate * seconds)
    cpu: dict[str, float] = {}
    turn = order % len(targets)
    for target in targets[turn:] + targets[:turn]:
        used = cpu_seconds(envoys)
        start = time.perf_counter()
        for i in range(count):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            target.request()
        if HOPS[target.name]:
            cpu[target.name] = ((cpu_seconds(envoys) - used) * 1e6
                                / max(1, count) / HOPS[target.name])
    return targets, cpu


def propagation(change: Callable[[str], None], probe_port: int, changes: int,
                timeout: float = 10.0) -> list[float]:
    """Milliseconds from ``change(version)`` starting to the first response by it."""
    seen: dict[str, float] = {}
    stop = threading.Event()
    probe = Target("probe", "127.0.0.1", probe_port)

    def run() -> None:
        while not stop.is_set():
            try:
                served = probe.request(record=False)
            except (OSError, http.client.HTTPException):
                probe.connection.close()
                continue
            if served and served not in seen:
                seen[served] = time.perf_counter()
            time.sleep(0.001)  # ~1 ms resolution, without starving apply() of the GIL

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    results: list[float] = []
    try:
        for number in range(changes):
            version = "v2" if number % 2 == 0 else "v1"
            seen.clear()
            began = time.perf_counter()
            change(version)
            deadline = began + timeout
            while f"echo-{version}" not in seen and time.perf_counter() < deadline:
                time.sleep(0.001)
            if f"echo-{version}" not in seen:
                raise RuntimeError(f"change {number} to {version} not seen in {timeout}s")
            results.append((seen[f"echo-{version}"] - began) * 1000)
            time.sleep(0.3)  # let the probe settle on the new version
    finally:
        stop.set()
        thread.join(timeout=5)
    return results


def watch_propagation(changes: int) -> list[float]:
    """The same flips through ``meshctl up --watch``: edit the file, wait for traffic."""
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        program = Path(tmp) / "mesh.py"
        program.write_text(PROGRAM.format(demo=str(DEMO_APP), version="v1"))
        (port,) = listener_ports(1)
        process = subprocess.Popen(
            [sys.executable, "-c", "from reconciler.cli import main; main()", "up",
             str(program), "--watch", "--gateway-port", str(port), "-o", "json"],
            cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            assert process.stdout is not None
            for line in process.stdout:  # the summary document ends with a lone "}"
                if line.rstrip("\n") == "}":
                    break

            def edit(version: str) -> None:
                program.write_text(PROGRAM.format(demo=str(DEMO_APP), version=version))

            return propagation(edit, port, changes)
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def summary(samples: list[float]) -> str:
    return (f"p50 {statistics.median(samples):.0f} ms, p90 {percentile(samples, 90):.0f} ms, "
            f"max {max(samples):.0f} ms")


def runs_table(runs: list[tuple[list[Target], dict[str, float]]]
               ) -> tuple[str, dict[str, dict[int, float]], str]:
    """Rows of the median (and spread) over runs, the added median percentiles per mesh
    path, and the Envoy CPU sentence."""
    names = [t.name for t in runs[0][0]]
    per: dict[str, dict[int, list[float]]] = {n: {50: [], 90: [], 99: []} for n in names}
    counts = {n: 0 for n in names}
    failed = {n: 0 for n in names}
    for targets, _ in runs:
        for target in targets:
            counts[target.name] += len(target.samples)
            failed[target.name] += target.failures
            for q in (50, 90, 99):
                per[target.name][q].append(percentile(target.samples, q))
    med = {n: {q: statistics.median(per[n][q]) for q in (50, 90, 99)} for n in names}
    added = {n: {q: med[n][q] - med["direct"][q] for q in (50, 90, 99)}
             for n in names if n != "direct"}
    rows = []
    for n in names:
        cells = " | ".join(f"{med[n][q]:.2f} ({min(per[n][q]):.2f}-{max(per[n][q]):.2f})"
                           for q in (50, 90, 99))
        extra = " | - | - | -" if n == "direct" else "".join(
            f" | **{added[n][q]:+.2f}**" for q in (50, 90, 99))
        every = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(per[n][50], per[n][99],
                                                            strict=True))
        rows.append(f"| {n} | {counts[n]} | {failed[n]} | {cells}{extra} | {every} |")
    cpu = "; ".join(
        f"{n} {statistics.median(c[n] for _, c in runs):.0f} µs "
        f"({min(c[n] for _, c in runs):.0f}-{max(c[n] for _, c in runs):.0f})"
        for n in (*MESH_PATHS, "bare hop"))
    return "\n".join(rows), added, cpu


def verdicts(added: dict[str, dict[int, float]]) -> str:
    out = []
    for name in MESH_PATHS:
        ok50 = added[name][50] < TARGET_P50_MS
        ok99 = added[name][99] < TARGET_P99_MS
        out.append(f"{name}: p50 {'met' if ok50 else 'MISSED'}, p99 {'met' if ok99 else 'MISSED'}")
    return "; ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1000,300",
                        help="requests per second through each path, comma-separated; the "
                             "targets are judged at the first (Istio's published figures "
                             "use 1000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per path and rate")
    parser.add_argument("--runs", type=int, default=3, help="runs of every rate")
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]

    load_before = os.getloadavg()[0]
    with LocalMesh(spec("v1")) as mesh, EnvoyProcess(log_level="warn") as reference:
        app = str(mesh.app_address("echo-v1.bench"))
        mesh.apply(spec("v1", app))
        bare = bare_hop(reference, mesh.app_address("echo-v1.bench").port)
        measured = [(rate, [latency(mesh, bare, reference.pid, rate, args.seconds, run)
                            for run in range(args.runs)]) for rate in rates]
        gateway_port = int(mesh.gateway_url().rsplit(":", 1)[1])
        applied: list[float] = []

        def apply(version: str) -> None:
            began = time.perf_counter()
            mesh.apply(spec(version, app))
            applied.append((time.perf_counter() - began) * 1000)

        api = propagation(apply, gateway_port, args.changes)
    watched = watch_propagation(args.changes)
    load_after = os.getloadavg()[0]

    tables = []
    judged: dict[str, dict[int, float]] = {}
    for number, (rate, runs) in enumerate(measured):
        rows, added, cpu = runs_table(runs)
        if number == 0:
            judged = added
        beyond = {name: added[name][50] - HOPS[name] * added["bare hop"][50]
                  for name in MESH_PATHS}
        tables.append(f"""At **{rate:.0f} req/s through each path** ({args.runs} runs of
{args.seconds:.0f} s per path; the paths take turns, each run starting with the next one).
Milliseconds, the median over the runs of each run's percentile, with the spread (min-max)
and every run's p50/p99:

| path | requests | failed | p50 | p90 | p99 | added p50 | added p90 | added p99 | every run (p50/p99) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---|
{rows}

{"Targets (judged at this rate)" if number == 0 else "At this rate"}: {verdicts(added)}.
The mesh configuration (mTLS, RBAC, routing, stats) adds {beyond["sidecars"]:+.2f} ms
(sidecars) and {beyond["gateway"]:+.2f} ms (gateway) at p50 beyond two bare hops, and
{beyond["waypoint"]:+.2f} ms (waypoint) beyond three. The waypoint path adds
{added["waypoint"][50]:+.2f} ms p50 and {added["waypoint"][99]:+.2f} ms p99 over direct, against
{added["sidecars"][50]:+.2f} / {added["sidecars"][99]:+.2f} ms for the sidecars, in the same runs.
Envoy CPU per proxied request and hop (from /proc, every Envoy of the run while that path
alone was loaded, median of the runs): {cpu}.
""")
    rate_list = ",".join(f"{rate:g}" for rate in rates)
    body = f"""{describe()}
Load average (1 min) before/after: {load_before:.2f}/{load_after:.2f}.

**Added latency**: keep-alive HTTP/1.1, STRICT mTLS between the proxies, Envoy 1.40 with
`--concurrency 1`, demo app on Python's `http.server`, one request at a time from one client.
Targets: < {TARGET_P50_MS:g} ms p50 and < {TARGET_P99_MS:g} ms p99 added, judged at
{rates[0]:g} req/s, the load of Istio's published ~2.8 ms p99 for client + server proxies.

{chr(10).join(tables)}
The sidecar and gateway paths are two Envoy hops, so twice the *bare hop* is what any two
proxies cost here; the waypoint path is three (L4 proxy, waypoint, L4 proxy), where Istio's
ambient path has two ztunnels (not Envoy) around the waypoint. At a lower rate every process
sleeps between requests, so each hop also pays an idle CPU's wake-up.

**Config propagation**, from starting a route change to the first request the new route
serves, over {args.changes} flips of the gateway route between v1 and v2
(target < {TARGET_PROPAGATION_MS:g} ms p50):

| path | propagation | |
|---|---|---|
| `LocalMesh.apply(spec)` | {summary(api)} | apply() returns after {statistics.median(applied):.0f} ms p50 (every proxy acknowledged) |
| `meshctl up --watch`, file write | {summary(watched)} | includes the 200 ms debounce, reloading and validating the program |

Verdict: added latency {verdicts(judged)}; propagation p50 {statistics.median(api):.0f} ms
({"met" if statistics.median(api) < TARGET_PROPAGATION_MS else "MISSED"}).

Run: `.venv/bin/python bench/localmesh.py --rates {rate_list} --seconds {args.seconds:g} --runs {args.runs} --changes {args.changes}`
"""
    print(body)
    if not args.no_write:
        write_section("localmesh", body)


if __name__ == "__main__":
    main()

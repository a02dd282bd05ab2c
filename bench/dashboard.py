"""Dashboard update cost: what one refresh costs the server, and one update costs the page.

Two parts, each repeated:

1. **200 services** (``bench/meshgen.py``: 600 workloads, 4 routes each, 10 namespaces) with
   traffic on every version — 1,000 req/s spread over them — fed to the real server by a
   recorded-style traffic source (the metrics query is measured separately, in part 2). The
   page is open in headless Chromium on the server's SSE stream. Measured: time to build one
   snapshot (graph + canaries + JSON), the server process' CPU per refresh, the page's
   update time (JS, from ``window.meshdsl.renderMs``) and its one-off layout time.
2. **The query**: ``EnvoyTraffic.edges()`` against the real local mesh (bookinfo: 12 Envoys)
   with 100 req/s flowing — the per-refresh scrape of every proxy's stats, per proxy.

    .venv/bin/python -m bench.dashboard [--seconds 20] [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import describe, write_section
from bench.meshgen import generate
from reconciler.core.graph import EdgeStats, workload_id
from reconciler.dashboard import Dashboard, EnvoyTraffic, Feeds, local_proxies
from reconciler.demo.traffic import TrafficGenerator
from reconciler.runtime.loader import load
from reconciler.targets.envoy.mesh import LocalMesh
from reconciler.testing.browser import chromium

SERVICES = 200
TOTAL_RPS = 1000.0
ROOT = Path(__file__).resolve().parents[1]


class Recorded:
    """Traffic on every version of every service (callers chained svc i-1 -> svc i), with
    jitter per refresh so every update changes every edge, as live traffic does."""

    def __init__(self, spec: Any) -> None:
        self.services = spec.services
        self.rng = random.Random(7)

    def describe(self) -> str:
        return f"recorded traffic, {TOTAL_RPS:g} req/s over {len(self.services)} services"

    def edges(self) -> list[EdgeStats]:
        per_service = TOTAL_RPS / len(self.services)
        out = []
        for i, svc in enumerate(self.services):
            caller = self.services[i - 1]
            source = workload_id(caller.namespace, caller.name, "v1")
            for version, share in (("v1", 0.8), ("v2", 0.1), ("v3", 0.1)):
                rps = per_service * share * self.rng.uniform(0.9, 1.1)
                out.append(EdgeStats(source, svc.namespace, svc.name, version, rps,
                                     rps * self.rng.choice((0, 0, 0.01, 0.2)),
                                     self.rng.uniform(1, 5), self.rng.uniform(10, 90), True))
        return out


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def part_200(seconds: float) -> dict[str, float]:
    spec = generate(SERVICES).build()
    board = Dashboard(Feeds(spec=lambda: spec, traffic=Recorded(spec)), refresh=2.0).start()
    try:
        with chromium() as page:
            page.set_page_load_timeout(180)
            page.set_script_timeout(180)
            page.get(board.url)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not page.execute_script(
                    "return window.meshdsl.renderMs.length"):
                time.sleep(0.2)
            board.refresh_seconds = []
            cpu0, wall0 = _cpu(), time.monotonic()
            time.sleep(seconds)
            cpu = _cpu() - cpu0
            wall = time.monotonic() - wall0
            builds = list(board.refresh_seconds)   # the refreshes of this window only
            renders = page.execute_script("return window.meshdsl.renderMs")[1:]
            layout = page.execute_script("return window.meshdsl.layoutMs")
            nodes = page.execute_script("return window.cy.nodes().length")
            edges = page.execute_script("return window.cy.edges().length")
    finally:
        board.stop()
    refreshes = max(1, len(builds))
    return {"build_ms": 1000 * statistics.median(builds),
            "build_max_ms": 1000 * max(builds),
            "cpu_per_refresh_ms": 1000 * cpu / refreshes, "cpu_pct": 100 * cpu / wall,
            "render_ms": statistics.median(renders), "render_max_ms": max(renders),
            "layout_ms": float(layout), "nodes": nodes, "edges": edges,
            "refreshes": refreshes}


def part_query(seconds: float) -> dict[str, float]:
    spec = load(str(ROOT / "examples" / "bookinfo" / "mesh.py")).spec
    with tempfile.TemporaryDirectory() as tmp:
        mesh = LocalMesh(spec, workdir=Path(tmp) / "mesh")
        try:
            mesh.start()
            source = EnvoyTraffic(local_proxies(mesh))
            with TrafficGenerator(f"{mesh.gateway_url()}/productpage", rate=100,
                                  max_seconds=seconds + 30):
                times = []
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    began = time.perf_counter()
                    source.edges()
                    times.append(time.perf_counter() - began)
                    time.sleep(max(0.0, 2.0 - times[-1]))
            proxies = len(mesh.proxies())
        finally:
            mesh.stop()
    median = statistics.median(times)
    return {"query_ms": 1000 * median, "query_max_ms": 1000 * max(times),
            "proxies": proxies, "per_proxy_ms": 1000 * median / proxies}


def _spread(values: list[float]) -> str:
    return (f"{statistics.median(values):.1f} ({min(values):.1f} to {max(values):.1f})"
            if len(values) > 1 else f"{values[0]:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    header = describe()
    load_before = os.getloadavg()[0]
    runs = [part_200(args.seconds) for _ in range(args.repeats)]
    queries = [part_query(args.seconds) for _ in range(args.repeats)]
    load_after = os.getloadavg()[0]

    def col(key: str, rows: list[dict[str, float]]) -> str:
        return _spread([float(r[key]) for r in rows])

    body = f"""{header}
Load average (1 min) before/after: {load_before:.2f}/{load_after:.2f}. {args.repeats} runs of
{args.seconds:g} s each; median (min to max over runs) of each run's median.

**Page update cost, {SERVICES} services** ({runs[0]['nodes']} nodes incl. namespaces,
{runs[0]['edges']} edges; {TOTAL_RPS:g} req/s of recorded traffic on every version; refresh
every 2 s; the page open in headless Chromium on the SSE stream):

| measure | value |
|---|---:|
| snapshot build per refresh (graph + canaries + JSON), ms | {col('build_ms', runs)} |
| slowest snapshot build, ms | {col('build_max_ms', runs)} |
| dashboard process CPU per refresh (build + HTTP + SSE; the bench's own thread idles), ms | {col('cpu_per_refresh_ms', runs)} |
| dashboard process CPU, % of one core | {col('cpu_pct', runs)} |
| page update (JS: data of every element, tables, panels), ms | {col('render_ms', runs)} |
| slowest page update, ms | {col('render_max_ms', runs)} |
| page layout, once (namespace rows; dagre below 150 nodes), ms | {col('layout_ms', runs)} |

**Query per refresh, local mesh** (`EnvoyTraffic.edges()`: every proxy's filtered
`/stats/prometheus`, bookinfo's {queries[0]['proxies']:.0f} Envoys, 100 req/s flowing):

| measure | value |
|---|---:|
| all proxies, ms | {col('query_ms', queries)} |
| slowest, ms | {col('query_max_ms', queries)} |
| per proxy, ms | {col('per_proxy_ms', queries)} |

The scrape is sequential, so 200 services with 3 versions (600 sidecars) would take about
600 times the per-proxy figure per refresh — measured here on {queries[0]['proxies']:.0f}, not on 600 (a 600-Envoy mesh
does not fit this shared 2-core machine). For kube the query is Prometheus' (three
instant queries per reporter, Kiali's), timed by Prometheus itself.
"""
    print(body)
    if not args.no_write:
        write_section("dashboard", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``meshctl demo bookinfo``: progressive delivery end to end on this machine, in one command.

1. A temporary Git repository holding a copy of ``examples/bookinfo/mesh.py`` (its demo app
   path pinned, so the apps do not restart with every checkout).
2. The reconciler: the same loop as ``meshctl reconcile --target local`` (:class:`Reconciler`
   polling the repository every 0.5 s, each revision run in the sandbox), deploying rollout
   views to the local Envoy mesh (:class:`LocalMesh`); its :class:`RolloutDriver` judges
   canaries on a real Prometheus scraping every Envoy.
3. Traffic: ``/productpage`` through the ingress gateway, ~40 requests a second; what
   reviews answered is read from productpage's JSON.
4. The story, from ``examples/canary/demo/``: a commit that canaries reviews v2 (healthy:
   promoted), then one that canaries a faulty v3 (rolled back to v2).

Prints a live timeline (time, service, phase, step, weights, success rate, p99, decision)
and a summary; exit 0 when the story ends as written, 1 otherwise. Everything started is
stopped and the temporary directory removed, also on Ctrl-C.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.text import Text

from reconciler.cli.app import (
    add_row,
    app,
    command_group,
    console,
    fail,
    print_table,
    table,
)
from reconciler.cli.dashboard import DashboardListenOpt, serve_local
from reconciler.dashboard import Dashboard
from reconciler.delivery.phases import Phase, RolloutState
from reconciler.demo.prometheus import LocalPrometheus
from reconciler.demo.traffic import Sample, TrafficGenerator, envoy_scrape_job
from reconciler.metrics import PrometheusSource, istio_bridge_rule_groups
from reconciler.ports import Deployed
from reconciler.runtime.deploy import LocalDeployer
from reconciler.runtime.loop import Reconciler, Settings
from reconciler.runtime.rollout_store import DiskRolloutStore
from reconciler.runtime.rollouts import RolloutDriver, RolloutReport
from reconciler.runtime.sandbox import Limits, Sandbox
from reconciler.runtime.status import DiskStore
from reconciler.sources.git import GitSource, remove_tree
from reconciler.targets.envoy.mesh import LocalMesh

demo_app = command_group("demo", "Self-contained demonstrations on the local mesh.")
app.add_typer(demo_app, name="demo")

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "bookinfo" / "mesh.py"
STORY = REPO_ROOT / "examples" / "canary" / "demo"
DEMO_APP_LINE = 'DEMO_APP = str(Path(__file__).resolve().parent.parent / "apps" / "demo_app.py")'
NS, SERVICE = "bookinfo", "reviews"


@dataclass(frozen=True)
class Chapter:
    file: str
    message: str
    target: str
    expect: Phase


CHAPTERS = (
    Chapter("1-reviews-v2.py", "canary reviews v2", "v2", Phase.SUCCEEDED),
    Chapter("2-faulty-v3.py", "canary reviews v3 (fails 30% of requests)", "v3", Phase.FAILED),
)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, timeout=30,
                          env={"GIT_AUTHOR_NAME": "meshctl demo",
                               "GIT_AUTHOR_EMAIL": "demo@localhost",
                               "GIT_COMMITTER_NAME": "meshctl demo",
                               "GIT_COMMITTER_EMAIL": "demo@localhost",
                               "PATH": "/usr/bin:/bin:/usr/local/bin"}).stdout.strip()


def _init_repo(repo: Path) -> str:
    text = EXAMPLE.read_text()
    if DEMO_APP_LINE not in text:
        raise RuntimeError(f"{EXAMPLE} no longer defines DEMO_APP as the demo expects")
    pinned = f"DEMO_APP = {str(REPO_ROOT / 'examples' / 'apps' / 'demo_app.py')!r}"
    repo.mkdir(parents=True)
    (repo / "mesh.py").write_text(text.replace(DEMO_APP_LINE, pinned))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "mesh.py")
    _git(repo, "commit", "-q", "-m", "bookinfo: reviews 100% v1")
    return (repo / "mesh.py").read_text()


def _commit(repo: Path, base: str, chapter: Chapter) -> str:
    """``mesh.py`` = the example + this chapter's block (each chapter replaces the last)."""
    (repo / "mesh.py").write_text(base + (STORY / chapter.file).read_text())
    _git(repo, "commit", "-q", "-am", chapter.message)
    return _git(repo, "rev-parse", "HEAD")


def _reviews_call(response: httpx.Response) -> tuple[int, str]:
    """What reviews answered productpage (its own status when productpage failed)."""
    if response.status_code != 200:
        return response.status_code, ""
    try:
        call = response.json()["calls"][0]
        return int(call.get("status") or 0), str(call.get("served_by") or "")
    except (ValueError, KeyError, IndexError, TypeError):
        return 0, ""


class _Timeline:
    """Prints one row per judged step or transition of the reviews rollout."""

    COLUMNS = ("time", "service", "phase", "step", "weights", "success", "p99", "decision")

    def __init__(self, started: float) -> None:
        self.started = started
        self.rows: list[tuple[str, ...]] = []
        self._lock = threading.Lock()
        console.print(self._format(self.COLUMNS), style="bold")

    @staticmethod
    def _format(cells: tuple[str, ...]) -> str:
        widths = (7, 16, 13, 12, 16, 8, 8)
        return " ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + " " + \
            cells[-1]

    def report(self, report: RolloutReport) -> None:
        if report.key != (NS, SERVICE) or not (report.events or report.judged):
            return
        state = report.state
        success = report.measured.get("request-success-rate")
        p99 = report.measured.get("request-duration")
        weights = " ".join(f"{k}={v}" for k, v in state.traffic.weights.items())
        cells = (f"+{report.at - self.started:5.1f}s", f"{SERVICE} {state.target}",
                 state.phase.value, state.stage_label or "-", weights,
                 "-" if success is None else f"{success:.1f}%",
                 "-" if p99 is None else f"{p99:.0f}ms", report.decision)
        style = {Phase.SUCCEEDED: "green", Phase.FAILED: "red", Phase.ROLLING_BACK: "red",
                 Phase.HALTED: "yellow"}.get(state.phase, "")
        with self._lock:
            self.rows.append(cells)
            console.print(self._format(cells), style=style, markup=False, highlight=False,
                          soft_wrap=True)


def _wait_outcome(store: DiskRolloutStore, target: str, timeout: float
                  ) -> RolloutState | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stored = store.load(NS, SERVICE)
        if stored is not None and stored.state.target == target and stored.state.phase.terminal:
            return stored.state
        time.sleep(0.2)
    return None


def _failed_between(samples: list[Sample], start: float, end: float) -> tuple[int, int]:
    window = [s for s in samples if start <= s.at < end]
    return sum(1 for s in window if s.status >= 500 or s.status == 0), len(window)


class _ScrapedMesh(LocalDeployer):
    """The local mesh as the reconciler's target, telling Prometheus whenever its set of
    Envoys changes (a canary's new version brings its own sidecar)."""

    def __init__(self, mesh: LocalMesh, prometheus: LocalPrometheus) -> None:
        super().__init__(mesh)
        self.prometheus = prometheus
        self._scraped: set[str] = set()

    def deploy(self, output: dict[str, Any], *, mesh: str, heal: bool,
               dry_run: bool = False, fence: Callable[[], bool] | None = None) -> Deployed:
        deployed = super().deploy(output, mesh=mesh, heal=heal, dry_run=dry_run, fence=fence)
        urls = set(self.mesh.stats_urls().values())
        if urls != self._scraped:
            self.prometheus.reload_targets([envoy_scrape_job(self.mesh)])
            self._scraped = urls
        return deployed


def _wait_applied(rec: Reconciler, revision: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rec.status.applied_revision == revision:
            return True
        last = rec.status.last
        if last is not None and last.revision == revision and last.failure is not None \
                and not last.failure.transient:
            console.print(f"revision {revision[:12]} failed: {last.failure.message}", style="red",
                          markup=False, soft_wrap=True)
            return False
        time.sleep(0.1)
    return False


@demo_app.command("bookinfo")
def bookinfo_cmd(
    timeout: Annotated[float, typer.Option(help="Seconds each rollout may take.")] = 90.0,
    rate: Annotated[float, typer.Option(help="Requests per second to /productpage.")] = 40.0,
    dashboard: Annotated[bool, typer.Option(
        "--dashboard/--no-dashboard", help="Serve the live graph and canaries (URL printed)."
    )] = True,
    dashboard_listen: DashboardListenOpt = "127.0.0.1:0",
) -> None:
    """Canary reviews v2 (promoted) then a faulty v3 (rolled back), live, on this machine."""
    started = time.time()
    for name in ("reconciler", "meshdsl"):   # the timeline says it all
        quiet = logging.getLogger(name)
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
    workdir = Path(tempfile.mkdtemp(prefix="meshctl-demo-"))
    repo = workdir / "repo"
    timeline = _Timeline(started)
    source = GitSource(str(repo), branch="main", cache_dir=workdir / "git")
    sandbox = Sandbox(Limits(timeout=30.0))
    prometheus: LocalPrometheus | None = None
    deployer: _ScrapedMesh | None = None
    rec: Reconciler | None = None
    traffic: TrafficGenerator | None = None
    outcomes: list[tuple[Chapter, RolloutState | None, float, float]] = []
    final: list[Sample] = []
    board: Dashboard | None = None
    try:
        base = _init_repo(repo)
        console.print(f"[dim]repository {escape(str(repo))}; starting Prometheus, then the "
                      "reconciler (meshctl reconcile --target local) tracking it...[/]",
                      soft_wrap=True)
        prometheus = LocalPrometheus(rule_groups=istio_bridge_rule_groups(interval="1s"),
                                     workdir=workdir / "prometheus").start()
        deployer = _ScrapedMesh(LocalMesh(workdir=workdir / "mesh"), prometheus)
        store = DiskRolloutStore.in_state_dir(workdir / "state")
        driver = RolloutDriver(store, PrometheusSource(prometheus.url),
                               on_report=timeline.report)
        rec = Reconciler(Settings(name="demo", poll_interval=0.5, drift_interval=None,
                                  rollout_period=0.25),
                         source=source, deployer=deployer, store=DiskStore(workdir / "state"),
                         sandbox=sandbox, rollouts=driver)
        board = serve_local(deployer.mesh, listen=dashboard_listen, store=store,
                            status=DiskStore(workdir / "state"),
                            title="meshdsl demo bookinfo") if dashboard else None
        sandbox.prepare()
        rec.start()
        first = _git(repo, "rev-parse", "HEAD")
        if not _wait_applied(rec, first, 120):
            fail("the first revision was not applied within 120s", 1)
        mesh = deployer.mesh
        traffic = TrafficGenerator(f"{mesh.gateway_url()}/productpage", rate=rate,
                                   max_seconds=timeout * len(CHAPTERS) + 120,
                                   classify=_reviews_call).start()
        console.print(f"[dim]mesh up in {time.time() - started:.0f}s: "
                      f"{len(mesh.proxies())} Envoys, traffic on "
                      f"{mesh.gateway_url()}/productpage[/]", soft_wrap=True)
        time.sleep(2.0)
        for chapter in CHAPTERS:
            begin = time.time()
            sha = _commit(repo, base, chapter)
            console.print(f"\n[bold]git commit {sha[:12]}[/] {escape(chapter.message)}",
                          soft_wrap=True)
            if _wait_applied(rec, sha, 60):
                console.print(f"[bold cyan]revision {sha[:12]} applied[/] "
                              f"{time.time() - begin:.1f}s after the commit", soft_wrap=True)
            state = _wait_outcome(store, chapter.target, timeout)
            time.sleep(1.5)  # traffic on the final routes
            outcomes.append((chapter, state, begin, time.time()))
        final = traffic.since(time.time() - 1.0)
    except KeyboardInterrupt:
        fail("interrupted; everything started was stopped", 130)
    finally:
        if board is not None:
            board.stop()
        if traffic is not None:
            traffic.stop()
        if rec is not None:
            rec.stop()
        sandbox.close()
        if deployer is not None:
            deployer.stop()
        if prometheus is not None:
            prometheus.stop()
        source.close()
        remove_tree(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
    ok = _summary(outcomes, traffic.samples if traffic else [], final, started)
    raise typer.Exit(0 if ok else 1)


def _summary(outcomes: list[tuple[Chapter, RolloutState | None, float, float]],
             samples: list[Sample], final: list[Sample], started: float) -> bool:
    summary = table("rollout", "outcome", "took", "analyses", "reviews calls failed", "why",
                    title="Summary")
    ok = True
    for chapter, state, begin, end in outcomes:
        phase = state.phase if state is not None else None
        good = phase is chapter.expect
        ok &= good
        failed, total = _failed_between(samples, begin, end)
        took = f"{state.last_transition - state.started_at:.1f}s" if state else "-"
        outcome = phase.value if phase else "timeout"
        add_row(summary, f"reviews -> {chapter.target}",
                Text(outcome + ("" if good else f" (expected {chapter.expect.value})"),
                     style="green" if good else "red"),
                took, str(state.analyses) if state else "-",
                f"{failed}/{total} ({100 * failed / max(1, total):.1f}%)",
                state.reason if state else "")
    served = {s.served_by for s in final}
    ok &= served == {"reviews-v2"}
    console.print()
    print_table(summary)
    console.print(f"after the story, reviews answered from: {', '.join(sorted(served)) or '-'}"
                  f" (expected reviews-v2); total {time.time() - started:.0f}s", soft_wrap=True)
    console.print("[bold green]story complete[/]" if ok else "[bold red]story failed[/]")
    return ok

"""``meshctl demo bookinfo``: issue #6's whole story on this machine, in one command.

1. A temporary Git repository holding a copy of ``examples/bookinfo/mesh.py`` (its demo app
   path pinned, so the apps do not restart with every checkout).
2. The reconciler side: a watcher polling the repository (:class:`GitSource`), each new
   revision loaded and handed to the :class:`RolloutDriver`, which runs the local Envoy
   mesh (:class:`LocalMesh`) and judges canaries on a real Prometheus scraping it.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.table import Table

from meshdsl.model.spec import MeshSpec
from reconciler.cli.app import app, console, fail
from reconciler.delivery.phases import Phase, RolloutState
from reconciler.runtime.loader import load
from reconciler.runtime.rollouts import RolloutReport
from reconciler.sources.git import GitSource, remove_tree
from reconciler.testing.canary import CanaryRig, Sample, TrafficGenerator

demo_app = typer.Typer(help="Self-contained demonstrations on the local mesh.",
                       no_args_is_help=True)
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
    return _git(repo, "rev-parse", "--short", "HEAD")


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


def _load(checkout: Path) -> MeshSpec:
    return load(str(checkout / "mesh.py")).spec


def _wait_outcome(rig: CanaryRig, target: str, timeout: float) -> RolloutState | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stored = rig.store.load(NS, SERVICE)
        if stored is not None and stored.state.target == target and stored.state.phase.terminal:
            return stored.state
        time.sleep(0.2)
    return None


def _failed_between(samples: list[Sample], start: float, end: float) -> tuple[int, int]:
    window = [s for s in samples if start <= s.at < end]
    return sum(1 for s in window if s.status >= 500 or s.status == 0), len(window)


@demo_app.command("bookinfo")
def bookinfo_cmd(
    timeout: Annotated[float, typer.Option(help="Seconds each rollout may take.")] = 90.0,
    rate: Annotated[float, typer.Option(help="Requests per second to /productpage.")] = 40.0,
) -> None:
    """Canary reviews v2 (promoted) then a faulty v3 (rolled back), live, on this machine."""
    started = time.time()
    quiet = logging.getLogger("reconciler")  # the timeline says it all
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    workdir = Path(tempfile.mkdtemp(prefix="meshctl-demo-"))
    repo = workdir / "repo"
    timeline = _Timeline(started)
    rig = CanaryRig(workdir / "state", on_report=timeline.report)
    source = GitSource(str(repo), branch="main", cache_dir=workdir / "git")
    stop = threading.Event()
    traffic: TrafficGenerator | None = None
    outcomes: list[tuple[Chapter, RolloutState | None, float, float]] = []
    try:
        base = _init_repo(repo)
        first = source.latest()
        console.print(f"[dim]repository {repo} at {first.short}; starting the local mesh, "
                      "Prometheus and the rollout driver...[/]")
        rig.start(_load(source.checkout(first.id)), first.short)
        assert rig.mesh is not None
        traffic = TrafficGenerator(f"{rig.mesh.gateway_url()}/productpage", rate=rate,
                                   max_seconds=timeout * len(CHAPTERS) + 120,
                                   classify=_reviews_call).start()
        seen = first.id
        errors: list[str] = []

        def watch() -> None:  # the reconciler's Git trigger: poll every 0.5 s
            nonlocal seen
            while not stop.wait(0.5):
                try:
                    latest = source.latest()
                    if latest.id != seen:
                        seen = latest.id
                        rig.commit(_load(source.checkout(latest.id)), latest.short)
                        console.print(f"[bold cyan]revision {latest.short}[/] "
                                      f"{latest.summary}")
                except Exception as exc:  # a bad revision is reported; the watch goes on
                    errors.append(str(exc))
                    console.print(f"[red]revision failed: {exc}[/]")

        watcher = threading.Thread(target=watch, name="git-watch", daemon=True)
        watcher.start()
        rig.drive()
        console.print(f"[dim]mesh up in {time.time() - started:.0f}s: "
                      f"{len(rig.mesh.proxies())} Envoys, traffic on "
                      f"{rig.mesh.gateway_url()}/productpage[/]")
        time.sleep(2.0)
        for chapter in CHAPTERS:
            begin = time.time()
            sha = _commit(repo, base, chapter)
            console.print(f"\n[bold]git commit {sha}[/] {chapter.message}")
            state = _wait_outcome(rig, chapter.target, timeout)
            time.sleep(1.5)  # traffic on the final routes
            outcomes.append((chapter, state, begin, time.time()))
        stop.set()
        watcher.join(timeout=10)
        final = traffic.since(time.time() - 1.0)
    except KeyboardInterrupt:
        fail("interrupted; everything started was stopped", 130)
    finally:
        stop.set()
        if traffic is not None:
            traffic.stop()
        rig.stop()
        source.close()
        remove_tree(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
    ok = _summary(outcomes, traffic.samples if traffic else [], final, started)
    raise typer.Exit(0 if ok else 1)


def _summary(outcomes: list[tuple[Chapter, RolloutState | None, float, float]],
             samples: list[Sample], final: list[Sample], started: float) -> bool:
    table = Table(title="Summary")
    for column in ("rollout", "outcome", "took", "analyses", "reviews calls failed"):
        table.add_column(column)
    table.add_column("why", overflow="ellipsis", no_wrap=True, max_width=40)
    ok = True
    for chapter, state, begin, end in outcomes:
        phase = state.phase if state is not None else None
        good = phase is chapter.expect
        ok &= good
        failed, total = _failed_between(samples, begin, end)
        took = f"{state.last_transition - state.started_at:.1f}s" if state else "-"
        outcome = phase.value if phase else "timeout"
        table.add_row(f"reviews -> {chapter.target}",
                      f"[{'green' if good else 'red'}]{outcome}[/]"
                      + ("" if good else f" (expected {chapter.expect.value})"),
                      took, str(state.analyses) if state else "-",
                      f"{failed}/{total} ({100 * failed / max(1, total):.1f}%)",
                      state.reason if state else "")
    served = {s.served_by for s in final}
    ok &= served == {"reviews-v2"}
    console.print()
    console.print(table)
    console.print(f"after the story, reviews answered from: {', '.join(sorted(served)) or '-'}"
                  f" (expected reviews-v2); total {time.time() - started:.0f}s")
    console.print("[bold green]story complete[/]" if ok else "[bold red]story failed[/]")
    return ok

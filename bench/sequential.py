"""Sequential canary analysis on the real local stack, beside the interval analysis.

Two questions, each on the local mesh (real Envoys, demo apps, a real Prometheus through
the Envoy -> Istio bridge, the rollout driver ticking), in the same invocation:

1. **A bad v2** (20% of its requests fail with 503) rolled out with steps 20 -> 50 -> 100,
   a 2 s interval and 100 req/s of traffic through the caller's sidecar with Istio's
   default retries (2 on 503): how long v2 serves (first to last request it answered, in
   intervals and seconds; target < 0.5 interval) and what share of the requests of that
   first interval fail at the client (target < 0.25%). The same plan with
   ``analysis="interval"`` runs in the same invocation: Flagger and Argo Rollouts also wait
   for the interval, and need ``threshold`` failed analyses before they roll back. With
   ``--interval 2 10`` both are also run at a 10 s interval: the sequential test is bounded
   by evidence (requests v2 answers), not by the interval, so its seconds stay put while
   the interval mode's grow with it.
2. **A healthy v2** (0.5% of requests fail, within the plan's 99% success rate): how many
   rollouts the sequential test aborts by mistake (target: at most 1 of 50). Several
   canaried services share one mesh, so 50 rollouts take a few rigs.

    .venv/bin/python bench/sequential.py [--bad-runs 5] [--interval 2 10] [--healthy 50]
                                         [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import describe, write_section
from meshdsl.model import Mesh
from meshdsl.model.canary import LatencyP99, SuccessRate
from meshdsl.model.spec import MeshSpec
from reconciler.delivery.phases import Phase
from reconciler.demo.apps import demo_command
from reconciler.demo.traffic import CanaryRig, TrafficGenerator

NS = "shop"
INTERVAL = 2.0
STEPS = [20, 50, 100]
THRESHOLD = 2          # max_failed_checks of the interval analysis
BAD_RATE = 0.2
HEALTHY_RATE = 0.005
HEALTHY_MIN = 98        # the healthy runs' success-rate threshold: p0 = 2%
PER_RIG = 3            # canaried services per rig in the healthy runs




def mesh_of(services: list[str], *, v1_errors: float, v2_errors: float,
            analysis: str, success: float = 99, interval: float = INTERVAL) -> MeshSpec:
    """``services``, each v1 and v2 (demo apps failing at those rates) with the same canary
    plan, and a ``client`` sidecar to call them through."""
    mesh = Mesh("sequential-bench", namespace=NS)
    for name in services:
        svc = mesh.service(name, port=9080, versions=["v1", "v2"])
        svc.route(to={svc.v1: 100})                     # Istio's default retries
        svc.run_locally("v1", command=demo_command("--error-rate", f"{v1_errors:g}"))
        svc.run_locally("v2", command=demo_command("--error-rate", f"{v2_errors:g}"))
        window = f"{max(10.0, interval):g}s"
        svc.canary(target="v2", stable="v1", steps=STEPS, interval=f"{interval:g}s",
                   checks=[SuccessRate(success, interval=window),
                           LatencyP99(400, interval=window)],
                   min_requests=5, no_data_limit=5, max_failed_checks=THRESHOLD,
                   analysis=analysis)  # type: ignore[arg-type]
    mesh.service("client", port=8080).deploy("v1", image="none")
    return mesh.build()


@dataclass(frozen=True)
class BadRun:
    analysis: str
    interval: float     # seconds
    outcome: str
    exposed: float      # seconds from v2's first answer to its last
    served: int         # requests v2 answered (first attempts and retries seen by the client)
    failed: int         # failures the client saw in the interval after v2's first answer
    window: int         # requests the client sent in that interval
    reason: str         # why it rolled back (the sequential test: the counts it judged)


def bad_run(analysis: str, rate: float, interval: float = INTERVAL) -> BadRun:
    with tempfile.TemporaryDirectory(prefix="bench-sequential-") as tmp:
        rig = CanaryRig(Path(tmp))
        traffic: TrafficGenerator | None = None
        try:
            rig.start(mesh_of(["reviews"], v1_errors=0.0, v2_errors=BAD_RATE,
                              analysis=analysis, interval=interval), drive=False)
            assert rig.mesh is not None
            traffic = TrafficGenerator(rig.mesh.outbound_url("client", "reviews"), rate=rate,
                                       workers=4, max_seconds=120).start()
            time.sleep(1.0)
            rig.drive()
            rig.wait(lambda: (s := rig.store.load(NS, "reviews")) is not None
                     and s.state.phase.terminal, 30 + 10 * interval,
                     what="the rollout finishing")
            time.sleep(1.0)
        finally:
            if traffic is not None:
                traffic.stop()
            rig.stop()
        stored = rig.store.load(NS, "reviews")
        assert stored is not None and traffic is not None
        samples = traffic.since(0)
        by_v2 = [s.at for s in samples if s.served_by == "reviews-v2"]
        if not by_v2:
            raise RuntimeError("v2 never served a request; is it running?")
        window = [s for s in samples if by_v2[0] <= s.at < by_v2[0] + interval]
        phase = stored.state.phase
        return BadRun(analysis, interval, phase.value if phase is Phase.FAILED
                      else f"UNEXPECTED {phase.value}", by_v2[-1] - by_v2[0], len(by_v2),
                      sum(1 for s in window if s.status != 200), len(window),
                      stored.state.reason)


@dataclass(frozen=True)
class HealthyRig:
    promoted: int
    sequential_aborts: int
    other_failures: list[str]
    requests: int


def healthy_rig(count: int, rate: float) -> HealthyRig:
    names = [f"svc{i}" for i in range(count)]
    with tempfile.TemporaryDirectory(prefix="bench-sequential-") as tmp:
        rig = CanaryRig(Path(tmp))
        generators: list[TrafficGenerator] = []
        try:
            rig.start(mesh_of(names, v1_errors=HEALTHY_RATE, v2_errors=HEALTHY_RATE,
                              analysis="sequential", success=HEALTHY_MIN), drive=False)
            assert rig.mesh is not None
            generators = [TrafficGenerator(rig.mesh.outbound_url("client", name), rate=rate,
                                           workers=2, max_seconds=180).start()
                          for name in names]
            time.sleep(1.0)
            rig.drive()
            # an unfinished rollout is reported below with its phase and reason
            with contextlib.suppress(TimeoutError):
                rig.wait(lambda: all((s := rig.store.load(NS, n)) is not None
                                     and s.state.phase.terminal for n in names), 240,
                         what="every rollout finishing")
        finally:
            for generator in generators:
                generator.stop()
            rig.stop()
        promoted = aborted = 0
        others: list[str] = []
        for name in names:
            stored = rig.store.load(NS, name)
            assert stored is not None
            state = stored.state
            if state.phase is Phase.SUCCEEDED:
                promoted += 1
            elif "sequential test" in state.reason:
                aborted += 1
            else:
                others.append(f"{name}: {state.phase.value}: {state.reason}")
        return HealthyRig(promoted, aborted, others, sum(len(g.samples) for g in generators))


def _spread(values: list[float], fmt: str) -> str:
    return (f"{format(statistics.median(values), fmt)} "
            f"({format(min(values), fmt)}-{format(max(values), fmt)})")


def _decision(reason: str) -> str:
    """The counts behind a rollback, short: "4 of 17 requests failed" or the check."""
    if reason.startswith("sequential test: "):
        return reason.removeprefix("sequential test: ").split(" (")[0]
    return reason.split(":")[0]


def bad_table(runs: list[BadRun], rate: float) -> str:
    rows = ["| run | interval | analysis | outcome | v2 served for (s) | (intervals) | "
            "requests v2 answered | failed in v2's first interval | rolled back on |",
            "|---|---|---|---|---|---|---|---|---|"]
    for i, run in enumerate(runs, 1):
        rows.append(f"| {i} | {run.interval:g} s | {run.analysis} | {run.outcome} | "
                    f"{run.exposed:.2f} | {run.exposed / run.interval:.2f} | {run.served} | "
                    f"{run.failed}/{run.window} "
                    f"({100 * run.failed / max(1, run.window):.2f}%) | "
                    f"{_decision(run.reason)} |")
    lines = []
    for interval in sorted({r.interval for r in runs}):
        medians: dict[str, float] = {}
        for analysis in ("sequential", "interval"):
            mine = [r for r in runs if r.analysis == analysis and r.interval == interval]
            if not mine:
                continue
            seconds = [r.exposed for r in mine]
            failed, window = sum(r.failed for r in mine), sum(r.window for r in mine)
            medians[analysis] = statistics.median(seconds)
            lines.append(
                f"- **{analysis}, {interval:g} s interval** ({len(mine)} runs): v2 served for "
                f"{_spread([s / interval for s in seconds], '.2f')} intervals = "
                f"{_spread(seconds, '.2f')} s (median, min-max); "
                f"{_spread([float(r.served) for r in mine], '.0f')} requests answered "
                f"by v2; {failed} of {window} requests failed at the client in v2's "
                f"first interval, pooled ({100 * failed / max(1, window):.2f}%).")
        if medians.get("sequential", 0) > 0 and "interval" in medians:
            lines.append(f"- Ratio at {interval:g} s: the interval analysis exposes v2 "
                         f"{medians['interval'] / medians['sequential']:.1f}x as long "
                         "(medians).")
    lines.append("- Targets for sequential: < 0.5 interval, < 0.25% failed. Its seconds "
                 "depend on the requests v2 answers (the evidence), not on the interval.")
    intervals = ", ".join(f"{i:g} s" for i in sorted({r.interval for r in runs}))
    head = (f"### A bad v2 ({BAD_RATE:.0%} of its requests fail)\n\nSteps {STEPS}, "
            f"{intervals} interval, check windows of max(10 s, interval) (99% success rate, "
            f"p99 400 ms), interval threshold {THRESHOLD}, {rate:g} req/s through the "
            "client's sidecar with Istio's default retries (2 on 503), 100 ms scrape, 50 ms "
            "driver tick. The modes run interleaved, so each pair saw the same load.")
    return head + "\n\n" + "\n".join(rows) + "\n\n" + "\n".join(lines) + "\n"


def healthy_table(rigs: list[HealthyRig], rate: float) -> str:
    total = sum(r.promoted + r.sequential_aborts + len(r.other_failures) for r in rigs)
    aborts = sum(r.sequential_aborts for r in rigs)
    rows = ["| rig | rollouts | promoted | aborted by the sequential test | other outcomes | "
            "requests |", "|---|---|---|---|---|---|"]
    for i, r in enumerate(rigs, 1):
        n = r.promoted + r.sequential_aborts + len(r.other_failures)
        rows.append(f"| {i} | {n} | {r.promoted} | {r.sequential_aborts} | "
                    f"{'; '.join(r.other_failures) or '-'} | {r.requests} |")
    head = (f"### A healthy v2 ({HEALTHY_RATE:.1%} of requests fail, v1 the same)\n\n"
            f"{PER_RIG} canaried services per mesh, each {rate:g} req/s, the same plan with a "
            f"{HEALTHY_MIN:g}% success rate (so the test's acceptable error rate p0 is "
            f"{100 - HEALTHY_MIN:g}%) and `analysis=\"sequential\"` (false-abort budget 1% per "
            "rollout, split across its stages). Other outcomes (the interval checks failing on "
            "a small sample, a rollout not finished in time under load) are listed, not "
            "counted as false aborts.")
    verdict = (f"False aborts: **{aborts} of {total}** rollouts (target: at most 1 of 50).")
    return head + "\n\n" + "\n".join(rows) + f"\n\n{verdict}\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bad-runs", type=int, default=5,
                        help="runs of the bad v2 for each analysis mode")
    parser.add_argument("--healthy", type=int, default=50,
                        help="healthy rollouts (rounded up to whole rigs; 0: skip)")
    parser.add_argument("--interval", type=float, nargs="+", default=[INTERVAL],
                        help="analysis intervals in seconds for the bad-v2 runs, e.g. 2 10")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--healthy-rate", type=float, default=30.0)
    parser.add_argument("--no-write", action="store_true",
                        help="print the results without updating bench/RESULTS.md")
    args = parser.parse_args()
    header = describe()
    sections = []
    ok = True
    if args.bad_runs > 0:
        runs = []
        for i in range(args.bad_runs):       # interleaved: both modes see the same load
            for interval in args.interval:
                for analysis in ("sequential", "interval"):
                    run = bad_run(analysis, args.rate, interval)
                    print(f"bad {analysis} {interval:g}s {i + 1}: {run}", file=sys.stderr,
                          flush=True)
                    runs.append(run)
        ok = all(r.outcome == "failed" for r in runs)
        sections.append(bad_table(runs, args.rate))
    if args.healthy > 0:
        rigs = []
        for i in range(-(-args.healthy // PER_RIG)):
            rig = healthy_rig(PER_RIG, args.healthy_rate)
            print(f"healthy rig {i + 1}: {rig}", file=sys.stderr, flush=True)
            rigs.append(rig)
        sections.append(healthy_table(rigs, args.healthy_rate))
    body = header + "\n\n" + "\n".join(sections) + (
        f"\nRun: `.venv/bin/python bench/sequential.py --bad-runs {args.bad_runs} "
        f"--interval {' '.join(f'{i:g}' for i in args.interval)} "
        f"--healthy {args.healthy} --rate {args.rate:g} --healthy-rate "
        f"{args.healthy_rate:g}`\n")
    print(body)
    if not args.no_write:
        write_section("sequential", body)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

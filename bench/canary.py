"""How fast a bad canary is caught and undone, on the real local stack.

A ``reviews`` v2 failing 20% of its requests is rolled out (steps 5 -> 10 -> 50 -> 100,
``max_failed_checks=2``) on the local mesh (real Envoys, demo apps), judged on a real
Prometheus through the Envoy -> Istio bridge, with ~80 requests/s of traffic.
Measured from the client's side, per run:

- **detect**: first 5xx the client saw -> the first failing analysis, in intervals;
- **restore**: first 5xx -> the last request v2 served (100% stable), in intervals;
- **failed**: 5xx over the whole bad rollout, as a share of all requests, and during the
  rollback (first failing analysis -> restored).

Flagger's documented bound for the same plan is ``interval x threshold`` (its analysis
needs ``threshold`` failed checks, one per interval) before the rollback even starts; the
ratio restore / (interval x threshold) compares us to it. Targets: detect <= 1 interval,
restore <= 2, failed < 1%.

Two profiles, run in the same invocation: *tuned* (100 ms scrape, 50 ms driver tick, 2 s
interval, 10 s check windows — the test rig) and *production* (Prometheus' common 15 s
scrape, a 30 s interval, 1 m check windows, 0.5 s tick — what a cluster runs), so the
"intervals to restore" figure is shown to hold when the scrape is not tuned.

    .venv/bin/python bench/canary.py [--runs 3] [--production-runs 1] [--no-write] [--verbose]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import describe, write_section
from meshdsl.model import Mesh, Retries
from meshdsl.model.canary import LatencyP99, SuccessRate
from meshdsl.model.spec import MeshSpec
from reconciler.delivery.phases import Phase
from reconciler.demo.apps import demo_command
from reconciler.demo.traffic import (
    SCRAPE_INTERVAL,
    TICK_PERIOD,
    CanaryRig,
    Sample,
    TrafficGenerator,
)

NS, SERVICE = "shop", "reviews"
THRESHOLD = 2
STEPS = [5, 10, 50, 100]


@dataclass(frozen=True)
class Profile:
    name: str
    interval: float   # seconds between analyses
    scrape: str       # Prometheus scrape (and bridge rule) interval
    window: str       # the checks' query window
    tick: float       # rollout driver period


TUNED = Profile("tuned", 2.0, SCRAPE_INTERVAL, "10s", TICK_PERIOD)
PRODUCTION = Profile("production", 30.0, "15s", "1m", 0.5)




def bad_canary(interval: float, window: str = "10s") -> MeshSpec:
    mesh = Mesh("canary-bench", namespace=NS)
    reviews = mesh.service(SERVICE, port=9080, versions=["v1", "v2"])
    reviews.route(to={reviews.v1: 100}, retries=Retries(attempts=0))  # every 5xx is seen
    reviews.run_locally("v1", command=demo_command())
    reviews.run_locally("v2", command=demo_command("--error-rate", "0.2"))
    mesh.service("client", port=8080).deploy("v1", image="none")
    reviews.canary(target="v2", stable="v1", steps=STEPS, interval=f"{interval:g}s",
                   checks=[SuccessRate(99, interval=window), LatencyP99(400, interval=window)],
                   min_requests=5, no_data_limit=5, max_failed_checks=THRESHOLD)
    return mesh.build()


@dataclass(frozen=True)
class Run:
    detect: float       # seconds, first 5xx -> first failing analysis
    restore: float      # seconds, first 5xx -> last request served by v2
    failed: int
    total: int
    failed_rollback: int
    outcome: str


def one_run(profile: Profile, rate: float, *, verbose: bool = False) -> Run:
    interval = profile.interval
    with tempfile.TemporaryDirectory(prefix="bench-canary-") as tmp:
        rig = CanaryRig(Path(tmp), period=profile.tick, scrape_interval=profile.scrape)
        traffic: TrafficGenerator | None = None
        budget = 45 * interval + 30  # bounded: the slowest expected rollback, with slack
        try:
            rig.start(bad_canary(interval, profile.window), drive=False)
            assert rig.mesh is not None
            traffic = TrafficGenerator(rig.mesh.outbound_url("client", SERVICE), rate=rate,
                                       max_seconds=budget + 30).start()
            time.sleep(1.0)
            begin = time.time()
            rig.drive()
            rig.wait(lambda: (s := rig.store.load(NS, SERVICE)) is not None
                     and s.state.phase.terminal, budget, what="the rollout finishing")
            time.sleep(2.0)
        finally:
            if traffic is not None:
                traffic.stop()
            rig.stop()
        stored = rig.store.load(NS, SERVICE)
        assert stored is not None and traffic is not None
        state = stored.state
        samples = traffic.since(begin)
        if verbose:
            _explain(begin, state.timeline, rig.pushes, samples)
        errors = [s for s in samples if s.status >= 500 or s.status == 0]
        if not errors:
            raise RuntimeError("the bad canary never failed a request; is v2 running?")
        first_5xx = min(s.at for s in errors)
        failing = next(e.at for e in state.timeline if "failed check" in e.message
                       or "rolling back" in e.message)
        last_v2 = max(s.at for s in samples if s.served_by == f"{SERVICE}-v2")
        return Run(detect=max(0.0, failing - first_5xx), restore=last_v2 - first_5xx,
                   failed=len(errors), total=len(samples),
                   failed_rollback=sum(1 for s in errors if s.at >= failing),
                   outcome=state.phase.value if state.phase is Phase.FAILED
                   else f"UNEXPECTED {state.phase.value}")


def _explain(begin: float, timeline: Iterable[Any], pushes: list[tuple[float, Any]],
             samples: list[Sample]) -> None:
    """The run's events on one clock (seconds since the rollout began), for diagnosis."""
    lines = [(e.at - begin, f"machine  {e.message}") for e in timeline if e.at >= begin]
    lines += [(at - begin, f"push     {weights}") for at, weights in pushes if at >= begin]
    lines += [(s.at - begin, f"client   {s.status} from {s.served_by or '-'}")
              for s in samples if s.status >= 500 or s.status == 0]
    v2 = [s.at - begin for s in samples if s.served_by == f"{SERVICE}-v2"]
    if v2:
        lines += [(v2[0], "client   first request served by v2"),
                  (v2[-1], "client   last request served by v2")]
    for at, what in sorted(lines):
        print(f"  {at:7.2f}s  {what}", file=sys.stderr)


def table(profile: Profile, runs: list[Run], rate: float) -> tuple[str, bool]:
    """Every run, then the median and spread (min-max) of each figure."""
    interval, bound = profile.interval, profile.interval * THRESHOLD
    rows = ["| run | outcome | detect (intervals) | restore (intervals) | restore / Flagger "
            "bound | failed / all | failed during rollback |",
            "|---|---|---|---|---|---|---|"]
    for i, run in enumerate(runs, 1):
        rows.append(f"| {i} | {run.outcome} | {run.detect / interval:.2f} | "
                    f"{run.restore / interval:.2f} | {run.restore / bound:.2f} | "
                    f"{run.failed}/{run.total} ({100 * run.failed / run.total:.2f}%) | "
                    f"{run.failed_rollback} |")
    detects = [r.detect / interval for r in runs]
    restores = [r.restore / interval for r in runs]
    shares = [100 * r.failed / r.total for r in runs]
    verdict = (f"Median (min-max) over {len(runs)} run(s): detect "
               f"{statistics.median(detects):.2f} ({min(detects):.2f}-{max(detects):.2f}) "
               f"intervals (target <= 1), restore {statistics.median(restores):.2f} "
               f"({min(restores):.2f}-{max(restores):.2f}) intervals (target <= 2), failed "
               f"{statistics.median(shares):.2f}% ({min(shares):.2f}-{max(shares):.2f}%) of "
               f"all requests (target < 1%); Flagger's bound interval x threshold = "
               f"{bound:g}s (= {THRESHOLD} intervals) before its rollback starts.")
    head = (f"### {profile.name}: {profile.scrape} scrape, {interval:g} s interval, "
            f"{profile.window} check windows, driver tick {profile.tick:g} s\n\n"
            f"A v2 failing 20% of requests, steps {STEPS}, threshold (max_failed_checks) "
            f"{THRESHOLD}, {rate:g} req/s, no retries (every 5xx reaches the client), real "
            "Envoy + Prometheus (bridge rule at the scrape interval) + demo apps. Times "
            "from the client's first 5xx.")
    ok = all(r.outcome == "failed" for r in runs)
    return head + "\n\n" + "\n".join(rows) + f"\n\n{verdict}\n", ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of the tuned profile")
    parser.add_argument("--production-runs", type=int, default=1,
                        help="runs of the production profile (0: skip it)")
    parser.add_argument("--rate", type=float, default=80.0)
    parser.add_argument("--no-write", action="store_true",
                        help="print the results without updating bench/RESULTS.md")
    parser.add_argument("--verbose", action="store_true",
                        help="print each run's timeline (machine, pushes, 5xx) to stderr")
    args = parser.parse_args()
    header = describe()
    sections, ok = [], True
    for profile, count in ((TUNED, args.runs), (PRODUCTION, args.production_runs)):
        if count <= 0:
            continue
        runs = [one_run(profile, args.rate, verbose=args.verbose) for _ in range(count)]
        text, fine = table(profile, runs, args.rate)
        sections.append(text)
        ok = ok and fine
        print(text, flush=True)
    body = header + "\n\n" + "\n".join(sections) + (
        f"\nRun: `.venv/bin/python bench/canary.py --runs {args.runs} --production-runs "
        f"{args.production_runs} --rate {args.rate:g}`\n")
    if not args.no_write:
        write_section("canary", body)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: the same 1,000-service mesh compiled for sidecars and for ambient mode
(Gateway API), interleaved in one run so the ratio is fair on a shared machine.

Run: .venv/bin/python bench/ambient.py [--services 1000] [--runs 5]
Results go to bench/RESULTS.md (section "ambient").
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.compile import phases
from bench.machine import describe, write_section

_CORE = ("validate", "compile", "yaml")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"sidecar": [], "ambient": []}
    for _ in range(args.runs):
        for mode in runs:
            runs[mode].append(phases(args.services, mode=mode))
    rows = ["| mode | objects | validate | compile | YAML | **validate+compile+YAML** "
            "(median, min-max) | per service |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    medians = {}
    for mode, results in runs.items():
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        totals = [sum(r[k] for k in _CORE) for r in results]
        medians[mode] = statistics.median(totals)
        rows.append(f"| {mode} | {int(med['objects']):,} | {med['validate']:.3f} s | "
                    f"{med['compile']:.3f} s | {med['yaml']:.3f} s | "
                    f"**{medians[mode]:.3f} s** ({min(totals):.3f}-{max(totals):.3f}) | "
                    f"{medians[mode] / args.services * 1e3:.3f} ms |")
        print(rows[-1], flush=True)
    rows += ["", f"{args.services:,} services, {args.runs} interleaved runs per mode. Ambient "
             "emits more objects (a Service and a DestinationRule per version, a waypoint per "
             "namespace) and runs the ambient checks; ratio ambient/sidecar = "
             f"**{medians['ambient'] / medians['sidecar']:.2f}x**."]
    write_section("ambient", describe() + "\n\n" + "\n".join(rows))


if __name__ == "__main__":
    main()

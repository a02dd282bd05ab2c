"""Benchmark: program -> YAML for 100, 1,000 and 10,000 services (CPU time per phase and
the whole process's peak memory), beside cdk8s synthesizing the same 1,000-service
manifests (ApiObject, Python).

Each run is a fresh interpreter that imports meshdsl, warms up on 100 services, then runs
one pipeline: the program (builder calls), freezing it into the MeshSpec, validation, and
compile + YAML streamed to a file one object at a time (``render_to``, the two timed
apart). Times are CPU seconds of that process (``time.process_time``), so other work on
the machine slows them less than wall time; the peak is the process's maximum resident
set (``ru_maxrss``): interpreter, imports and all. Every figure is the median of the runs
made for it, with every run and the spread listed. The cdk8s comparison times both tools
*cold* (a fresh interpreter: imports, jsii's node process for cdk8s, then one synth) and
*warm* (again in a process that already did one), in wall time as before.

Run: .venv/bin/python bench/compile.py [--sizes 100,1000,10000] [--runs 3] [--no-cdk8s]
Results replace the "compile" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import describe, write_section
from bench.meshgen import generate
from meshdsl.compile import compile_mesh, pending
from meshdsl.compile.yamltext import dump
from meshdsl.model.base import bulk_build
from meshdsl.validate import has_errors, validate

PHASES = ("program", "build", "validate", "compile", "yaml")
TARGET_SERVICES, TARGET_SECONDS, TARGET_MIB = 10_000, 3.0, 200


def phases(n: int, *, mode: str = "sidecar", out: str = os.devnull) -> dict[str, float]:
    """CPU seconds per phase of one pipeline, the YAML written to ``out`` as it is made."""
    clock = time.process_time
    times = dict.fromkeys(PHASES, 0.0)
    with bulk_build():
        start = clock()
        mesh = generate(n, mode=mode)
        times["program"] = clock() - start
        start = clock()
        spec = mesh.build()
        times["build"] = clock() - start
        start = clock()
        findings = validate(spec)
        times["validate"] = clock() - start
        assert not has_errors(findings), findings[:3]
        objects = written = 0
        with open(out, "w", encoding="utf-8") as handle:
            start = clock()
            for _, make in pending(spec):  # what render_to does, with each half timed
                manifest = make()
                made = clock()
                text = dump(manifest) if objects == 0 else "---\n" + dump(manifest)
                handle.write(text)
                done = clock()
                times["compile"] += made - start
                times["yaml"] += done - made
                written += len(text)
                objects += 1
                start = done
    times["total"] = sum(times[k] for k in PHASES)
    times["objects"], times["bytes"] = objects, written
    return times


_CHILD = """
import json, resource, sys, tempfile
sys.path.insert(0, {root!r})
from bench.compile import phases
phases(100, mode={mode!r})  # warm the imports and caches once
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with tempfile.NamedTemporaryFile(suffix=".yaml") as out:
    result = phases({n}, mode={mode!r}, out=out.name)
result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
result["base_mib"] = base / 1024
print(json.dumps(result))
"""


def fresh_run(n: int, *, mode: str = "sidecar") -> dict[str, float]:
    """One pipeline in a fresh interpreter: its phases and the process's peak memory."""
    code = _CHILD.format(root=str(Path(__file__).resolve().parent.parent), n=n, mode=mode)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=900, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def cdk8s_synth(manifests: list[dict[str, Any]]) -> str:
    import cdk8s

    app = cdk8s.App()
    chart = cdk8s.Chart(app, "mesh")
    for i, m in enumerate(manifests):
        obj = cdk8s.ApiObject(chart, f"o{i}", api_version=m["apiVersion"], kind=m["kind"],
                              metadata=cdk8s.ApiObjectMetadata(
                                  name=m["metadata"]["name"],
                                  namespace=m["metadata"].get("namespace"),
                                  labels=m["metadata"].get("labels")))
        if "spec" in m:
            obj.add_json_patch(cdk8s.JsonPatch.add("/spec", m["spec"]))
    return str(app.synth_yaml())


_COLD = """
import json, sys, time
start = time.perf_counter()
sys.path.insert(0, {root!r})
if {tool!r} == "meshdsl":
    from bench.compile import phases
    phases({n})
    cold = time.perf_counter() - start
    start = time.perf_counter()
    phases({n})
else:
    from bench.compile import cdk8s_synth
    manifests = json.load(open({manifests!r}))
    cdk8s_synth(manifests)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    cdk8s_synth(manifests)
print(json.dumps({{"cold": cold, "warm": time.perf_counter() - start}}))
"""


def cold_and_warm(tool: str, n: int, manifests_file: str) -> dict[str, float]:
    """One fresh interpreter: the first pipeline (with every import) and a second one."""
    code = _COLD.format(root=str(Path(__file__).resolve().parent.parent), tool=tool, n=n,
                        manifests=manifests_file)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=900, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def spread(values: list[float], unit: str = "s", digits: int = 3) -> str:
    """median (min-max) over every run, and the runs themselves."""
    runs = ", ".join(f"{v:.{digits}f}" for v in values)
    return (f"{statistics.median(values):.{digits}f} {unit} ({min(values):.{digits}f}-"
            f"{max(values):.{digits}f}; runs {runs})")


def size_rows(sizes: list[int], runs: int) -> tuple[list[str], dict[int, dict[str, float]]]:
    rows = ["| services | objects | YAML characters | program | build | validate | compile | "
            "YAML | **program -> YAML** CPU (median, min-max) | every run | per service | "
            "**peak RSS** (median; every run) | RSS after imports + warm-up |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    medians: dict[int, dict[str, float]] = {}
    for n in sizes:
        results = [fresh_run(n) for _ in range(runs)]
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        medians[n] = med
        totals = [r["total"] for r in results]
        peaks = [r["peak_mib"] for r in results]
        rows.append(
            f"| {n:,} | {int(med['objects']):,} | {int(med['bytes']):,} | "
            + " | ".join(f"{med[k]:.3f} s" for k in PHASES)
            + f" | **{med['total']:.3f} s** ({min(totals):.3f}-{max(totals):.3f}) | "
            f"{', '.join(f'{t:.3f}' for t in totals)} | {med['total'] / n * 1e3:.3f} ms | "
            f"**{med['peak_mib']:.0f} MiB** ({', '.join(f'{p:.0f}' for p in peaks)}) | "
            f"{med['base_mib']:.0f} MiB |")
        print(rows[-1], flush=True)
    return rows, medians


def growth_lines(medians: dict[int, dict[str, float]]) -> list[str]:
    """Per-service cost at each size against the smallest: 1.00 is perfectly linear."""
    lo = min(medians)
    rows = ["| services | " + " | ".join(PHASES) + " | program -> YAML | peak RSS above "
            "the warm-up, per service |", "|---:|" + "---:|" * (len(PHASES) + 2)]
    for n, med in sorted(medians.items()):
        ratios = [(med[k] / n) / (medians[lo][k] / lo) if medians[lo][k] else 0.0
                  for k in (*PHASES, "total")]
        above = (med["peak_mib"] - med["base_mib"]) * 1024 / n
        rows.append(f"| {n:,} | " + " | ".join(f"{r:.2f}x" for r in ratios)
                    + f" | {above:.1f} KiB |")
    return rows


def verdict(medians: dict[int, dict[str, float]]) -> str:
    med = medians.get(TARGET_SERVICES)
    if med is None:
        return ""
    seconds, mib = med["total"], med["peak_mib"]
    return (f"Target ({TARGET_SERVICES:,} services in < {TARGET_SECONDS:.0f} s and "
            f"< {TARGET_MIB} MiB): {seconds:.2f} s CPU "
            f"({'met' if seconds < TARGET_SECONDS else 'not met'}), {mib:.0f} MiB peak "
            f"({'met' if mib < TARGET_MIB else 'not met'}) in this run.")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-cdk8s", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    header = describe()
    rows, medians = size_rows(sizes, args.runs)
    lines = [*rows, "",
             "Each run is a fresh interpreter (after a 100-service warm-up in it): program = "
             "running the mesh program (builder calls); build = freezing it into the "
             "MeshSpec; compile and YAML = `render_to` writing each object to a file as it "
             "is compiled (timed apart). CPU seconds of the process; peak RSS = its "
             "`ru_maxrss`, the whole process.", "",
             "Growth: per-service cost at each size over the cost at the smallest "
             "(1.00x = linear):", "", *growth_lines(medians)]
    if verdict(medians):
        lines += ["", verdict(medians)]
    print("\n".join(lines[len(rows):]), flush=True)
    if not args.no_cdk8s:
        manifests = compile_mesh(generate(1000).build())
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(manifests, handle)
        ours, theirs = [], []
        for _ in range(args.runs):  # alternating, so both see the same load
            ours.append(cold_and_warm("meshdsl", 1000, handle.name))
            theirs.append(cold_and_warm("cdk8s", 1000, handle.name))
        Path(handle.name).unlink()
        lines += ["", f"1,000 services ({len(manifests):,} objects), each run in a fresh "
                  "interpreter, wall time, the two tools alternating in the same run of this "
                  "script:", "",
                  "| | cold (imports + first run) | warm (second run) |", "|---|---|---|",
                  f"| meshdsl: program + build + validate + compile + YAML | "
                  f"{spread([r['cold'] for r in ours])} | {spread([r['warm'] for r in ours])} |",
                  f"| cdk8s 2.x `ApiObject` synth of the same manifests (objects given, no "
                  f"validation) | {spread([r['cold'] for r in theirs])} | "
                  f"{spread([r['warm'] for r in theirs])} |", "",
                  "Ratio cdk8s / meshdsl (medians): cold **"
                  f"{statistics.median(r['cold'] for r in theirs) / statistics.median(r['cold'] for r in ours):.1f}x**"
                  ", warm **"
                  f"{statistics.median(r['warm'] for r in theirs) / statistics.median(r['warm'] for r in ours):.1f}x**"
                  " (meshdsl does more work: it runs the program, builds the model and "
                  "validates it too)."]
        print("\n".join(lines[-7:]))
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    lines += ["", f"Load average when the script ended: {load}."]
    write_section("compile", header + "\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()

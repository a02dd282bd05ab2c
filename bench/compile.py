"""Benchmark: program -> YAML for 100, 1,000 and 10,000 services, with peak memory,
beside cdk8s synthesizing the same 1,000-service manifests (ApiObject, Python).

Every figure is the median of the runs made for it, with every run and the spread listed.
The pipeline runs as ``meshctl render`` and the compile worker run it (inside
``bulk_build``). Both tools are timed *cold* (a fresh interpreter: imports, jsii's node
process for cdk8s, then one synth) and *warm* (again in a process that already did one).

Run: .venv/bin/python bench/compile.py [--sizes 100,1000,10000] [--runs 3] [--no-cdk8s]
Results replace the "compile" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import describe, write_section
from bench.meshgen import generate
from meshdsl.compile import compile_mesh, to_yaml
from meshdsl.model.base import bulk_build
from meshdsl.validate import has_errors, validate


def phases(n: int, *, mode: str = "sidecar") -> dict[str, float]:
    """Seconds per phase: the user's program (builder calls), freezing the model,
    validation, compilation and YAML rendering."""
    times: dict[str, float] = {}
    with bulk_build():
        start = time.perf_counter()
        mesh = generate(n, mode=mode)
        times["program"] = time.perf_counter() - start
        start = time.perf_counter()
        spec = mesh.build()
        times["build"] = time.perf_counter() - start
        start = time.perf_counter()
        findings = validate(spec)
        times["validate"] = time.perf_counter() - start
        assert not has_errors(findings), findings[:3]
        start = time.perf_counter()
        manifests = compile_mesh(spec)
        times["compile"] = time.perf_counter() - start
        start = time.perf_counter()
        text = to_yaml(manifests)
        times["yaml"] = time.perf_counter() - start
    times["total"] = sum(times[k] for k in ("program", "build", "validate", "compile", "yaml"))
    times["objects"] = len(manifests)
    times["bytes"] = len(text)
    return times


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


def peak_mib(fn: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


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


def spread(values: list[float]) -> str:
    """median (min-max) over every run, and the runs themselves."""
    runs = ", ".join(f"{v:.3f}" for v in values)
    return (f"{statistics.median(values):.3f} s ({min(values):.3f}-{max(values):.3f}; "
            f"runs {runs})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-cdk8s", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    header = describe()
    rows = ["| services | objects | program | build | validate | compile | YAML | "
            "**program -> YAML** (median, min-max) | every run | per service | peak memory |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    per_service = {}
    for n in sizes:
        phases(min(n, 100))  # warm the imports and caches once
        runs = [phases(n) for _ in range(args.runs)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        totals = [r["total"] for r in runs]
        peak = peak_mib(lambda n=n: phases(n))
        per_service[n] = med["total"] / n
        rows.append(f"| {n:,} | {int(med['objects']):,} | {med['program']:.3f} s | "
                    f"{med['build']:.3f} s | {med['validate']:.3f} s | {med['compile']:.3f} s | "
                    f"{med['yaml']:.3f} s | **{med['total']:.3f} s** ({min(totals):.3f}-"
                    f"{max(totals):.3f}) | {', '.join(f'{t:.3f}' for t in totals)} | "
                    f"{med['total'] / n * 1e3:.3f} ms | {peak:.0f} MiB |")
        print(rows[-1], flush=True)
    lines = [*rows, "",
             "Warm, in one process (after a 100-service warm-up): program = running the mesh "
             "program (builder calls); build = freezing it into the MeshSpec; peak memory = "
             "tracemalloc peak of one more whole pipeline (Python allocations)."]
    if len(sizes) > 1:
        lo, hi = min(sizes), max(sizes)
        lines.append(f"Growth: the per-service cost of program -> YAML at {hi:,} services is "
                     f"{per_service[hi] / per_service[lo]:.2f}x the cost at {lo:,} "
                     "(1.0 = perfectly linear).")
    if not args.no_cdk8s:
        manifests = compile_mesh(generate(1000).build())
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(manifests, handle)
        ours = [cold_and_warm("meshdsl", 1000, handle.name) for _ in range(args.runs)]
        theirs = [cold_and_warm("cdk8s", 1000, handle.name) for _ in range(args.runs)]
        Path(handle.name).unlink()
        lines += ["", f"1,000 services ({len(manifests):,} objects), each run in a fresh "
                  "interpreter, the two tools alternating in the same run of this script:", "",
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
    write_section("compile", header + "\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()

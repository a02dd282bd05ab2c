"""Benchmark: validate + compile + YAML for 100, 1,000 and 10,000 services, with peak
memory, beside cdk8s synthesizing the same 1,000-service manifests (ApiObject, Python).

Run: .venv/bin/python bench/compile.py [--sizes 100,1000,10000] [--no-cdk8s]
Results are appended to bench/RESULTS.md (section "compile").
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import describe, write_section
from bench.meshgen import generate
from meshdsl.compile import compile_mesh, to_yaml
from meshdsl.validate import has_errors, validate


def phases(n: int, *, mode: str = "sidecar") -> dict[str, float]:
    """Seconds per phase: the user's program (builder calls), freezing the model,
    validation, compilation and YAML rendering."""
    times: dict[str, float] = {}
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
    times["objects"] = len(manifests)
    times["bytes"] = len(text)
    return times


def ours(n: int) -> None:
    phases(n)


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


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Median seconds over ``repeat`` runs, and peak MiB of one traced run."""
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    gc.collect()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statistics.median(times), peak / 2**20, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--no-cdk8s", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = ["| services | objects | program | build | validate | compile | YAML | "
            "**validate+compile+YAML** | per service | peak memory |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    per_service = {}
    for n in sizes:
        runs = [phases(n) for _ in range(3 if n <= 1000 else 1)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        _, peak, _ = timed(lambda n=n: ours(n), 1)
        core = med["validate"] + med["compile"] + med["yaml"]
        per_service[n] = core / n
        rows.append(f"| {n:,} | {int(med['objects']):,} | {med['program']:.3f} s | "
                    f"{med['build']:.3f} s | {med['validate']:.3f} s | {med['compile']:.3f} s | "
                    f"{med['yaml']:.3f} s | **{core:.3f} s** | {core / n * 1e3:.3f} ms | "
                    f"{peak:.0f} MiB |")
        print(rows[-1], flush=True)
    lines = rows
    lines.append("")
    lines.append("program = running the mesh program (builder calls); build = freezing it into "
                 "the MeshSpec; peak memory = tracemalloc peak of the whole pipeline.")
    if len(sizes) > 1:
        lo, hi = min(sizes), max(sizes)
        lines.append(f"Growth: per-service validate+compile+YAML cost at {hi:,} services is "
                     f"{per_service[hi] / per_service[lo]:.2f}x the cost at {lo:,} "
                     "(1.0 = perfectly linear).")
    if not args.no_cdk8s and 1000 in sizes:
        spec = generate(1000).build()
        manifests = compile_mesh(spec)
        ours_s = statistics.median(
            sum(p[k] for k in ("program", "build", "validate", "compile", "yaml"))
            for p in (phases(1000) for _ in range(3)))
        cdk_s, _, cdk_yaml = timed(lambda: cdk8s_synth(manifests), 1)
        lines += ["", "| 1,000 services | seconds |", "|---|---:|",
                  f"| meshdsl: program + build + validate + compile + YAML | {ours_s:.3f} |",
                  f"| cdk8s 2.x `ApiObject` synth of the same {len(manifests):,} manifests "
                  f"(objects given, no validation) | {cdk_s:.3f} |",
                  "", f"Ratio: cdk8s / meshdsl = **{cdk_s / ours_s:.1f}x** "
                  "(meshdsl does more work: it builds the model and validates it too)."]
        assert cdk_yaml.count("kind:") >= len(manifests)
        print("\n".join(lines[-6:]))
    write_section("compile", describe() + "\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()

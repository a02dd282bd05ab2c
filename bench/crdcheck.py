"""Benchmark: the offline CRD check (OpenAPI schema + CEL rules) on 1,000 services.

"Extra" is what ``meshctl validate``/``render`` add for the check: loading the bundled
CRDs, building the validators and compiling the CEL rules of the kinds in use (cold, once
per process), then checking every compiled object. A second row adds one Gateway API
HTTPRoute per service (Gateway API's CRDs carry the most rules).
Target: < 1 s extra for 1,000 services.

Run: .venv/bin/python bench/crdcheck.py [--repeat 5]
Results are written to bench/RESULTS.md (section "crdcheck").
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import describe, write_section
from bench.meshgen import generate
from meshdsl.compile import compile_mesh
from meshdsl.crdcheck import Catalog, check_mesh
from meshdsl.crds import bundled
from meshdsl.model.spec import MeshSpec
from meshdsl.validate import validate


def routes(spec: MeshSpec) -> list[dict[str, Any]]:
    return [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": svc.name, "namespace": svc.namespace},
             "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": svc.name}],
                      "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                 "backendRefs": [{"name": svc.name, "port": 8080,
                                                  "weight": 90}]}]}}
            for svc in spec.services]


def once(spec: MeshSpec, manifests: list[dict[str, Any]]) -> tuple[float, float]:
    """(cold, warm) seconds: a fresh catalog from the bundles, then the same one again."""
    bundled.cache_clear()
    gc.collect()
    start = time.perf_counter()
    catalog = Catalog(bundled())
    findings = check_mesh(spec, manifests, catalog)
    cold = time.perf_counter() - start
    assert findings == [], findings[:3]
    start = time.perf_counter()
    check_mesh(spec, manifests, catalog)
    return cold, time.perf_counter() - start


def baseline(spec: MeshSpec) -> float:
    """Seconds of what validate/render already do for the same mesh (validate + compile),
    measured in the same run: the machine is shared, so the ratio is the stable figure."""
    gc.collect()
    start = time.perf_counter()
    validate(spec)
    compile_mesh(spec)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    spec = generate(1000).build()
    compiled = compile_mesh(spec)
    base = statistics.median(baseline(spec) for _ in range(args.repeat))
    rows = ["| objects checked | cold: load CRDs + build + check (median, min-max) | "
            "warm: check only (median, min-max) | cold / (validate + compile) |",
            "|---|---:|---:|---:|"]
    for label, manifests in (("DSL output: 1,000 services", compiled),
                             ("DSL output + 1,000 HTTPRoutes", compiled + routes(spec))):
        load = os.getloadavg()
        runs = [once(spec, manifests) for _ in range(args.repeat)]
        cold = [r[0] for r in runs]
        warm = [r[1] for r in runs]
        checked = sum(m["apiVersion"].count(".") > 0 for m in manifests)
        rows.append(f"| {label} ({checked:,} custom resources, {len(manifests):,} objects; "
                    f"load {load[0]:.1f}) | **{statistics.median(cold):.3f} s** "
                    f"({min(cold):.3f}-{max(cold):.3f}) | {statistics.median(warm):.3f} s "
                    f"({min(warm):.3f}-{max(warm):.3f}) | "
                    f"{statistics.median(cold) / base:.2f}x |")
        print(rows[-1], flush=True)
    notes = ["", f"validate + compile of the same 1,000 services in this run: {base:.3f} s "
             "(median).", f"{args.repeat} runs each. Cold includes parsing the bundled CRDs (JSON), "
             "building the jsonschema-rs validators and compiling the CEL rules of the kinds "
             "used; warm reuses the catalog (what a long-running reconciler sees). "
             "Target: < 1 s extra for 1,000 services."]
    write_section("crdcheck", describe() + "\n\n" + "\n".join(rows + notes))


if __name__ == "__main__":
    main()

"""Benchmark: apply a 1,000-service mesh (~5,000 objects) to a real local kube-apiserver
1.20.2 — first apply, no-op re-apply, one-weight change — beside kubectl 1.20.2
``apply --server-side`` of the same rendered YAML. Both tools run against one API server
started for the benchmark; each run applies the objects into namespaces of its own
(``<ns>-<suffix>``), so no run finds another's objects — but the server (etcd, its caches)
is warm after the first run, not fresh for each.

Write requests are counted by the API server itself (``apiserver_request_total`` on
/metrics, non-dry-run APPLY/PATCH/POST/PUT/DELETE on the mesh's resources), so both tools
are measured the same way.

Run: .venv/bin/python bench/apply.py [--services 1000] [--workers 8] [--no-kubectl]
Results go to bench/RESULTS.md (section "apply").
"""

from __future__ import annotations

import argparse
import copy
import functools
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import describe, write_section
from bench.meshgen import generate
from meshdsl.compile import compile_mesh, to_yaml
from meshdsl.compile.manifest import MESH_LABEL, Manifest
from meshdsl.model.service import Workload
from meshdsl.model.spec import MeshSpec
from reconciler.runtime.apply import Options, apply
from reconciler.targets.kube import KubeTarget, with_list_keys
from reconciler.testing.apiserver import LocalApiServer

_WRITE_VERBS = {"APPLY", "PATCH", "POST", "PUT", "DELETE", "DELETECOLLECTION"}
_RESOURCES = {"namespaces", "services", "deployments", "configmaps", "destinationrules",
              "virtualservices", "authorizationpolicies"}
_METRIC = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$', re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def mesh_spec(services: int) -> MeshSpec:
    """The shared benchmark mesh, with a v1 Deployment per service, so that each service
    is a Service, a Deployment, a DestinationRule, a VirtualService and an
    AuthorizationPolicy (5 objects)."""
    spec = generate(services).build()
    deployed = [s.model_copy(update={"workloads": [
        Workload(version="v1", image=f"example/{s.name}:1.0", container_port=8080)]})
        for s in spec.services]
    return spec.model_copy(update={"services": deployed})


def server_requests(api: LocalApiServer) -> Counter[str]:
    """Requests the API server received for the mesh's resources, as ``write``/``read``."""
    text = subprocess_free_get(api, "/metrics")
    counts: Counter[str] = Counter()
    for match in _METRIC.finditer(text):
        labels = dict(_LABEL.findall(match["labels"]))
        if labels.get("resource") not in _RESOURCES or labels.get("subresource"):
            continue
        if labels.get("dry_run"):
            counts["dry-run"] += int(float(match["value"]))
        elif labels.get("verb") in _WRITE_VERBS:
            counts["write"] += int(float(match["value"]))
        else:
            counts["read"] += int(float(match["value"]))
    return counts


def subprocess_free_get(api: LocalApiServer, path: str) -> str:
    import httpx

    with httpx.Client(verify=str(api.ca_file), trust_env=False, timeout=30) as client:
        response = client.get(f"{api.url}{path}",
                              headers={"Authorization": f"Bearer {api.token}"})
        response.raise_for_status()
        return response.text


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu(api: LocalApiServer) -> dict[str, float]:
    """CPU seconds so far: the API server + etcd, this process, and its children (kubectl)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return {"server": sum(_process_cpu(pid) for pid in api.pids.values()),
            "client": own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime}


def measure(api: LocalApiServer, fn: Callable[[], Any]) -> tuple[float, Counter[str], Any]:
    """Wall seconds, server-counted requests (plus ``cpu-server``/``cpu-client`` in ms)."""
    before, cpu_before = server_requests(api), _cpu(api)
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    cpu_after = _cpu(api)
    counts = server_requests(api) - before
    for part in ("server", "client"):
        counts[f"cpu-{part}"] = round(1000 * (cpu_after[part] - cpu_before[part]))
    return seconds, counts, result


def renamed(manifests: list[Manifest], suffix: str) -> tuple[str, list[Manifest]]:
    """The same objects in namespaces of their own (``<ns>-<suffix>``), for another run on
    the same API server; the mesh is renamed too."""
    mesh = f"bench-{suffix}"
    out: list[Manifest] = []
    for m in copy.deepcopy(manifests):
        meta = m["metadata"]
        if m["kind"] == "Namespace":
            meta["name"] = f"{meta['name']}-{suffix}"
        elif meta.get("namespace"):
            meta["namespace"] = f"{meta['namespace']}-{suffix}"
        if MESH_LABEL in meta.get("labels", {}):
            meta["labels"][MESH_LABEL] = mesh
        out.append(m)
    return mesh, out


Runs = dict[str, tuple[float, Counter[str]]]


def run_ours(api: LocalApiServer, desired: list[Manifest], changed: list[Manifest],
             suffix: str, workers: int) -> Runs:
    mesh, first = renamed(desired, suffix)
    _, second = renamed(changed, suffix)
    out: Runs = {}

    def once(manifests: list[Manifest]) -> int:
        # end to end: kubeconfig, discovery, reads, plan, dry run, writes
        with KubeTarget.from_kubeconfig(str(api.kubeconfig), pool_size=workers + 4) as t:
            return apply(t, manifests, mesh=mesh, options=Options(workers=workers)).write_calls

    for label, manifests in (("first apply", first), ("no-op re-apply", first),
                             ("one weight changed", second)):
        seconds, requests, writes = measure(api, functools.partial(once, manifests))
        out[label] = (seconds, requests)
        print(f"meshdsl  {label:20s} {seconds:8.2f} s  server: {dict(requests)}  "
              f"client-counted writes: {writes}  load {os.getloadavg()[0]:.1f}", flush=True)
    return out


def run_kubectl(api: LocalApiServer, desired: list[Manifest], changed: list[Manifest],
                suffix: str) -> Runs:
    _, first = renamed(desired, suffix)
    _, second = renamed(changed, suffix)
    out: Runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = {"desired": Path(tmp) / "desired.yaml", "changed": Path(tmp) / "changed.yaml"}
        # kubectl 1.20 SSA needs the explicit `protocol: TCP` meshdsl's target adds too
        files["desired"].write_text(to_yaml([with_list_keys(m) for m in first]))
        files["changed"].write_text(to_yaml([with_list_keys(m) for m in second]))

        def once(path: Path) -> None:
            result = subprocess.run(
                api.kubectl_argv("apply", "--server-side", "--field-manager=kubectl-bench",
                                 "-f", str(path)),
                capture_output=True, text=True, check=False, timeout=7200)
            if result.returncode != 0:
                raise RuntimeError(f"kubectl failed: {result.stderr[-2000:]}")

        for label, key in (("first apply", "desired"), ("no-op re-apply", "desired"),
                           ("one weight changed", "changed")):
            seconds, requests, _ = measure(api, functools.partial(once, files[key]))
            out[label] = (seconds, requests)
            print(f"kubectl  {label:20s} {seconds:8.2f} s  server: {dict(requests)}  "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    return out


def spread(values: list[float], unit: str = "") -> str:
    """Median (min-max) of ``values``."""
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.2f}{unit}"
    return f"{med:.2f}{unit} ({min(values):.2f}-{max(values):.2f})"


def median_run(runs: list[Runs], label: str) -> tuple[float, Counter[str]]:
    """The repetition with the median time for ``label`` (its request counts go with it)."""
    ordered = sorted((r[label] for r in runs), key=lambda x: x[0])
    return ordered[(len(ordered) - 1) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--no-kubectl", action="store_true")
    parser.add_argument("--repeat", type=int, default=3,
                        help="repetitions per tool, alternating; the median and spread "
                        "of all of them are reported")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()

    start = time.perf_counter()
    spec = mesh_spec(args.services)
    desired = compile_mesh(spec)
    compile_s = time.perf_counter() - start
    first = spec.services[0]
    changed = compile_mesh(spec, weights={(first.namespace, first.name):
                                          {"v1": 70, "v2": 20, "v3": 10}})
    kinds = Counter(m["kind"] for m in desired)
    print(f"{args.services} services -> {len(desired)} objects {dict(kinds)} "
          f"(build + compile {compile_s:.2f} s)", flush=True)

    ours_runs: list[Runs] = []
    kubectl_runs: list[Runs] = []
    loads: list[float] = []
    with LocalApiServer() as api:
        api.install_crds()
        # warm up the server (first use of each kind builds its schema converters), unmeasured
        warm = compile_mesh(mesh_spec(20))
        run_ours(api, warm, warm, "warm", args.workers)
        if not args.no_kubectl:
            run_kubectl(api, warm, warm, "kwarm")
        print("--- warm-up done; measured runs follow", flush=True)
        for rep in range(args.repeat):
            # alternate who goes first, so that neither always meets a bigger etcd
            order = ("ours", "kubectl") if rep % 2 == 0 else ("kubectl", "ours")
            for tool in order:
                loads.append(os.getloadavg()[0])
                if tool == "ours":
                    ours_runs.append(run_ours(api, desired, changed, f"m{rep}", args.workers))
                elif not args.no_kubectl:
                    kubectl_runs.append(run_kubectl(api, desired, changed, f"k{rep}"))
    labels = list(ours_runs[0])
    rows = ["| run | meshdsl | server writes | CPU s (server + client) | kubectl 1.20.2 "
            "`apply --server-side` | server writes | CPU s (server + client) | "
            "kubectl / meshdsl |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]

    def cpu(requests: Counter[str]) -> str:
        return f"{requests['cpu-server'] / 1000:.1f} + {requests['cpu-client'] / 1000:.1f}"

    for label in labels:
        seconds = [r[label][0] for r in ours_runs]
        _, requests = median_run(ours_runs, label)
        if kubectl_runs:
            k_seconds = [r[label][0] for r in kubectl_runs]
            _, k_requests = median_run(kubectl_runs, label)
            # the ratio within each repetition (same server, same minute), then its median
            ratios = [k[label][0] / o[label][0] for o, k in zip(ours_runs, kubectl_runs,
                                                                strict=False)]
            rows.append(f"| {label} | {spread(seconds, ' s')} | {requests['write']:,} | "
                        f"{cpu(requests)} | {spread(k_seconds, ' s')} | "
                        f"{k_requests['write']:,} | {cpu(k_requests)} | "
                        f"**{spread(ratios, 'x')}** |")
        else:
            rows.append(f"| {label} | {spread(seconds, ' s')} | {requests['write']:,} | "
                        f"{cpu(requests)} | n/a | n/a | n/a | n/a |")
    reads = "; ".join(f"{label}: " + ", ".join(f"{r[label][1]['read']} reads / "
                                                f"{r[label][1]['dry-run']} dry-run / "
                                                f"{r[label][1]['write']} writes"
                                                for r in ours_runs) for label in labels)
    every = "; ".join(
        f"{tool} {label}: " + ", ".join(f"{r[label][0]:.2f}" for r in runs)
        for tool, runs in (("meshdsl", ours_runs), ("kubectl", kubectl_runs)) if runs
        for label in runs[0])
    body = "\n".join([
        describe(),
        "",
        f"{args.services:,} services ({len(desired):,} objects: "
        + ", ".join(f"{n:,} {k}" for k, n in sorted(kinds.items()))
        + f"), on one local kube-apiserver 1.20.2 + etcd 3.4, warmed up by an unmeasured "
        "20-service apply with each tool; each repetition applies the same objects in "
        "namespaces of its own, meshdsl and kubectl alternating who goes first; median "
        f"(min-max) of {args.repeat} repetitions per tool, and the median of the ratios "
        f"taken within each repetition. meshdsl with {args.workers} workers, timed "
        "end to end (kubeconfig, discovery, reads, plan, server dry run of every write, "
        f"writes), compile excluded ({compile_s:.2f} s to build + compile the mesh); "
        "kubectl gets the rendered YAML. Writes are counted by the API server "
        "(`apiserver_request_total`, non-dry-run write verbs on the mesh's resources).",
        "",
        *rows,
        "",
        f"meshdsl requests per repetition (server-counted): {reads}.",
        "",
        f"Every repetition, seconds: {every}.",
        "",
        f"Load average while it ran: {min(loads):.1f} to {max(loads):.1f} (2 cores shared with "
        "other work). CPU s = CPU seconds used by kube-apiserver + etcd, and by the client "
        "(meshdsl's Python process, or kubectl).",
    ])
    print(body)
    if not args.no_write:
        write_section("apply", body)


if __name__ == "__main__":
    main()

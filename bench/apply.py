"""Benchmark: apply a 1,000-service mesh (~5,000 objects) to a real local kube-apiserver
1.20.2 — first apply, no-op re-apply, one-weight change — beside kubectl 1.20.2
``apply --server-side`` of the same rendered YAML, each on a fresh API server.

Write requests are counted by the API server itself (``apiserver_request_total`` on
/metrics, non-dry-run APPLY/PATCH/POST/PUT/DELETE on the mesh's resources), so both tools
are measured the same way.

Run: .venv/bin/python bench/apply.py [--services 1000] [--workers 8] [--no-kubectl]
Results go to bench/RESULTS.md (section "apply").
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import describe, write_section  # noqa: E402
from bench.meshgen import generate  # noqa: E402
from meshdsl.compile import compile_mesh, to_yaml  # noqa: E402
from meshdsl.compile.manifest import Manifest  # noqa: E402
from meshdsl.model.service import Workload  # noqa: E402
from meshdsl.model.spec import MeshSpec  # noqa: E402
from reconciler.runtime.apply import Options, apply  # noqa: E402
from reconciler.targets.kube import KubeTarget, with_list_keys  # noqa: E402
from reconciler.testing.apiserver import LocalApiServer  # noqa: E402

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


def measure(api: LocalApiServer, fn: Callable[[], Any]) -> tuple[float, Counter[str], Any]:
    before = server_requests(api)
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    after = server_requests(api)
    return seconds, after - before, result


def fresh_server() -> LocalApiServer:
    api = LocalApiServer()
    api.start()
    api.install_crds()
    return api


def run_ours(desired: list[Manifest], changed: list[Manifest], mesh: str, workers: int
             ) -> dict[str, tuple[float, Counter[str], int]]:
    out: dict[str, tuple[float, Counter[str], int]] = {}
    with fresh_server() as api:
        def once(manifests: list[Manifest]) -> int:
            # end to end: kubeconfig, discovery, reads, plan, dry run, writes
            with KubeTarget.from_kubeconfig(str(api.kubeconfig), pool_size=workers + 4) as t:
                result = apply(t, manifests, mesh=mesh, options=Options(workers=workers))
                return result.write_calls

        for label, manifests in (("first apply", desired), ("no-op re-apply", desired),
                                 ("one weight changed", changed)):
            seconds, requests, writes = measure(api, lambda m=manifests: once(m))
            out[label] = (seconds, requests, writes)
            print(f"meshdsl  {label:20s} {seconds:8.2f} s  server: {dict(requests)}  "
                  f"client-counted writes: {writes}", flush=True)
    return out


def run_kubectl(desired: list[Manifest], changed: list[Manifest]
                ) -> dict[str, tuple[float, Counter[str], int]]:
    out: dict[str, tuple[float, Counter[str], int]] = {}
    with fresh_server() as api, tempfile.TemporaryDirectory() as tmp:
        files = {"desired": Path(tmp) / "desired.yaml", "changed": Path(tmp) / "changed.yaml"}
        # kubectl 1.20 SSA needs the explicit `protocol: TCP` meshdsl's target adds too
        files["desired"].write_text(to_yaml([with_list_keys(m) for m in desired]))
        files["changed"].write_text(to_yaml([with_list_keys(m) for m in changed]))

        def once(path: Path) -> int:
            result = subprocess.run(
                api.kubectl_argv("apply", "--server-side", "--field-manager=kubectl-bench",
                                 "-f", str(path)),
                capture_output=True, text=True, check=False, timeout=7200)
            if result.returncode != 0:
                raise RuntimeError(f"kubectl failed: {result.stderr[-2000:]}")
            return len(result.stdout.splitlines())

        for label, key in (("first apply", "desired"), ("no-op re-apply", "desired"),
                           ("one weight changed", "changed")):
            seconds, requests, lines = measure(api, lambda k=key: once(files[k]))
            out[label] = (seconds, requests, lines)
            print(f"kubectl  {label:20s} {seconds:8.2f} s  server: {dict(requests)}",
                  flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--no-kubectl", action="store_true")
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

    ours = run_ours(desired, changed, spec.name, args.workers)
    theirs = run_kubectl(desired, changed) if not args.no_kubectl else {}

    rows = ["| run | meshdsl | server writes | kubectl 1.20.2 `apply --server-side` | "
            "server writes | kubectl / meshdsl |",
            "|---|---:|---:|---:|---:|---:|"]
    for label, (seconds, requests, _) in ours.items():
        if label in theirs:
            k_seconds, k_requests, _ = theirs[label]
            rows.append(f"| {label} | {seconds:.2f} s | {requests['write']:,} | "
                        f"{k_seconds:.2f} s | {k_requests['write']:,} | "
                        f"**{k_seconds / seconds:.1f}x** |")
        else:
            rows.append(f"| {label} | {seconds:.2f} s | {requests['write']:,} | – | – | – |")
    reads = ", ".join(f"{label}: {r['read']} reads, {r['dry-run']} dry-run"
                      for label, (_, r, _) in ours.items())
    body = "\n".join([
        describe(),
        "",
        f"{args.services:,} services ({len(desired):,} objects: "
        + ", ".join(f"{n:,} {k}" for k, n in sorted(kinds.items()))
        + f"), one fresh kube-apiserver 1.20.2 + etcd 3.4 per tool on the same machine; "
        f"meshdsl with {args.workers} workers, timed end to end (kubeconfig, discovery, "
        "LIST, plan, server dry run of every write, writes), compile excluded "
        f"({compile_s:.2f} s to build + compile the mesh); kubectl gets the rendered YAML. "
        "Writes are counted by the API server (`apiserver_request_total`, non-dry-run "
        "write verbs on the mesh's resources).",
        "",
        *rows,
        "",
        f"meshdsl requests (server-counted): {reads}.",
    ])
    print(body)
    if not args.no_write:
        write_section("apply", body)


if __name__ == "__main__":
    main()

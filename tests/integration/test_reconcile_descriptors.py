"""The reconciler holds a bounded number of descriptors and API connections over many
applies (issue #19: it used to keep one connection per worker thread that ever ran, and
jammed with "Too many open files" after ~330 pushes).

One reconciler process, with its descriptor limit lowered to 256, runs 500 passes against
the real kube-apiserver: every tenth a new commit (real Git, the real sandbox, a changed
VirtualService), the others drift checks that write nothing. Open descriptors and sockets
are sampled along the way; they must stay under a bound and not grow, and the last commit
must be the one applied and live.

The process is a subprocess (this file run as a script), so the test runner's own limit
is untouched.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from meshdsl.compile.manifest import ResourceKey
from reconciler.testing.apiserver import LocalApiServer

pytestmark = pytest.mark.integration

PASSES = 500
COMMIT_EVERY = 10
FD_LIMIT = 256
NET = "networking.istio.io"


def _soak(kubeconfig: str, root: Path) -> dict[str, object]:
    """The reconciler side: runs in the subprocess with the lowered limit."""
    from reconciler.runtime.deploy import KubeDeployer
    from reconciler.runtime.loop import Reconciler, Settings
    from reconciler.runtime.sandbox import Limits, Sandbox
    from reconciler.runtime.status import ClusterStore
    from reconciler.sources.git import GitSource
    from reconciler.targets.kube import KubeTarget
    from reconciler.testing.gitops import GitServer, mesh_program
    from reconciler.testing.observe import descriptors

    name = f"fds-{os.getpid()}"
    git = GitServer(root / "git")
    kube = KubeTarget.from_kubeconfig(kubeconfig, attempts=2)
    store = ClusterStore(KubeTarget.from_kubeconfig(kubeconfig, attempts=2), name)
    sandbox = Sandbox(Limits(timeout=30.0))
    sandbox.prepare()
    rec = Reconciler(Settings(name=name, poll_interval=None, drift_interval=None,
                              backoff_initial=0.05, backoff_max=0.5),
                     source=GitSource(str(git.origin), cache_dir=root / "cache"),
                     deployer=KubeDeployer(kube, prune=True), store=store, sandbox=sandbox)
    samples: list[tuple[int, int, int]] = []
    last = ""
    failures: list[str] = []
    try:
        for i in range(PASSES):
            if i % COMMIT_EVERY == 0:
                share = 1 + i // COMMIT_EVERY
                last = git.push({"mesh.py": mesh_program(name, name,
                                                         weights=(100 - share, share))},
                                f"push {i}")
                status = rec.reconcile({"webhook"}, max_attempts=3)
            else:
                status = rec.reconcile({"drift"}, max_attempts=3)
            if status.last is not None and status.last.failure is not None:
                failures.append(f"pass {i}: {status.last.failure.describe()}")
            if i % 25 == 0 or i == PASSES - 1:
                fds, sockets = descriptors()
                samples.append((i, fds, sockets))
        vs = kube.get(ResourceKey(NET, "VirtualService", name, "web")) or {}
        route = vs.get("spec", {}).get("http", [{}])[-1].get("route", [])
        return {"samples": samples, "last": last, "applied": rec.status.applied_revision,
                "weights": [r.get("weight") for r in route],
                "expected": [100 - (1 + (PASSES - 1) // COMMIT_EVERY),
                             1 + (PASSES - 1) // COMMIT_EVERY],
                "passes": rec.passes, "failures": failures[:5],
                "opened": kube.transport.connections_opened,
                "idle": kube.transport.idle_connections,
                "writes_kept": len(kube.writes)}
    finally:
        sandbox.close()


def test_500_applies_keep_descriptors_and_connections_bounded(apiserver: LocalApiServer,
                                                              tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, __file__, str(apiserver.kubeconfig), str(tmp_path)],
                          capture_output=True, text=True, timeout=1500, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    samples = result["samples"]
    assert result["passes"] >= PASSES and not result["failures"], result["failures"]
    assert result["applied"] == result["last"]                 # the last commit is applied
    assert result["weights"] == result["expected"]             # and live
    peak_fds = max(fds for _, fds, _ in samples)
    peak_sockets = max(s for _, _, s in samples)
    assert peak_fds < 100, samples          # far below the limit of 256 the process had
    assert peak_sockets <= 2 * 16 + 8, samples   # two pools of 16 + the sandbox's
    # flat: the second half never holds more than the first half's peak plus a margin
    half = len(samples) // 2
    assert max(f for _, f, _ in samples[half:]) <= max(f for _, f, _ in samples[:half]) + 8
    # connections are reused, not opened per apply: far fewer than the requests made
    assert result["opened"] < 200, result["opened"]
    assert result["idle"] <= 16


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
    print(json.dumps(_soak(sys.argv[1], Path(sys.argv[2]))))

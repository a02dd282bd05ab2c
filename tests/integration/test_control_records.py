"""Control and status records in the real API server: no lost request, no wedge (#12.4).

- Alice (rollback) and Bob (suspend) write control requests at the same time, many times:
  every request lands (compare-and-swap on the ConfigMap's resourceVersion), and Alice's
  rollback survives Bob's suspend.
- A control record overwritten with invalid JSON (or by someone else's ConfigMap) is
  reported in the status, does not stop the next commit from being applied, and
  ``meshctl resume`` replaces it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from meshdsl.compile.manifest import CONFIG_MAP
from reconciler.runtime.deploy import KubeDeployer
from reconciler.runtime.loop import Reconciler, Settings
from reconciler.runtime.sandbox import Limits, Sandbox
from reconciler.runtime.status import ClusterStore, request_control
from reconciler.sources.git import GitSource
from reconciler.targets.kube import KubeTarget
from reconciler.testing.apiserver import LocalApiServer
from reconciler.testing.gitops import GitServer, mesh_program

pytestmark = pytest.mark.integration

ROUNDS = 15


def test_concurrent_suspend_and_rollback_never_lose_one(apiserver: LocalApiServer) -> None:
    name = f"race-{uuid.uuid4().hex[:6]}"
    config = str(apiserver.kubeconfig)
    rollbacks: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def alice() -> None:
        store = ClusterStore(KubeTarget.from_kubeconfig(config), name)
        start.wait()
        for i in range(ROUNDS):
            done = request_control(store, suspended=True, rollback=f"{i:040x}",
                                   reason="alice", requested_by="alice")
            rollbacks.append(done.generation)

    def bob() -> None:
        store = ClusterStore(KubeTarget.from_kubeconfig(config), name)
        start.wait()
        for _ in range(ROUNDS):
            request_control(store, suspended=True, rollback=None, reason="bob",
                            requested_by="bob")

    def guarded(fn: object) -> threading.Thread:
        def run() -> None:
            try:
                fn()  # type: ignore[operator]
            except BaseException as exc:  # reported below
                errors.append(exc)
        return threading.Thread(target=run)

    threads = [guarded(alice), guarded(bob)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    final = ClusterStore(KubeTarget.from_kubeconfig(config), name).load_control()
    assert final.generation == 2 * ROUNDS            # no request overwrote another
    assert final.rollback == f"{ROUNDS - 1:040x}"    # Alice's last rollback survived Bob
    assert final.rollback_generation == max(rollbacks)
    assert final.wants_rollback(observed=0)


def test_a_corrupt_control_record_does_not_wedge_the_reconciler(
        apiserver: LocalApiServer, tmp_path: Path) -> None:
    name = f"wedge-{uuid.uuid4().hex[:6]}"
    config = str(apiserver.kubeconfig)
    admin = KubeTarget.from_kubeconfig(config)
    store = ClusterStore(KubeTarget.from_kubeconfig(config, attempts=2), name)
    git = GitServer(tmp_path / "git")
    sandbox = Sandbox(Limits(timeout=30.0))
    sandbox.prepare()
    rec = Reconciler(Settings(name=name, poll_interval=None, drift_interval=None,
                              backoff_initial=0.05, backoff_max=0.5),
                     source=GitSource(str(git.origin), cache_dir=tmp_path / "cache"),
                     deployer=KubeDeployer(KubeTarget.from_kubeconfig(config), prune=True),
                     store=store, sandbox=sandbox)
    try:
        git.push({"mesh.py": mesh_program(name, name, weights=(90, 10))}, "v1")
        assert rec.reconcile({"webhook"}, max_attempts=3).last is not None
        # someone overwrites the control record with invalid JSON, and no labels
        admin.apply({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": f"meshdsl-control-{name}",
                                  "namespace": store.namespace},
                     "data": {"control.json": "{not json"}}, force=True)
        fixed = git.push({"mesh.py": mesh_program(name, name, weights=(50, 50))}, "v2")
        status = rec.reconcile({"webhook"}, max_attempts=3)
        assert status.applied_revision == fixed                  # not wedged
        problems = [a.failure.message for a in status.history
                    if a.failure is not None and "control" in a.failure.message]
        assert problems and f"meshdsl-control-{name}" in problems[0]
        shown = subprocess.run(
            [sys.executable, "-c", "from reconciler.cli import main; main()", "resume",
             "--name", name, "--kubeconfig", config, "--wait", "0"],
            capture_output=True, text=True, timeout=120, check=False)
        assert shown.returncode == 0, shown.stderr
        repaired = store.load_control()
        assert not repaired.problem and repaired.generation > status.observed_control
        raw = admin.get(CONFIG_MAP.key(store.namespace, f"meshdsl-control-{name}"))
        assert raw is not None
        assert json.loads(raw["data"]["control.json"])["suspended"] is False
        assert rec.reconcile({"manual"}, max_attempts=3).observed_control == (
            repaired.generation)
    finally:
        sandbox.close()

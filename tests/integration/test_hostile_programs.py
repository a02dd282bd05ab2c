"""The hostile corpus through the real ``meshctl reconcile --once``: a real Git repository,
the real sandbox, the real kube-apiserver. Each attack is one commit; the reconciler's
environment holds a secret, its kubeconfig is a real file, a listener on 127.0.0.1 waits
for the secret. Afterwards a normal commit in the same repository applies."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from meshdsl.compile.manifest import ResourceKey
from reconciler.runtime.status import DiskStore, Result
from reconciler.targets.kube import KubeTarget
from reconciler.testing.apiserver import LocalApiServer
from reconciler.testing.gitops import GitServer, mesh_program
from tests.hostile_corpus import ATTACKS, evidence, render

NET = "networking.istio.io"

pytestmark = pytest.mark.integration

MESHCTL = str(Path(sys.executable).parent / "meshctl")
SECRET = "hostile-secret-" + uuid.uuid4().hex[:8]


def _alive(marker: str) -> bool:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def test_hostile_corpus_through_meshctl_reconcile(apiserver: LocalApiServer,
                                                  tmp_path: Path) -> None:
    name = f"hostile-{uuid.uuid4().hex[:6]}"
    git = GitServer(tmp_path / "git")
    outside = tmp_path / "outside"
    outside.mkdir()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    nonce = str(time.time_ns())[-9:]
    values = {"port": listener.getsockname()[1], "secret": SECRET, "outside": outside,
              "kubeconfig": apiserver.kubeconfig, "nonce": nonce, "name": name}
    env = {**os.environ, "MESHDSL_WEBHOOK_SECRET": SECRET,
           "KUBECONFIG": str(apiserver.kubeconfig), "AWS_SECRET_ACCESS_KEY": SECRET}
    store = DiskStore(tmp_path / "state")

    def reconcile(program: str) -> tuple[Result, str, float]:
        sha = git.push({"mesh.py": program}, "change")
        started = time.monotonic()
        done = subprocess.run(
            [MESHCTL, "reconcile", "--once", "--repo", str(git.origin), "--name", name,
             "--kubeconfig", str(apiserver.kubeconfig), "--state", "disk", "--state-dir",
             str(tmp_path / "state"), "--cache-dir", str(tmp_path / "cache"),
             "--listen", "off", "--program-timeout", "5s", "--program-memory-mb", "512"],
            env=env, capture_output=True, text=True, timeout=120, check=False)
        took = time.monotonic() - started
        assert "Traceback" not in done.stdout + done.stderr
        status = store.load_status()
        assert status is not None and status.last is not None, done.stdout + done.stderr
        assert status.last.revision == sha
        failure = status.last.failure
        return status.last.result, (failure.message if failure else ""), took

    try:
        seen = {}
        for attack in ATTACKS:
            result, message, took = reconcile(render(attack, **values))
            assert took < 60, f"{attack} took {took:.0f} s"
            assert SECRET not in message, f"{attack} leaked the secret"
            if "EVIDENCE" in message:
                seen[attack] = evidence(message)
            elif attack in ("detached_child", "output_flood"):
                assert result is not Result.FAILED, f"{attack}: {message}"
            else:
                assert result is Result.FAILED, attack
                seen[attack] = {"failure": message}
        with pytest.raises(TimeoutError):
            listener.accept()                        # nothing ever connected
    finally:
        listener.close()

    assert seen["environ"]["any"] is False
    assert "MESHDSL_WEBHOOK_SECRET" not in seen["environ"]["self"]  # type: ignore[operator]
    assert all(str(v).startswith("blocked:") for v in seen["kubeconfig"].values())
    assert str(seen["write_outside"]["outside"]).startswith("blocked:")
    assert not (outside / "escaped.txt").exists()
    assert str(seen["network"]["loopback"]).startswith("blocked:")
    assert 0 < int(seen["fork_bomb"]["forked"]) < 64          # type: ignore[call-overload]
    assert "MemoryError" in str(seen["memory_bomb"]["failure"])
    assert "more than 16 MiB" in str(seen["result_flood"]["failure"])
    assert "did not finish" in str(seen["deaf_to_signals"]["failure"])
    deadline = time.monotonic() + 5
    while _alive(nonce) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(nonce), "a detached child outlived its run"

    admin = KubeTarget.from_kubeconfig(str(apiserver.kubeconfig))
    assert admin.get(ResourceKey("rbac.authorization.k8s.io", "ClusterRoleBinding", "",
                                 "pwned")) is None
    result, message, _ = reconcile(mesh_program(name, name))
    assert result is not Result.FAILED, message
    assert admin.get(ResourceKey(NET, "VirtualService", name, "web")) is not None

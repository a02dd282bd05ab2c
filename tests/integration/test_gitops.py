"""The GitOps reconciler end to end: real Git (bare repo + post-receive hook), the real
sandbox, and the real kube-apiserver.

Every wait is bounded. Each test uses its own mesh, namespace and reconciler name, so they
share the session's API server without seeing each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from meshdsl.compile.manifest import CONFIG_MAP, GroupKind, ResourceKey
from reconciler.cli import _register, app
from reconciler.ports import Source
from reconciler.processes.ports import free_port
from reconciler.runtime.deploy import KubeDeployer, LocalDeployer
from reconciler.runtime.install import InstallOptions, manifests
from reconciler.runtime.leader import LeaderElector, api_client
from reconciler.runtime.loop import Reconciler, Settings
from reconciler.runtime.sandbox import Limits, Sandbox
from reconciler.runtime.status import ClusterStore, Result, Status
from reconciler.sources.directory import DirectorySource
from reconciler.sources.git import GitSource
from reconciler.sources.watch import DirectoryWatcher
from reconciler.sources.webhook import (
    GENERIC_HEADER,
    DeliveryCheck,
    WebhookServer,
    sign_generic,
    sign_github,
)
from reconciler.targets.kube import Forbidden, KubeTarget
from reconciler.testing.apiserver import LocalApiServer
from reconciler.testing.gitops import BROKEN, GitServer, mesh_program
from reconciler.testing.local_gitops import LocalGitOps, local_program
from reconciler.testing.tcpproxy import TcpProxy
from reconciler.testing.wait import wait_for
from tests.integration.conftest import unique

pytestmark = pytest.mark.integration

SECRET = b"integration-secret"
VS = "networking.istio.io/v1"
NET = "networking.istio.io"
MESHCTL = str(Path(sys.executable).parent / "meshctl")



class Harness:
    """An in-process reconciler (webhook, sandbox, kube deployer, cluster store) and a Git
    server whose hook notifies it."""

    def __init__(self, apiserver: LocalApiServer, root: Path, *, name: str | None = None,
                 kubeconfig: Path | None = None, self_heal: bool = True,
                 impersonate: str | None = None, leader: LeaderElector | None = None,
                 source: Source | None = None, program_timeout: float = 2.0,
                 allowed_signers: Path | None = None) -> None:
        self.name = name or unique("gitops")
        self.namespace = self.mesh = self.name
        self.create_namespace = True
        config = str(kubeconfig or apiserver.kubeconfig)
        self.admin_config = str(apiserver.kubeconfig)
        self.kube = KubeTarget.from_kubeconfig(config, impersonate=impersonate, attempts=2)
        self.admin = KubeTarget.from_kubeconfig(str(apiserver.kubeconfig))
        self.store = ClusterStore(KubeTarget.from_kubeconfig(config, impersonate=impersonate,
                                                             attempts=2), self.name)
        self.reader = ClusterStore(self.admin, self.name)
        self.refused: list[DeliveryCheck] = []
        self.server = WebhookServer(secret=SECRET, on_push=lambda e: self.rec.on_push(e),
                                    on_rejected=self.refused.append)
        self.server.start()
        self.git = GitServer(root / "git", webhook_url=f"{self.server.url}/webhook",
                             secret=SECRET)
        self.source = source or GitSource(str(self.git.origin), cache_dir=root / "cache")
        self.sandbox = Sandbox(Limits(timeout=program_timeout))
        self.rec = Reconciler(
            Settings(name=self.name, poll_interval=None, drift_interval=None,
                     self_heal=self_heal, control_interval=0.2, backoff_initial=0.2,
                     backoff_max=1.0, allowed_signers=allowed_signers),
            source=self.source, deployer=KubeDeployer(self.kube, prune=True),
            store=self.store, sandbox=self.sandbox, leader=leader)
        self.server.health, self.server.ready = self.rec.healthy, self.rec.ready
        self.server.metrics = self.rec.telemetry.exposition

    def start(self) -> Harness:
        self.sandbox.prepare()
        self.rec.start()
        return self

    def stop(self) -> None:
        self.rec.stop()
        self.server.stop()
        self.sandbox.close()

    def push(self, program: str, message: str = "change") -> str:
        return self.git.push({"mesh.py": program}, message)

    def good(self, weights: tuple[int, int] = (90, 10)) -> str:
        return mesh_program(self.mesh, self.namespace, weights=weights,
                            create_namespace=self.create_namespace)

    def status(self) -> Status:
        status = self.reader.load_status()
        assert status is not None
        return status

    def wait_status(self, predicate: Callable[[Status], bool], what: str,
                    timeout: float = 20.0) -> Status:
        def check() -> Status | None:
            status = self.reader.load_status()
            return status if status is not None and predicate(status) else None
        found: Status = wait_for(check, timeout, what)
        return found

    def wait_applied(self, sha: str, timeout: float = 20.0) -> Status:
        return self.wait_status(lambda s: s.applied_revision == sha and not s.in_progress,
                                f"{sha[:12]} applied", timeout)

    def virtual_service(self, name: str = "web") -> dict[str, Any] | None:
        return self.admin.get(ResourceKey(NET, "VirtualService", self.namespace, name))

    def weights(self, name: str = "web") -> tuple[int, ...]:
        vs = self.virtual_service(name)
        assert vs is not None, f"VirtualService {self.namespace}/{name} does not exist"
        return tuple(int(r["weight"]) for r in vs["spec"]["http"][-1]["route"])


@pytest.fixture
def harness(apiserver: LocalApiServer, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(apiserver, tmp_path).start()
    yield h
    h.stop()


# --- push → applied ------------------------------------------------------------------------


def test_a_push_is_applied_by_its_webhook(harness: Harness) -> None:
    """The reconciler here never polls (``poll_interval=None``): a push is applied because
    its post-receive hook notified it. How fast is measured in ``bench/reconcile.py``."""
    sha = harness.push(harness.good((90, 10)), "first")
    assert "notified the reconciler" in harness.git.last_push_output
    status = harness.wait_applied(sha)
    assert harness.weights() == (90, 10)
    assert status.applied is not None and status.applied.trigger in ("webhook", "start")
    assert status.applied.summary == "first" and status.applied.mesh == harness.mesh

    second = harness.push(harness.good((50, 50)), "half and half")
    status = harness.wait_applied(second)
    assert harness.weights() == (50, 50)
    assert status.applied is not None and status.applied.trigger == "webhook"
    assert status.applied.revision == second


def test_broken_pushes_apply_nothing_then_a_good_push_does(harness: Harness) -> None:
    good = harness.push(harness.good((80, 20)), "good")
    harness.wait_applied(good)
    live = harness.virtual_service()
    assert live is not None
    version = live["metadata"]["resourceVersion"]

    for label, (kind, line, program) in BROKEN.items():
        sha = harness.push(program, label)
        status = harness.wait_status(
            lambda s, sha=sha: s.last is not None and s.last.revision == sha,  # type: ignore[misc]
            f"the {label} to be recorded")
        assert status.last is not None and status.last.result is Result.FAILED, label
        failure = status.last.failure
        assert failure is not None and failure.kind == kind, (label, failure)
        lines = {f"mesh.py:{line}", f"mesh.py:{line + 1}"} if kind == "timeout" else {
            f"mesh.py:{line}"}
        assert failure.location in lines, (label, failure.location)
        assert status.applied_revision == good, label       # the last good state stays
        after = harness.virtual_service()
        assert after is not None and after["metadata"]["resourceVersion"] == version, label

    fixed = harness.push(harness.good((70, 30)), "fixed")
    status = harness.wait_applied(fixed)
    assert harness.weights() == (70, 30)
    results = [(a.summary, a.result) for a in status.history[:6]]
    assert results == [("fixed", Result.APPLIED), ("validation error", Result.FAILED),
                       ("infinite loop", Result.FAILED), ("exception", Result.FAILED),
                       ("syntax error", Result.FAILED), ("good", Result.APPLIED)]


def test_forged_signatures_get_401_and_trigger_nothing(harness: Harness) -> None:
    sha = harness.push(harness.good((90, 10)), "first")
    harness.wait_applied(sha)
    accepted = harness.rec.telemetry.webhooks.labels(harness.name, "accepted")
    before, refused_before = accepted._value.get(), len(harness.refused)

    # the hook signs with the wrong secret: the push lands in Git, the reconciler refuses
    harness.git.configure(f"{harness.server.url}/webhook", b"not-the-secret")
    forged = harness.push(harness.good((10, 90)), "forged")
    assert "answered 401" in harness.git.last_push_output
    body = json.dumps({"ref": "refs/heads/main", "after": forged}).encode()
    with httpx.Client(trust_env=False, timeout=5) as client:
        for headers in ({"X-Hub-Signature-256": sign_github(b"guess", body)},
                        {GENERIC_HEADER: sign_generic(b"guess", body, int(time.time()))},
                        {"X-Gitlab-Token": "guess"}, {}):
            response = client.post(f"{harness.server.url}/webhook", content=body,
                                   headers=headers)
            assert response.status_code == 401, headers
    time.sleep(1.0)
    # every forged delivery (the hook's and the four above) was refused, none let through
    assert len(harness.refused) == refused_before + 5, harness.refused
    assert accepted._value.get() == before
    status = harness.status()
    # Git stays the truth: a pass for another reason — a retry after a slow API call, or
    # the genuine delivery of "first" still queued when "forged" landed — reconciles the
    # branch head, whatever commit that is; what a forged delivery never does is trigger one
    # (the counters above). Without such a pass, the forged commit is not seen at all.
    if status.applied_revision == sha:
        assert [a.revision for a in status.history if a.revision] == [sha]
        assert harness.weights() == (90, 10)
    else:
        assert status.applied_revision == forged

    # the genuine signature of the very same body is accepted
    with httpx.Client(trust_env=False, timeout=5) as client:
        response = client.post(f"{harness.server.url}/webhook", content=body,
                               headers={"X-Hub-Signature-256": sign_github(SECRET, body)})
    assert response.status_code == 202
    harness.wait_applied(forged)
    assert harness.weights() == (10, 90)


def test_only_signed_commits_are_applied(apiserver: LocalApiServer, tmp_path: Path) -> None:
    key = tmp_path / "signer"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dev", "-f",
                    str(key)], check=True, timeout=30)
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"dev@example.com {(tmp_path / 'signer.pub').read_text().strip()}\n")
    h = Harness(apiserver, tmp_path, allowed_signers=signers).start()
    try:
        unsigned = h.push(h.good((90, 10)), "unsigned")
        status = h.wait_status(lambda s: s.last is not None and s.last.revision == unsigned,
                               "the unsigned commit refused")
        assert status.last is not None and status.last.failure is not None
        assert status.last.failure.kind == "verification" and status.applied is None
        assert h.virtual_service() is None
        for key_, value in (("gpg.format", "ssh"), ("user.signingkey", str(key)),
                            ("commit.gpgsign", "true")):
            subprocess.run(["git", "-C", str(h.git.work), "config", key_, value], check=True)
        signed = h.push(h.good((60, 40)), "signed")
        h.wait_applied(signed)
        assert h.weights() == (60, 40)
    finally:
        h.stop()


# --- rollback, suspend ---------------------------------------------------------------------


def _cli(*args: str) -> Any:
    _register()
    return CliRunner().invoke(app, list(args))


def test_rollback_then_resume(harness: Harness, apiserver: LocalApiServer) -> None:
    kc = ["--kubeconfig", str(apiserver.kubeconfig), "--name", harness.name]
    first = harness.push(harness.good((90, 10)), "ninety")
    harness.wait_applied(first)
    second = harness.push(harness.good((50, 50)), "fifty")
    harness.wait_applied(second)

    result = _cli("rollback", first[:8], *kc, "--wait", "20s")
    assert result.exit_code == 0, result.output
    assert harness.weights() == (90, 10)
    status = harness.status()
    assert status.applied is not None and status.applied.result is Result.ROLLED_BACK
    assert status.applied_revision == first and status.suspended
    assert status.suspend_reason is not None and "rolled back to" in status.suspend_reason

    third = harness.push(harness.good((30, 70)), "thirty")
    time.sleep(1.5)
    assert harness.weights() == (90, 10)          # suspended: the push is not applied
    shown = _cli("status", *kc)
    assert shown.exit_code == 0 and "SUSPENDED" in shown.output
    assert "rolled back to" in shown.output

    assert _cli("resume", *kc, "--wait", "20s").exit_code == 0
    harness.wait_applied(third)
    assert harness.weights() == (30, 70)
    history = _cli("history", *kc, "-o", "json")
    entries = json.loads(history.output)
    assert [e["result"] for e in entries[:4]] == ["applied", "rolled-back", "applied",
                                                  "applied"]


def test_suspend_then_resume(harness: Harness, apiserver: LocalApiServer) -> None:
    kc = ["--kubeconfig", str(apiserver.kubeconfig), "--name", harness.name]
    first = harness.push(harness.good((90, 10)), "first")
    harness.wait_applied(first)
    assert _cli("suspend", *kc, "--reason", "change freeze", "--wait", "10s").exit_code == 0
    frozen = harness.push(harness.good((60, 40)), "during the freeze")
    time.sleep(1.5)
    assert harness.weights() == (90, 10)
    status = harness.status()
    assert status.suspended and status.suspend_reason == "change freeze"
    assert _cli("resume", *kc, "--wait", "10s").exit_code == 0
    harness.wait_applied(frozen)
    assert harness.weights() == (60, 40)


def test_rollback_of_an_unknown_revision_is_refused(harness: Harness,
                                                    apiserver: LocalApiServer) -> None:
    harness.wait_applied(harness.push(harness.good(), "first"))
    result = _cli("rollback", "deadbeef", "--kubeconfig", str(apiserver.kubeconfig),
                  "--name", harness.name)
    assert result.exit_code == 2 and "not a revision" in result.output


# --- drift -----------------------------------------------------------------------------


def _tamper(harness: Harness) -> None:
    vs = harness.virtual_service()
    assert vs is not None
    route = vs["spec"]["http"][-1]["route"]
    route[0]["weight"], route[1]["weight"] = 0, 100
    patched = {"apiVersion": VS, "kind": "VirtualService",
               "metadata": {"name": "web", "namespace": harness.namespace},
               "spec": vs["spec"]}
    tamperer = KubeTarget.from_kubeconfig(harness.admin_config, field_manager="kubectl-edit")
    tamperer.apply(patched, force=True)


def test_drift_is_healed(harness: Harness) -> None:
    harness.wait_applied(harness.push(harness.good((90, 10)), "first"))
    _tamper(harness)
    assert harness.weights() == (0, 100)
    harness.rec.trigger("drift")
    status = harness.wait_status(lambda s: bool(s.history) and s.history[0].result is
                                 Result.HEALED, "the drift to be healed")
    assert harness.weights() == (90, 10)
    assert status.drift is not None and status.drift.healed
    assert f"VirtualService/{harness.namespace}/web" in status.drift.objects


def test_report_only_reports_drift_without_writing(apiserver: LocalApiServer,
                                                   tmp_path: Path) -> None:
    h = Harness(apiserver, tmp_path, self_heal=False).start()
    try:
        h.wait_applied(h.push(h.good((90, 10)), "first"))
        _tamper(h)
        writes = h.kube.write_calls
        h.rec.trigger("drift")
        status = h.wait_status(lambda s: s.drift is not None and bool(s.drift.objects),
                               "the drift report")
        assert status.drift is not None and not status.drift.healed
        assert h.weights() == (0, 100)
        assert h.kube.write_calls == writes
    finally:
        h.stop()


# --- persistence, crash, outage --------------------------------------------------------------


def test_a_restarted_reconciler_knows_what_is_applied(apiserver: LocalApiServer,
                                                      tmp_path: Path) -> None:
    h = Harness(apiserver, tmp_path).start()
    sha = h.push(h.good(), "first")
    h.wait_applied(sha)
    h.stop()
    again = Harness(apiserver, tmp_path / "again", name=h.name,
                    source=GitSource(str(h.git.origin), cache_dir=tmp_path / "cache2"))
    try:
        status = again.rec.reconcile({"start"})
        assert status.applied_revision == sha
        assert again.kube.write_calls == 0            # nothing re-applied
        assert len([a for a in status.history if a.result is Result.APPLIED]) == 1
    finally:
        again.stop()


def _start_cli(apiserver: LocalApiServer, repo: Path, name: str, port: int, cache: Path,
               log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MESHDSL_WEBHOOK_SECRET": SECRET.decode()}
    env.pop("KUBECONFIG", None)
    with log.open("ab") as out:
        return subprocess.Popen(
            [MESHCTL, "reconcile", "--repo", str(repo), "--name", name,
             "--kubeconfig", str(apiserver.kubeconfig), "--listen", f"127.0.0.1:{port}",
             "--cache-dir", str(cache), "--interval", "0", "--drift-interval", "0",
             "--lease-duration", "2s"],
            stdout=out, stderr=out, env=env)


def test_sigkill_mid_apply_then_restart_converges(apiserver: LocalApiServer,
                                                  tmp_path: Path) -> None:
    name = unique("killed")
    services = 250                     # 500 objects: the apply takes a few seconds
    port = free_port()
    git = GitServer(tmp_path / "git", webhook_url=f"http://127.0.0.1:{port}/webhook",
                    secret=SECRET)
    admin = KubeTarget.from_kubeconfig(str(apiserver.kubeconfig))
    reader = ClusterStore(admin, name)
    log = tmp_path / "reconciler.log"
    first = git.push({"mesh.py": mesh_program(name, name, services=2)}, "small")
    proc = _start_cli(apiserver, git.origin, name, port, tmp_path / "cache", log)
    try:
        wait_for(lambda: (s := reader.load_status()) is not None
                 and s.applied_revision == first, 60, "the first revision applied")
        big = git.push({"mesh.py": mesh_program(name, name, services=services)}, "big")

        def mid_apply() -> bool:   # DestinationRules are written before VirtualServices
            return len(admin.list(GroupKind(NET, "DestinationRule"), name)) > 2
        wait_for(mid_apply, 60, "the big apply to start", interval=0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        partial = len(admin.list(GroupKind(NET, "VirtualService"), name))
        assert partial < services, "the apply finished before the kill; nothing was tested"
        status = reader.load_status()
        assert status is not None and status.in_progress == big

        proc = _start_cli(apiserver, git.origin, name, port, tmp_path / "cache", log)
        wait_for(lambda: (s := reader.load_status()) is not None
                 and s.applied_revision == big and not s.in_progress, 90,
                 "the big revision applied after the restart", interval=0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(15)
        if proc.poll() is None:
            proc.kill()
    vs_names = sorted(v["metadata"]["name"]
                      for v in admin.list(GroupKind(NET, "VirtualService"), name))
    dr_names = sorted(d["metadata"]["name"]
                      for d in admin.list(GroupKind(NET, "DestinationRule"), name))
    expected = sorted(["web"] + [f"web-{i}" for i in range(1, services)])
    assert vs_names == expected and dr_names == expected          # nothing lost
    inventory = admin.get(CONFIG_MAP.key("meshdsl-system", f"meshdsl-inventory-{name}"))
    assert inventory is not None
    entries = inventory["data"]["entries"].splitlines()
    assert len(entries) == len(set(entries)) == 2 * services + 1   # nothing duplicated
    status = reader.load_status()
    assert status is not None
    applied = [a for a in status.history if a.result is Result.APPLIED]
    assert [a.revision for a in applied] == [big, first]           # recorded once each
    lines = [json.loads(line) for line in log.read_text().splitlines()
             if line.startswith("{")]
    reconciles = [e for e in lines if e.get("event") == "reconcile"]
    assert reconciles and all("revision" in e and "duration_s" in e for e in reconciles)


def test_api_server_outage_is_retried_with_backoff(apiserver: LocalApiServer,
                                                   tmp_path: Path) -> None:
    host, port = apiserver.url.removeprefix("https://").split(":")
    proxy = TcpProxy((host, int(port))).start()
    config = yaml.safe_load(apiserver.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://{proxy.address}"
    kubeconfig = tmp_path / "via-proxy.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    h = Harness(apiserver, tmp_path, kubeconfig=kubeconfig).start()
    try:
        h.wait_applied(h.push(h.good((90, 10)), "before the outage"))
        proxy.cut()
        during = h.push(h.good((40, 60)), "during the outage")

        def retrying() -> bool:
            last = h.rec.status.last
            return bool(last and last.failure and last.failure.transient and last.count >= 2)
        wait_for(retrying, 60, "a few retries")
        assert h.weights() == (90, 10)
        metrics = h.rec.telemetry.exposition()[0].decode()
        assert "meshdsl_reconcile_errors_total" in metrics
        proxy.restore()
        status = h.wait_applied(during, timeout=60)
        assert h.weights() == (40, 60)
        failures = [a for a in status.history if a.failure is not None]
        assert failures and failures[0].failure is not None and failures[0].failure.transient
    finally:
        h.stop()
        proxy.stop()


# --- the local directory loop, metrics ------------------------------------------------------


def test_directory_mode_applies_each_save(apiserver: LocalApiServer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    name = unique("devloop")
    (src / "mesh.py").write_text(mesh_program(name, name, weights=(90, 10)))
    h = Harness(apiserver, tmp_path, name=name,
                source=DirectorySource(src, cache_dir=tmp_path / "snapshots"))
    watcher = DirectoryWatcher(src, lambda: h.rec.trigger("watch"), debounce=0.1).start()
    h.start()
    try:
        h.wait_status(lambda s: s.applied is not None, "the first snapshot applied")
        assert h.weights() == (90, 10)
        (src / "mesh.py").write_text(mesh_program(name, name, weights=(75, 25)))
        h.wait_status(lambda s: s.applied is not None and s.applied.trigger == "watch",
                      "the saved change applied")
        assert h.weights() == (75, 25)
    finally:
        watcher.stop()
        h.stop()


def test_metrics_and_health_endpoints(harness: Harness) -> None:
    sha = harness.push(harness.good(), "first")
    harness.wait_applied(sha)
    broken = harness.push(BROKEN["syntax error"][2], "broken")
    harness.wait_status(lambda s: s.last is not None and s.last.revision == broken,
                        "the broken push recorded")
    with httpx.Client(trust_env=False, timeout=5) as client:
        assert client.get(f"{harness.server.url}/healthz").text.strip() == "ok"
        assert client.get(f"{harness.server.url}/readyz").status_code == 200
        text = client.get(f"{harness.server.url}/metrics").text
    assert (f'meshdsl_applied_revision_info{{mesh="{harness.mesh}",name="{harness.name}",'
            f'revision="{sha}"}} 1.0') in text
    assert f'meshdsl_reconcile_errors_total{{kind="syntax",name="{harness.name}"}} 1.0' in text
    assert "meshdsl_reconcile_duration_seconds_bucket" in text
    assert f'meshdsl_drift_objects{{name="{harness.name}"}}' in text


# --- leader election, in-cluster RBAC ----------------------------------------------------------


def test_leader_election_with_a_lease(apiserver: LocalApiServer) -> None:
    name = unique("lease")
    admin = KubeTarget.from_kubeconfig(str(apiserver.kubeconfig))
    if admin.get(ResourceKey("", "Namespace", "", "meshdsl-system")) is None:
        admin.apply({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": "meshdsl-system"}}, force=True)

    def elector(identity: str) -> LeaderElector:
        return LeaderElector(api_client(str(apiserver.kubeconfig)), namespace="meshdsl-system",
                             name=name, identity=identity, lease_duration=2.0,
                             retry_period=0.2)

    a, b = elector("a").start(), elector("b").start()
    try:
        wait_for(lambda: a.is_leader or b.is_leader, 10, "a leader")
        time.sleep(0.5)
        assert a.is_leader != b.is_leader                        # exactly one
        leader, standby = (a, b) if a.is_leader else (b, a)
        leader.stop(release=True)                               # graceful: handed over
        started = time.monotonic()
        wait_for(lambda: standby.is_leader, 5, "the standby to take over")
        assert time.monotonic() - started < 1.5
        c = elector("c").start()
        try:
            time.sleep(0.6)
            assert not c.is_leader
            standby.stop(release=False)                         # a crash: lease expires
            started = time.monotonic()
            wait_for(lambda: c.is_leader, 10, "c to take over the expired lease")
            assert time.monotonic() - started >= 1.0
        finally:
            c.stop()
    finally:
        a.stop()
        b.stop()


def test_in_cluster_rbac_allows_the_reconcile_and_nothing_else(
        apiserver: LocalApiServer, tmp_path: Path) -> None:
    name = unique("rbac")
    admin = KubeTarget.from_kubeconfig(str(apiserver.kubeconfig))
    # the RBAC is generated for the mesh's namespace; the install creates it (it holds the
    # Role), so the program opens it without creating it
    docs = manifests(InstallOptions(repo="https://git.example.com/mesh.git", name=name,
                                    mesh=name, mesh_namespaces=(name,)))
    for doc in docs:
        admin.apply(doc, force=True)
    sa = "system:serviceaccount:meshdsl-system:meshdsl"
    wait_for(lambda: _can_list_virtualservices(apiserver, sa, name), 60,
             "RBAC to be in effect")

    leader = LeaderElector(api_client(str(apiserver.kubeconfig), impersonate=sa),
                           namespace="meshdsl-system", name=f"meshdsl-reconciler-{name}",
                           lease_duration=3.0, retry_period=0.3)
    h = Harness(apiserver, tmp_path, name=name, impersonate=sa, leader=leader)
    h.create_namespace = False
    leader.on_change(h.rec.on_leadership)
    leader.start()
    h.start()
    try:
        assert leader.wait(10), f"the service account could not take the Lease: " \
                                f"{leader.last_error}"
        sha = h.push(h.good((90, 10)), "as the service account")
        h.wait_applied(sha)
        assert h.weights() == (90, 10)
        status = h.status()
        assert status.last is not None and status.last.failure is None

        as_sa = KubeTarget.from_kubeconfig(str(apiserver.kubeconfig), impersonate=sa,
                                           attempts=1)
        secret = {"apiVersion": "v1", "kind": "Secret",
                  "metadata": {"name": "stolen", "namespace": "default"},
                  "stringData": {"token": "x"}}
        with pytest.raises(Forbidden):
            as_sa.apply(secret, force=True)
        with pytest.raises(Forbidden):
            as_sa.list(GroupKind("", "Secret"), "meshdsl-system")
        with pytest.raises(Forbidden):
            as_sa.apply({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "x", "namespace": "default"}}, force=True)
        with pytest.raises(Forbidden):  # no mesh write outside the mesh's namespaces
            as_sa.list(GroupKind(NET, "VirtualService"), "default")
        with pytest.raises(Forbidden):  # and never a namespace delete
            as_sa.delete(ResourceKey("", "Namespace", "", name))
    finally:
        h.stop()
        leader.stop()


def _can_list_virtualservices(apiserver: LocalApiServer, user: str, namespace: str) -> bool:
    target = KubeTarget.from_kubeconfig(str(apiserver.kubeconfig), impersonate=user,
                                        attempts=1)
    try:
        target.list(GroupKind(NET, "VirtualService"), namespace)
    except Forbidden:
        return False
    return True


# --- the local target: real Envoys ----------------------------------------------------------


def test_local_target_serves_each_push(tmp_path: Path) -> None:
    with LocalGitOps(tmp_path, name="local", program_timeout=5) as rig:
        first = rig.git.push({"mesh.py": local_program("localgitops", "v1")}, "all to v1")
        wait_for(lambda: rig.applied(first), 60, "the local mesh started")
        with httpx.Client(timeout=5, trust_env=False) as client:
            url = rig.local.outbound_url("client", "reviews")
            assert client.get(url).headers["x-served-by"] == "reviews-v1"
            started = time.monotonic()
            second = rig.git.push({"mesh.py": local_program("localgitops", "v2")},
                                  "all to v2")
            wait_for(lambda: client.get(url).headers.get("x-served-by") == "reviews-v2", 30,
                     "Envoy to serve v2", interval=0.02)
            elapsed = time.monotonic() - started
        assert elapsed < 5, f"push → Envoy serving took {elapsed:.2f} s"
        status = wait_for(lambda: (s := rig.store.load_status()) is not None
                          and s.applied_revision == second and s, 10, "the status")
        assert status.applied.summary == "all to v2"
        # report-only drift check: every Envoy runs what was pushed
        assert LocalDeployer(rig.local).deploy({}, mesh="localgitops", heal=False).drift == ()
        # a broken push keeps Envoy serving the last good config
        broken = rig.git.push({"mesh.py": BROKEN["exception"][2]}, "broken")
        wait_for(lambda: (s := rig.store.load_status()) is not None and s.last is not None
                 and s.last.revision == broken, 30, "the broken push recorded")
        with httpx.Client(timeout=5, trust_env=False) as client:
            assert client.get(url).headers["x-served-by"] == "reviews-v2"


def test_once_prints_user_text_literally_and_completely_through_a_pipe(
        apiserver: LocalApiServer, tmp_path: Path) -> None:
    """A commit subject that looks like rich markup is shown as written — after a
    successful apply `reconcile --once` exits 0, no traceback — and `status`/`history`
    read through a pipe print every record whole (no 80-column cut)."""
    name = unique("markup")
    git = GitServer(tmp_path / "git")
    subject = "[/oops] shift [bold]reviews[/bold] to 90/10 " + "and a long tail " * 6
    sha = git.push({"mesh.py": mesh_program(name, name)}, subject)
    env = {**os.environ, "COLUMNS": "80"}
    env.pop("KUBECONFIG", None)
    kube = ["--kubeconfig", str(apiserver.kubeconfig), "--name", name]
    run = subprocess.run(
        [MESHCTL, "reconcile", "--once", "--repo", str(git.origin), *kube,
         "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=120, env=env, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert f'"{subject.strip()}"' in run.stdout
    status = subprocess.run([MESHCTL, "status", *kube], capture_output=True, text=True,
                            timeout=60, env=env, check=False)
    assert status.returncode == 0, status.stderr
    assert f'"{subject.strip()}"' in status.stdout
    history = subprocess.run([MESHCTL, "history", *kube], capture_output=True, text=True,
                             timeout=60, env=env, check=False)
    assert history.returncode == 0, history.stderr
    (row,) = [line for line in history.stdout.splitlines() if line.startswith(sha[:12])]
    assert row.endswith(f'"{subject.strip()}"') and len(row) > 80

"""The reconcile loop's decisions, with a table-driven source, runner and deployer.

The real sandbox, Git and API server are exercised in tests/integration/test_gitops.py;
here every outcome is scripted so each rule of the loop is checked on its own.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.ports import Deployed, DeployError, Revision, SourceError
from reconciler.runtime.loop import Reconciler, Settings
from reconciler.runtime.records import FailureKind, ProgramError
from reconciler.runtime.sandbox import Compiled
from reconciler.runtime.status import (
    Control,
    DiskStore,
    Result,
    Status,
    StoreError,
    request_control,
)
from reconciler.sources.git import VerificationError
from reconciler.sources.webhook import PushEvent, WebhookServer
from tests.unit.runtime.fakes import ManifestTarget

A, B, C = "a" * 40, "b" * 40, "c" * 40


class Source:
    ref = "refs/heads/main"
    signed = True

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.head = tmp, A
        self.failures: list[SourceError] = []
        self.unsigned: set[str] = set()
        self.passed_over: dict[tuple[str, str], list[Revision]] = {}

    def describe(self) -> str:
        return "fake"

    def latest(self) -> Revision:
        if self.failures:
            raise self.failures.pop(0)
        return Revision(id=self.head, ref=self.ref, summary=f"commit {self.head[0]}")

    def ensure(self, revision: str) -> Revision:
        return Revision(id=revision)

    def between(self, since: str, until: str, *, limit: int = 20) -> list[Revision]:
        return self.passed_over.get((since, until), [])[:limit]

    def checkout(self, revision: str) -> Path:
        path = self.tmp / revision
        path.mkdir(exist_ok=True)
        return path

    def verify(self, revision: str, *, allowed_signers: Path) -> str:
        if revision in self.unsigned:
            raise VerificationError(f"commit {revision[:12]} failed signature verification")
        return "Good signature"


class Runner:
    """Revision → output (or failure); counts runs."""

    def __init__(self) -> None:
        self.broken: dict[str, ProgramError] = {}
        self.runs: list[str] = []

    def run(self, checkout: Path, program: str, *, spec: bool = False) -> Compiled:
        self.runs.append(checkout.name)
        if checkout.name in self.broken:
            raise self.broken[checkout.name]
        return Compiled(mesh="demo", manifests=[{"kind": "VirtualService",
                                                 "revision": checkout.name}])


class Deployer(ManifestTarget):
    def __init__(self) -> None:
        super().__init__("fake-target")
        self.deployed: list[tuple[str, bool, bool]] = []   # (revision, heal, dry_run)
        self.errors: list[DeployError] = []
        self.drift: tuple[str, ...] = ()

    def deploy(self, output: dict[str, Any], *, mesh: str, heal: bool,
               dry_run: bool = False, fence: Callable[[], bool] | None = None) -> Deployed:
        if self.errors:
            raise self.errors.pop(0)
        self.deployed.append((output["manifests"][0]["revision"], heal, dry_run))
        healed = bool(self.drift) and heal and not dry_run
        return Deployed(changes={"updated": len(self.drift)}, write_calls=len(self.drift)
                        if healed else 0, drift=self.drift, healed=healed)


class Leader:
    is_leader = True

    def fence(self) -> Callable[[], bool]:
        return lambda: self.is_leader


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Source, Runner, Deployer, DiskStore]:
    return Source(tmp_path / "src"), Runner(), Deployer(), DiskStore(tmp_path / "state")


def make(parts: tuple[Source, Runner, Deployer, DiskStore], **settings: Any) -> Reconciler:
    source, runner, deployer, store = parts
    (source.tmp).mkdir(exist_ok=True)
    return Reconciler(Settings(backoff_initial=0.01, backoff_max=0.05, **settings),
                      source=source, deployer=deployer, store=store, sandbox=runner)


def test_new_revision_is_applied_once(parts: Any) -> None:
    _source, _runner, deployer, store = parts
    rec = make(parts)
    status = rec.reconcile({"webhook"})
    assert status.applied_revision == A and status.applied is not None
    assert status.applied.trigger == "webhook" and status.applied.summary == "commit a"
    assert deployer.deployed == [(A, True, False)]
    rec.reconcile({"poll"})
    assert deployer.deployed == [(A, True, False)]          # unchanged: nothing to do
    assert store.load_status() == rec.status
    assert store.load_output(A) is not None


def test_broken_program_keeps_the_last_good_state(parts: Any) -> None:
    source, runner, deployer, _ = parts
    rec = make(parts)
    rec.reconcile({"start"})
    source.head = B
    runner.broken[B] = ProgramError("invalid syntax", kind=FailureKind.SYNTAX,
                                    location="mesh.py:3", details=("mesh = Mesh('m'",))
    status = rec.reconcile({"webhook"})
    assert status.applied_revision == A
    assert status.last is not None and status.last.result is Result.FAILED
    assert status.last.failure is not None
    assert status.last.failure.describe() == "mesh.py:3: invalid syntax"
    assert status.last.failure.kind == FailureKind.SYNTAX
    assert status.last.failure.details == ("mesh = Mesh('m'",)
    assert deployer.deployed == [(A, True, False)]
    rec.reconcile({"poll"})
    rec.reconcile({"webhook"})
    assert runner.runs.count(B) == 1                          # not run again
    source.head = C
    assert rec.reconcile({"webhook"}).applied_revision == C


def test_unreachable_target_is_retried_with_backoff(parts: Any) -> None:
    _source, runner, deployer, _ = parts
    deployer.errors = [DeployError("connection refused", kind="unreachable", transient=True)
                       for _ in range(3)]
    rec = make(parts)
    started = time.monotonic()
    status = rec.reconcile({"webhook"})
    assert time.monotonic() - started < 5
    assert status.applied_revision == A and status.in_progress is None
    assert runner.runs == [A]                          # the stored output was reused
    assert status.history[0].result is Result.APPLIED
    assert status.history[1].failure is not None and status.history[1].count == 3


def test_rejected_output_waits_for_a_new_commit_or_a_drift_check(parts: Any) -> None:
    _source, _runner, deployer, _ = parts
    deployer.errors = [DeployError("VirtualService rejected", kind="rejected",
                                   transient=False)]
    rec = make(parts)
    status = rec.reconcile({"webhook"})
    assert status.applied is None and status.last is not None
    assert status.last.failure is not None and status.last.failure.kind == "rejected"
    rec.reconcile({"poll"})
    assert deployer.deployed == []
    assert rec.reconcile({"drift"}).applied_revision == A


def test_source_failures_are_retried_and_then_resolved(parts: Any) -> None:
    source, _, _deployer, _ = parts
    rec = make(parts)
    rec.reconcile({"start"})
    source.failures = [SourceError("git fetch failed: connection refused")] * 2
    status = rec.reconcile({"poll"})
    assert status.last == status.applied and status.applied_revision == A
    assert [a.failure.kind for a in status.history if a.failure] == ["source"]


def test_interrupted_apply_resumes_from_the_stored_output(parts: Any, tmp_path: Path) -> None:
    _source, runner, deployer, store = parts
    store.save_output(A, {"mesh": "demo", "manifests": [{"revision": A}]})
    store.save_status(Status(name="default", in_progress=A))
    rec = make(parts)
    status = rec.reconcile({"start"})
    assert status.applied_revision == A and status.in_progress is None
    assert runner.runs == []                                 # the program was not re-run
    assert deployer.deployed == [(A, True, False)]


def test_restart_knows_the_applied_revision(parts: Any) -> None:
    _source, runner, deployer, _store = parts
    make(parts).reconcile({"start"})
    again = make(parts)
    again.reconcile({"poll"})
    assert runner.runs == [A]                  # nothing re-run for the applied revision
    again.reconcile({"start"})                 # a restart re-checks drift with the output
    assert deployer.deployed == [(A, True, False), (A, True, False)]


def test_suspend_and_resume(parts: Any) -> None:
    source, _runner, deployer, store = parts
    rec = make(parts)
    rec.reconcile({"start"})
    store.save_control(Control().request(suspended=True, reason="freeze"))
    source.head = B
    status = rec.reconcile({"webhook"})
    assert status.suspended and status.suspend_reason == "freeze"
    assert status.applied_revision == A
    deployer.drift = ("VirtualService/demo/web",)
    status = rec.reconcile({"drift"})
    assert deployer.deployed[-1] == (A, False, True)             # report only, dry run
    assert status.drift is not None and not status.drift.healed
    store.save_control(store.load_control().request(suspended=False, reason=None))
    status = rec.reconcile({"control"})
    assert not status.suspended and status.applied_revision == B


def test_rollback_reapplies_an_earlier_output_and_suspends(parts: Any) -> None:
    source, runner, _deployer, store = parts
    rec = make(parts)
    rec.reconcile({"start"})
    source.head = B
    rec.reconcile({"webhook"})
    store.save_control(Control().request(suspended=True, rollback=A, reason="rolled back",
                                         requested_by="me@host"))
    status = rec.reconcile({"control"})
    assert status.applied is not None and status.applied.result is Result.ROLLED_BACK
    assert status.applied_revision == A and status.suspended
    assert runner.runs == [A, B]                   # A's stored output, not a re-run
    source.head = C
    assert rec.reconcile({"webhook"}).applied_revision == A
    store.save_control(store.load_control().request(suspended=False, rollback=None))
    assert rec.reconcile({"control"}).applied_revision == C


def test_drift_is_healed_and_recorded(parts: Any) -> None:
    _, _, deployer, _ = parts
    rec = make(parts)
    rec.reconcile({"start"})
    deployer.drift = ("VirtualService/demo/web",)
    status = rec.reconcile({"drift"})
    assert status.history[0].result is Result.HEALED
    assert status.drift is not None and status.drift.healed
    assert rec.telemetry.drift.labels("default")._value.get() == 1


def test_report_only_never_writes(parts: Any) -> None:
    _, _, deployer, _ = parts
    rec = make(parts, self_heal=False)
    rec.reconcile({"start"})
    deployer.drift = ("VirtualService/demo/web",)
    status = rec.reconcile({"drift"})
    assert deployer.deployed[-1] == (A, False, True)
    assert status.history[0].result is Result.APPLIED


def test_unverified_commit_is_not_applied(parts: Any, tmp_path: Path) -> None:
    source, runner, _deployer, _ = parts
    signers = tmp_path / "allowed"
    signers.write_text("")
    source.unsigned.add(A)
    status = make(parts, allowed_signers=signers).reconcile({"start"})
    assert status.applied is None
    assert status.last is not None and status.last.failure is not None
    assert status.last.failure.kind == "verification"
    assert runner.runs == []


def test_standby_replica_does_nothing(parts: Any) -> None:
    source, runner, deployer, store = parts
    leader = Leader()
    leader.is_leader = False
    rec = Reconciler(Settings(), source=source, deployer=deployer, store=store,
                     sandbox=runner, leader=leader)
    (source.tmp).mkdir(exist_ok=True)
    rec.reconcile({"webhook"})
    assert deployer.deployed == [] and store.load_status() is None


def test_pushes_to_other_refs_are_ignored(parts: Any) -> None:
    rec = make(parts)
    assert rec.on_push(PushEvent(ref="refs/heads/feature"))[0] is False
    assert rec.on_push(PushEvent(ref="refs/heads/main"))[0] is True
    assert rec.on_push(PushEvent())[0] is True


def test_a_burst_of_triggers_is_coalesced(parts: Any) -> None:
    source, runner, _deployer, _ = parts

    class Slow(Deployer):
        def deploy(self, output: dict[str, Any], **kw: Any) -> Deployed:
            time.sleep(0.2)
            return super().deploy(output, **kw)

    slow = Slow()
    rec = Reconciler(Settings(poll_interval=None, drift_interval=None), source=source,
                     deployer=slow, store=parts[3], sandbox=runner)
    (source.tmp).mkdir(exist_ok=True)
    rec.start()
    try:
        deadline = time.monotonic() + 5
        while rec.status.applied is None and time.monotonic() < deadline:
            time.sleep(0.01)
        source.head = B
        before = rec.passes
        threads = [threading.Thread(target=rec.trigger, args=("webhook",)) for _ in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 5
        while rec.status.applied_revision != B and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        assert rec.status.applied_revision == B
        assert rec.passes - before <= 3
        assert [d[0] for d in slow.deployed].count(B) == 1
    finally:
        rec.stop()
    assert rec.healthy() == (True, "ok")


def test_max_attempts_bounds_the_retries(parts: Any) -> None:
    _, _, deployer, _ = parts
    deployer.errors = [DeployError("down", kind="unreachable", transient=True)] * 10
    status = make(parts).reconcile({"start"}, max_attempts=3)
    assert status.applied is None
    assert status.last is not None and status.last.failure is not None
    assert status.last.count == 3 and len(deployer.errors) == 7


def test_an_unreadable_status_is_never_overwritten(parts: Any) -> None:
    store: DiskStore = parts[3]
    make(parts).reconcile({"start"})
    saved = store.load_status()
    assert saved is not None
    original = store.load_status
    calls = {"n": 0}

    def flaky() -> Status | None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise StoreError("HTTP 500 reading the status")
        return original()

    store.load_status = flaky  # type: ignore[method-assign]
    status = make(parts).reconcile({"poll"})
    assert status.applied == saved.applied
    kept = original()
    assert kept is not None and kept.applied == saved.applied


def test_commits_passed_over_in_a_burst_are_recorded(parts: Any) -> None:
    source, runner, _deployer, _store = parts
    rec = make(parts)
    rec.reconcile({"webhook"})
    source.head = C
    source.passed_over[(A, C)] = [Revision(id=B, summary="broken")]
    status = rec.reconcile({"webhook"})
    assert [(a.revision, a.result) for a in status.history] == [
        (C, Result.APPLIED), (B, Result.SKIPPED), (A, Result.APPLIED)]
    assert status.history[1].summary == "broken" and B not in runner.runs
    assert status.find(B[:6]) is None        # never live: not a rollback target


def test_internal_failure_turns_readiness_then_liveness_red(parts: Any) -> None:
    """/readyz and /healthz over real HTTP (the webhook server on 127.0.0.1), and
    ``meshctl status`` reading the state directory."""
    source, _runner, deployer, store = parts
    rec = make(parts, poll_interval=None, drift_interval=None, control_interval=0.01,
               internal_limit=2)
    boom = OSError(24, "Too many open files")
    original = deployer.deploy
    failing = {"on": True}

    def deploy(output: dict[str, Any], **kw: Any) -> Deployed:
        if failing["on"]:
            raise boom
        return original(output, **kw)

    deployer.deploy = deploy  # type: ignore[method-assign]
    server = WebhookServer(secret=None, on_push=rec.on_push, health=rec.live,
                           ready=rec.ready).start()

    def probe(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(server.url + path, timeout=5) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    rec.start()
    try:
        assert probe("/readyz")[0] == 200 or not rec.ready()[0]
        deadline = time.monotonic() + 10
        while rec.live()[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        code, why = probe("/readyz")
        assert code == 503 and "Too many open files" in why
        code, why = probe("/healthz")
        assert code == 503 and "internal failures in a row" in why
        assert rec.healthy()[0]     # the loop itself runs on
        shown = subprocess.run(
            [sys.executable, "-c", "from reconciler.cli import main; main()", "status",
             "--state-dir", str(store.directory)], capture_output=True, text=True,
            timeout=60, check=False)
        assert "INTERNAL ERROR" in shown.stdout and "Too many open files" in shown.stdout
        stored = store.load_status()
        assert stored is not None and stored.last is not None
        assert stored.last.failure is not None and stored.last.failure.kind == "internal"
        assert "Too many open files" in stored.last.failure.message
        failing["on"] = False                 # the cause goes away: the loop recovers
        deadline = time.monotonic() + 20
        while not rec.ready()[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert probe("/readyz")[0] == 200 and probe("/healthz")[0] == 200
        assert rec.status.applied_revision == source.head
    finally:
        rec.stop()
        server.stop()


def test_corrupt_records_are_reported_and_do_not_block_the_next_commit(parts: Any) -> None:
    source, _runner, _deployer, store = parts
    rec = make(parts)
    rec.reconcile({"webhook"})
    (store.directory / "control.json").write_text("{oops")
    source.head = B
    status = rec.reconcile({"webhook"}, max_attempts=2)
    assert status.applied_revision == B
    reported = [a for a in status.history if a.failure and "control record" in
                a.failure.message]
    assert len(reported) == 1 and "meshctl resume" in reported[0].failure.message  # type: ignore[union-attr]
    request_control(store, suspended=True, reason="repaired", rollback=None)
    assert rec.reconcile({"manual"}).suspended

    (store.directory / "status.json").write_text("[]")      # a status that is not ours
    fresh = make(parts)
    source.head = C
    fresh.reconcile({"resume"})
    status = fresh.reconcile({"webhook"}, max_attempts=2)
    assert any(a.failure and "stored status could not be used" in a.failure.message
               for a in status.history)
    assert store.load_status() is not None                  # replaced by a good one

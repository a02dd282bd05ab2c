"""meshctl status/history/rollback/suspend/resume against a state directory on disk."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reconciler.cli import _register, app
from reconciler.cli.options import parse_duration
from reconciler.runtime.status import Attempt, DiskStore, Failure, Result, Status

A, B, C = "a1" + "0" * 38, "b2" + "0" * 38, "c3" + "0" * 38


def attempt(rev: str, result: Result = Result.APPLIED, summary: str = "",
            failure: Failure | None = None) -> Attempt:
    return Attempt(revision=rev, trigger="webhook", started_at="2024-05-01T10:00:00.000+00:00",
                   duration=0.42, result=result, summary=summary, mesh="shop",
                   changes={"created": 2, "updated": 1}, failure=failure)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    status = (Status(name="default", source="/srv/git/mesh.git refs/heads/main",
                     target="kube https://127.0.0.1:6443")
              .record(attempt(A, summary="first"))
              .record(attempt(B, summary="second"))
              .record(attempt(C, Result.FAILED, "broken", Failure(
                  "syntax", "syntax error in mesh.py: '(' was never closed",
                  location="mesh.py:3", details=("mesh = Mesh('x'",)))))
    DiskStore(tmp_path).save_status(status)
    return tmp_path


def cli(*args: str) -> tuple[int, str]:
    _register()
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_status_text_shows_applied_failure_and_location(state: Path) -> None:
    code, out = cli("status", "--state-dir", str(state))
    assert code == 0, out
    assert B in out and '"second"' in out
    assert "FAILED" in out and "mesh.py:3: syntax error" in out
    assert "nothing was applied" in out
    assert "auto-sync    on" in out


def test_status_json_and_history(state: Path) -> None:
    code, out = cli("status", "--state-dir", str(state), "-o", "json")
    assert code == 0
    data = json.loads(out)
    assert data["applied"]["revision"] == B and data["last"]["failure"]["location"] == (
        "mesh.py:3")
    code, out = cli("history", "--state-dir", str(state))
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("REVISION") and len(lines) == 4
    assert lines[1].startswith(C[:12]) and "syntax: mesh.py:3" in lines[1]


def test_missing_status_is_a_clear_error(tmp_path: Path) -> None:
    code, out = cli("status", "--state-dir", str(tmp_path / "none"))
    assert code == 2 and "no reconciler named 'default'" in out


def test_suspend_resume_write_control_generations(state: Path) -> None:
    assert cli("suspend", "--state-dir", str(state), "--reason", "freeze")[0] == 0
    control = DiskStore(state).load_control()
    assert (control.generation, control.suspended, control.reason) == (1, True, "freeze")
    assert cli("resume", "--state-dir", str(state))[0] == 0
    control = DiskStore(state).load_control()
    assert (control.generation, control.suspended) == (2, False)
    code, out = cli("suspend", "--state-dir", str(state), "--wait", "0.3s")
    assert code == 1 and "no reconciler acted" in out


def test_rollback_resolves_a_prefix_and_waits_for_the_reconciler(state: Path) -> None:
    store = DiskStore(state)

    def reconciler() -> None:        # stands in for the running loop
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            control = store.load_control()
            if control.rollback:
                status = store.load_status()
                assert status is not None
                done = status.record(attempt(control.rollback, Result.ROLLED_BACK))
                store.save_status(replace(done, observed_control=control.generation,
                                          suspended=True))
                return
            time.sleep(0.05)

    thread = threading.Thread(target=reconciler)
    thread.start()
    code, out = cli("rollback", A[:6], "--state-dir", str(state), "--wait", "10s")
    thread.join()
    assert code == 0, out
    assert "rolled back" in out
    control = store.load_control()
    assert control.rollback == A and control.suspended
    assert "rolled back to a10000000000" in (control.reason or "")


@pytest.mark.parametrize(("args", "message"), [
    (["rollback", "c3000"], "not a revision this reconciler applied"),   # it failed
    (["rollback", "ffff"], "not a revision"),
    (["rollback", "a1"], "at least 4 characters"),
])
def test_rollback_refusals(state: Path, args: list[str], message: str) -> None:
    code, out = cli(*args, "--state-dir", str(state))
    assert code == 2 and message in out


def test_reconcile_argument_errors(tmp_path: Path) -> None:
    code, out = cli("reconcile")
    assert code == 2 and "exactly one of --repo" in out
    code, out = cli("reconcile", "--repo", "x", "--dir", str(tmp_path))
    assert code == 2
    code, out = cli("reconcile", "--dir", str(tmp_path / "missing"), "--target", "kube")
    assert code == 2 and "not a directory" in out
    code, out = cli("reconcile", "--repo", "x", "--branch", "a", "--tag", "b")
    assert code == 2 and "exclusive" in out


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("10s", 10), ("1m", 60),
                                               ("1.5h", 5400), ("30", 30), ("0", 0)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text, what="x") == seconds


def _save_rollout(state: Path) -> Any:
    """A rollout of shop/reviews saved beside the status; its state."""
    from meshdsl.model import Mesh
    from meshdsl.model.canary import SuccessRate
    from reconciler.delivery import machine
    from reconciler.runtime.rollout_store import DiskRolloutStore

    mesh = Mesh("shop", namespace="shop")
    reviews = mesh.service("reviews", versions=["v1", "v2"])
    reviews.route(to=reviews.v1)
    plan = reviews.canary(target="v2", stable="v1", steps=[10, 100],
                          checks=[SuccessRate(99)])
    started, _ = machine.start(plan, B, 1000.0)
    DiskRolloutStore.in_state_dir(state).save(started, expected_generation=None)
    return started


def test_status_lists_the_rollouts_kept_beside_it(state: Path) -> None:
    started = _save_rollout(state)

    code, out = cli("status", "--state-dir", str(state))
    assert code == 0, out
    assert "rollouts" in out and "shop/reviews" in out and "initializing" in out
    code, out = cli("status", "--state-dir", str(state), "-o", "json")
    data = json.loads(out)
    assert data["rollouts"] == [{"service": "shop/reviews", "phase": "initializing",
                                 "stage": "initializing", "target": "v2", "stable": "v1",
                                 "weights": {"v1": 100, "v2": 0}, "reason": started.reason}]

    (state / "rollouts" / "shop" / "reviews.json").write_text("{not json")
    code, out = cli("status", "--state-dir", str(state))
    assert code == 0 and "unreadable" in out and "reviews.json" in out


def test_status_reports_broken_files_and_goes_on(state: Path) -> None:
    _save_rollout(state)
    (state / "rollouts" / "shop" / "api.json").write_bytes(b"\xff\xfe{")
    (state / "rollouts" / "shop" / "web.json").write_text('{"generation": 1, "sta')
    code, out = cli("status", "--state-dir", str(state))
    assert code == 0, out
    assert "shop/reviews" in out                        # the readable one is still shown
    assert "api.json" in out and "not UTF-8" in out and "web.json" in out

    for broken in (b"\xff\xfe{", b'{"name": "default", "hist', b'{"history": 5}'):
        (state / "status.json").write_bytes(broken)
        code, out = cli("status", "--state-dir", str(state))
        assert code == 2 and "Traceback" not in out
        assert "cannot read the status" in out and "shop/reviews" in out

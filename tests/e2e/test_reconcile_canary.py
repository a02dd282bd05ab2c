"""Progressive delivery through ``meshctl reconcile`` itself: Git pushes start canaries.

A real bare repository whose post-receive hook notifies ``meshctl reconcile --target
local`` (a subprocess), which runs the program in its sandbox, deploys the rollout view to
real Envoys and demo apps, and judges each step on the Envoys' own stats (no Prometheus:
the local default). Traffic goes through the ingress gateway on 127.0.0.1. Every wait is
bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.delivery.phases import Phase, RolloutState
from reconciler.demo.apps import DEMO_APP
from reconciler.demo.traffic import TrafficGenerator
from reconciler.processes.lifecycle import terminate
from reconciler.processes.ports import free_port
from reconciler.runtime.rollout_store import DiskRolloutStore
from reconciler.testing.gitops import GitServer
from reconciler.testing.wait import wait_for
from tests.rollouts import assert_resumed, past_first_step

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MESHCTL = str(Path(sys.executable).parent / "meshctl")
SECRET = "e2e-secret"
NS, SERVICE = "shop", "reviews"


def program(versions: dict[str, str], *, routed: str, canary: tuple[str, str] | None = None
            ) -> str:
    """A mesh program: ``reviews`` with ``versions`` (name -> demo app flags), the gateway
    routing to ``routed``, and optionally a canary plan ``(target, stable)``."""
    lines = [
        "import sys",
        "from meshdsl import Mesh",
        "from meshdsl.model.canary import SuccessRate",
        "",
        f"mesh = Mesh('rollouts', namespace={NS!r})",
        f"reviews = mesh.service({SERVICE!r}, port=9080, versions={list(versions)!r})",
    ]
    for version, flags in versions.items():
        lines.append(
            f"reviews.run_locally({version!r}, command=[sys.executable, {str(DEMO_APP)!r}, "
            f"'--name', '{{service}}', '--version', '{{version}}', '--port', '{{port}}', "
            f"*{flags.split()!r}])")
    lines += ["gateway = mesh.gateway('front')", "gateway.http('*')",
              f"gateway.routes('front', hosts=['*']).route(to=reviews.{routed})"]
    if canary is not None:
        target, stable = canary
        lines.append(
            f"reviews.canary(target={target!r}, stable={stable!r}, steps=[20, 50, 100], "
            "interval='2s', checks=[SuccessRate(99, interval='4s')], min_requests=5, "
            "no_data_limit=5, max_failed_checks=2)")
    return "\n".join(lines) + "\n"


V1 = program({"v1": ""}, routed="v1")
V2 = program({"v1": "", "v2": ""}, routed="v2", canary=("v2", "v1"))
V3_BAD = program({"v2": "", "v3": "--error-rate 0.5"}, routed="v3", canary=("v3", "v2"))



class Reconciler:
    """``meshctl reconcile --target local`` tracking a GitServer, as a subprocess."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port, self.gateway = free_port(), free_port()
        self.state = root / "state"
        self.log = root / "reconciler.log"
        self.git = GitServer(root / "git", webhook_url=f"http://127.0.0.1:{self.port}/webhook",
                             secret=SECRET.encode())
        self.rollouts = DiskRolloutStore.in_state_dir(self.state)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        env = {**os.environ, "MESHDSL_WEBHOOK_SECRET": SECRET}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [MESHCTL, "reconcile", "--repo", str(self.git.origin), "--target", "local",
                 "--name", "e2e", "--state-dir", str(self.state),
                 "--cache-dir", str(self.root / "cache"),
                 "--listen", f"127.0.0.1:{self.port}", "--gateway-port", str(self.gateway),
                 "--interval", "0", "--drift-interval", "0", "--rollout-tick", "0.5s",
                 *extra],
                stdout=out, stderr=out, env=env)
        wait_for(lambda: b'"event": "started"' in self.log.read_bytes()
                 or b'"event":"started"' in self.log.read_bytes(), 30, "the reconciler starting")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        terminate(self.process, 60)

    def log_size(self) -> int:
        """Where the log ends now: events past it were written by a later process."""
        return self.log.stat().st_size if self.log.exists() else 0

    def events(self, name: str, *, after: int = 0) -> list[dict[str, Any]]:
        """The ``name`` events logged past byte ``after``, in order."""
        with self.log.open("rb") as log:
            log.seek(after)
            text = log.read().decode(errors="replace")
        out = []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") == name:
                out.append(record)
        return out

    def applied(self, sha: str) -> bool:
        return any(e.get("revision") == sha and e.get("result") == "applied"
                   for e in self.events("reconcile"))

    def rollout(self) -> RolloutState | None:
        stored = self.rollouts.load(NS, SERVICE)
        return None if stored is None else stored.state

    def finished(self, target: str) -> RolloutState | None:
        state = self.rollout()
        return state if state is not None and state.target == target and \
            state.phase.terminal else None

    def roll_out(self, program: str, subject: str, target: str) -> RolloutState:
        """Push ``program``; the rollout of ``target`` it starts, once finished."""
        sha = self.git.push({"mesh.py": program}, subject)
        wait_for(lambda: self.applied(sha), 60, f"{subject!r} applied")
        return wait_for(lambda: self.finished(target), 90, f"the {target} rollout finishing")

    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway}/"


def served(traffic: TrafficGenerator, seconds: float) -> set[str]:
    """Who served the requests of the last ``seconds`` (empty: none answered)."""
    return {s.served_by for s in traffic.since(time.time() - seconds) if s.status == 200}


def canary_cli(state: Path) -> str:
    result = subprocess.run([MESHCTL, "canary", "status", f"{NS}/{SERVICE}", "--state-dir",
                             str(state)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_pushes_promote_a_healthy_canary_and_roll_back_a_bad_one(
        reconciler: Reconciler) -> None:
    reconciler.start()
    first = reconciler.git.push({"mesh.py": V1}, "reviews v1")
    wait_for(lambda: reconciler.applied(first), 90, "the first revision applied")
    with TrafficGenerator(reconciler.url(), rate=40, max_seconds=200) as traffic:
        wait_for(lambda: served(traffic, 1.0) == {"reviews-v1"}, 30, "v1 serving")

        state = reconciler.roll_out(V2, "canary reviews v2", "v2")
        assert state.phase is Phase.SUCCEEDED, state.reason
        time.sleep(1.5)
        assert served(traffic, 1.0) == {"reviews-v2"}
        # the program routes to v2 from its first commit, yet traffic stepped there
        steps = [e["weights"][f"{NS}/{SERVICE}"] for e in reconciler.events("rollout-traffic")]
        assert {"v1": 80, "v2": 20} in steps and {"v1": 50, "v2": 50} in steps
        assert "succeeded" in canary_cli(reconciler.state)

        state = reconciler.roll_out(V3_BAD, "canary reviews v3 (broken)", "v3")
        assert state.phase is Phase.FAILED, state.reason
        time.sleep(1.5)
        assert served(traffic, 1.0) == {"reviews-v2"}
        window = traffic.since(time.time() - 1.0)
        assert all(s.status == 200 for s in window)
    status = canary_cli(reconciler.state)
    assert "failed" in status and "success-rate" in status


def test_sigkill_mid_rollout_resumes_at_the_same_step(reconciler: Reconciler) -> None:
    """Kill -9 at the second step. What the restarted process does is read from its own
    log lines (every deploy to the Envoys is logged with its weights, the startup pass's
    included), not from the store it resumes from."""
    reconciler.start()
    first = reconciler.git.push({"mesh.py": V1}, "reviews v1")
    wait_for(lambda: reconciler.applied(first), 90, "the first revision applied")
    with TrafficGenerator(reconciler.url(), rate=40, max_seconds=200) as traffic:
        reconciler.git.push({"mesh.py": V2}, "canary reviews v2")

        before = wait_for(lambda: past_first_step(reconciler.rollout(), "v2"), 90,
                          "the rollout at its second step")
        reconciler.kill()
        killed_at = reconciler.log_size()
        # the state the new process must resume from: read after the old one is gone
        after_kill = reconciler.rollout()
        assert after_kill is not None and not after_kill.phase.terminal, after_kill
        assert after_kill.started_at == before.started_at, "one rollout before the kill"
        weights_at_kill = after_kill.traffic.weights
        assert weights_at_kill["v2"] in (50, 100), weights_at_kill  # 2nd step or promoting

        reconciler.start()
        assert_resumed(wait_for(lambda: reconciler.finished("v2"), 120,
                                "the rollout finishing"), after_kill)
        # every deploy of the restarted process, in order: the first serves the stored
        # step (never 100% v1, never the program's raw 100% v2), then only forward
        deploys = [e["weights"].get(f"{NS}/{SERVICE}") for e in
                   reconciler.events("local-deploy", after=killed_at)]
        assert deploys and deploys[0] == weights_at_kill, deploys
        canary = [d["v2"] for d in deploys if d is not None]
        assert canary == sorted(canary) and canary[-1] == 100, deploys
        time.sleep(1.5)
        assert served(traffic, 1.0) == {"reviews-v2"}

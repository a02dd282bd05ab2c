"""Progressive delivery on the kube target: ``meshctl reconcile`` steps a VirtualService.

A real kube-apiserver (Istio CRDs), real Git pushes notifying ``meshctl reconcile`` (a
subprocess; status, rollout state and leader Lease in the cluster), and a real Prometheus
answering Flagger's Istio queries. There is no data plane in this cluster, so a small
exporter stands in for the workloads' Istio proxies: it serves ``istio_requests_total``
for each ``reviews`` version with the error share the test sets, and Prometheus scrapes it.
Every wait is bounded; everything listens on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshdsl.compile.manifest import CONFIG_MAP, ResourceKey
from reconciler.delivery.phases import Phase, RolloutState
from reconciler.demo.prometheus import LocalPrometheus, ScrapeJob
from reconciler.processes.lifecycle import terminate
from reconciler.processes.ports import free_port
from reconciler.runtime.rollout_store import ClusterRolloutStore
from reconciler.targets.kube import KubeTarget
from reconciler.testing.apiserver import LocalApiServer
from reconciler.testing.gitops import GitServer
from reconciler.testing.wait import wait_for
from tests.rollouts import assert_resumed, past_first_step

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MESHCTL = str(Path(sys.executable).parent / "meshctl")
SECRET = "kube-canary-secret"
VS = "networking.istio.io/v1"
NET = "networking.istio.io"



class Exporter:
    """``istio_requests_total`` of each workload, growing at ``rate`` requests a second
    with ``errors[version]`` of them answered 503, as ``reporter`` reports them (the
    destination's sidecar, or an ambient namespace's waypoint)."""

    def __init__(self, namespace: str, rate: float = 20.0, reporter: str = "destination"
                 ) -> None:
        self.namespace, self.rate, self.reporter = namespace, rate, reporter
        self.errors: dict[str, float] = {}
        self.totals: dict[tuple[str, str], float] = {}
        self._last = time.monotonic()
        self._lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.exposition().encode()
                self.send_response(200)
                self.send_header("content-type", "text/plain; version=0.0.4")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def exposition(self) -> str:
        with self._lock:
            now = time.monotonic()
            elapsed, self._last = now - self._last, now
            for version in ("v1", "v2", "v3"):
                share = self.errors.get(version, 0.0)
                for code, part in (("200", 1 - share), ("503", share)):
                    key = (version, code)
                    self.totals[key] = self.totals.get(key, 0.0) + elapsed * self.rate * part
            lines = ["# TYPE istio_requests_total counter"]
            for (version, code), total in sorted(self.totals.items()):
                lines.append(
                    f'istio_requests_total{{reporter="{self.reporter}",destination_workload_'
                    f'namespace="{self.namespace}",destination_workload="reviews-{version}",'
                    f'destination_version="{version}",response_code="{code}"}} {total:.0f}')
            return "\n".join(lines) + "\n"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def program(namespace: str, *, canary: tuple[str, str] | None, routed: str,
            mode: str = "sidecar") -> str:
    lines = ["from meshdsl import Mesh", "from meshdsl.model.canary import SuccessRate", "",
             f"mesh = Mesh({namespace!r}, namespace={namespace!r})",
             f"mesh.namespace({namespace!r}, mode={mode!r})",
             "reviews = mesh.service('reviews', port=9080, versions=['v1', 'v2', 'v3'])",
             "for version in ('v1', 'v2', 'v3'):",
             "    reviews.deploy(version, image=f'example/reviews:{version}')",
             f"reviews.route(to=reviews.{routed})"]
    if canary is not None:
        target, stable = canary
        lines.append(f"reviews.canary(target={target!r}, stable={stable!r}, steps=[20, 50, 100]"
                     ", interval='2s', checks=[SuccessRate(99, interval='4s')], "
                     "min_requests=5, max_failed_checks=2, no_data_limit=5)")
    return "\n".join(lines) + "\n"


def split_of(vs: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    """The (subset, weight) pairs of the VirtualService's default route, zero weights out."""
    route = vs["spec"]["http"][-1]["route"]
    return tuple((r["destination"]["subset"], int(r.get("weight", 100))) for r in route
                 if int(r.get("weight", 100)))


def backends_of(route: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    """The (version, weight) pairs of an HTTPRoute's last rule, zero weights out: a
    backendRef to ``reviews-v2`` is version ``v2``."""
    refs = route["spec"]["rules"][-1]["backendRefs"]
    return tuple((r["name"].rsplit("-", 1)[1], int(r.get("weight", 1))) for r in refs
                 if int(r.get("weight", 1)))


class Rig:
    def __init__(self, apiserver: LocalApiServer, root: Path,
                 reporter: str = "destination") -> None:
        self.apiserver, self.root = apiserver, root
        self.name = self.namespace = f"kc-{uuid.uuid4().hex[:6]}"
        self.admin = KubeTarget.from_kubeconfig(str(apiserver.kubeconfig))
        self.rollouts = ClusterRolloutStore(self.admin, name=self.name)
        self.exporter = Exporter(self.namespace, reporter=reporter)
        self.prometheus = LocalPrometheus([ScrapeJob("workloads", [self.exporter.address])],
                                          workdir=root / "prometheus").start()
        self.port = free_port()
        self.git = GitServer(root / "git", webhook_url=f"http://127.0.0.1:{self.port}/webhook",
                             secret=SECRET.encode())
        self.log = root / "reconciler.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.seen: list[tuple[tuple[str, int], ...]] = []
        self._watching = threading.Event()

    def start(self) -> None:
        """The reconciler, notified by the webhook; it also polls every 10 s, as a
        deployment would, so a delivery lost on a loaded machine only delays a revision."""
        env = {**os.environ, "MESHDSL_WEBHOOK_SECRET": SECRET}
        env.pop("KUBECONFIG", None)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [MESHCTL, "reconcile", "--repo", str(self.git.origin), "--name", self.name,
                 "--kubeconfig", str(self.apiserver.kubeconfig),
                 "--listen", f"127.0.0.1:{self.port}", "--cache-dir", str(self.root / "cache"),
                 "--interval", "10s", "--drift-interval", "0", "--lease-duration", "2s",
                 "--prometheus", self.prometheus.url, "--rollout-tick", "0.5s"],
                stdout=out, stderr=out, env=env)
        wait_for(lambda: b"started" in self.log.read_bytes(), 30, "the reconciler starting")

    def stop(self) -> None:
        self._watching.set()
        terminate(self.process, 30)
        self.prometheus.stop()
        self.exporter.stop()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def virtualservice(self) -> dict[str, Any] | None:
        return self.admin.get(ResourceKey(NET, "VirtualService", self.namespace, "reviews"))

    def weights(self) -> tuple[tuple[str, int], ...] | None:
        vs = self.virtualservice()
        return None if vs is None else split_of(vs)

    def route_weights(self) -> tuple[tuple[str, int], ...] | None:
        route = self.admin.get(ResourceKey("gateway.networking.k8s.io", "HTTPRoute",
                                           self.namespace, "reviews"))
        return None if route is None else backends_of(route)

    def writes_since(self, resource_version: str) -> list[tuple[tuple[str, int], ...]]:
        """Every change to the ``reviews`` VirtualService after ``resource_version``, in
        order, as the API server's watch replays them (none missed, unlike polling); the
        server ends the watch after a second without news."""
        path = f"{self.apiserver.url}/apis/{VS}/namespaces/{self.namespace}/virtualservices"
        params = {"watch": "1", "resourceVersion": resource_version, "timeoutSeconds": "1",
                  "fieldSelector": "metadata.name=reviews"}
        headers = {"Authorization": f"Bearer {self.apiserver.token}"}
        splits: list[tuple[tuple[str, int], ...]] = []
        trusted = ssl.create_default_context(cafile=str(self.apiserver.ca_file))
        with httpx.Client(verify=trusted, timeout=10, trust_env=False) as client, \
                client.stream("GET", path, params=params, headers=headers) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.strip():
                    change = json.loads(line)
                    assert change["type"] == "MODIFIED", change
                    splits.append(split_of(change["object"]))
        return splits

    def watch(self, weights: Callable[[], tuple[tuple[str, int], ...] | None] | None = None
              ) -> None:
        """Record every distinct weight split the API server holds, in order (of the
        VirtualService, or what ``weights`` reads)."""
        read = weights or self.weights

        def run() -> None:
            while not self._watching.wait(0.1):
                current = read()
                if current is not None and (not self.seen or self.seen[-1] != current):
                    self.seen.append(current)
        threading.Thread(target=run, daemon=True).start()

    def applied(self, sha: str) -> bool:
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == "reconcile" and record.get("revision") == sha \
                    and record.get("result") == "applied":
                return True
        return False

    def finished(self, target: str) -> RolloutState | None:
        stored = self.rollouts.load(self.namespace, "reviews")
        state = stored.state if stored is not None else None
        return state if state is not None and state.target == target and \
            state.phase.terminal else None


@pytest.fixture
def rig(apiserver: LocalApiServer, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(apiserver, tmp_path)
    try:
        yield r
    finally:
        r.stop()


def test_canary_steps_the_virtualservice_and_rolls_back_from_the_cluster_state(
        rig: Rig) -> None:
    rig.start()
    first = rig.git.push({"mesh.py": program(rig.namespace, canary=None, routed="v1")}, "v1")
    wait_for(lambda: rig.applied(first), 60, "the first revision applied")
    assert rig.weights() == (("v1", 100),)
    rig.watch()

    second = rig.git.push({"mesh.py": program(rig.namespace, canary=("v2", "v1"),
                                              routed="v2")}, "canary v2")
    wait_for(lambda: rig.applied(second), 60, "the canary revision applied")
    state = wait_for(lambda: rig.finished("v2"), 90, "the v2 rollout finishing")
    assert state.phase is Phase.SUCCEEDED, state.reason
    wait_for(lambda: rig.weights() == (("v2", 100),), 10, "100% v2 in the API server")
    # never the program's raw "100% v2" first: the split walked the plan's steps
    assert rig.seen[:4] == [(("v1", 100),), (("v1", 80), ("v2", 20)),
                            (("v1", 50), ("v2", 50)), (("v2", 100),)], rig.seen
    configmaps = rig.admin.list(CONFIG_MAP, "meshdsl-system")
    assert any(rig.name in cm["metadata"]["name"] and "rollout" in cm["metadata"]["name"]
               for cm in configmaps)

    rig.exporter.errors["v3"] = 0.5
    third = rig.git.push({"mesh.py": program(rig.namespace, canary=("v3", "v2"),
                                             routed="v3")}, "canary v3 (broken)")
    wait_for(lambda: rig.applied(third), 60, "the v3 revision applied")
    state = wait_for(lambda: rig.finished("v3"), 90, "the v3 rollout finishing")
    assert state.phase is Phase.FAILED, state.reason
    assert "request-success-rate" in state.reason
    wait_for(lambda: rig.weights() == (("v2", 100),), 10, "100% v2 again")
    assert (("v2", 80), ("v3", 20)) in rig.seen

    status = subprocess.run(
        [MESHCTL, "canary", "status", f"{rig.namespace}/reviews", "--state", "cluster",
         "--kubeconfig", str(rig.apiserver.kubeconfig), "--name", rig.name],
        capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "failed" in status.stdout


def test_sigkill_mid_rollout_resumes_at_the_same_step_on_the_cluster(rig: Rig) -> None:
    """Kill -9 at the second step; the restarted process takes the Lease over, reads the
    rollout from the cluster and goes on. What it wrote is read from the API server's own
    watch history from the moment of the kill, so a brief 100% stable cannot slip by."""
    rig.start()
    first = rig.git.push({"mesh.py": program(rig.namespace, canary=None, routed="v1")}, "v1")
    wait_for(lambda: rig.applied(first), 60, "the first revision applied")
    rig.git.push({"mesh.py": program(rig.namespace, canary=("v2", "v1"), routed="v2")},
                 "canary v2")

    def at_second_step() -> RolloutState | None:
        stored = rig.rollouts.load(rig.namespace, "reviews")
        return past_first_step(stored.state if stored is not None else None, "v2")

    before = wait_for(at_second_step, 90, "the rollout at its second step")
    rig.kill()
    vs = rig.virtualservice()
    assert vs is not None
    served_at_kill, killed_rv = split_of(vs), vs["metadata"]["resourceVersion"]
    stored = rig.rollouts.load(rig.namespace, "reviews")
    assert stored is not None
    after_kill = stored.state
    assert after_kill.started_at == before.started_at and not after_kill.phase.terminal
    at_kill = after_kill.traffic.weights["v2"]
    assert at_kill >= 50, after_kill  # the second step (or promoting)
    # the cluster serves the stored step, or the one before it if the kill fell between
    # persisting a step and applying its routes
    assert dict(served_at_kill).get("v2", 0) in (20, 50, at_kill), served_at_kill

    rig.start()
    assert_resumed(wait_for(lambda: rig.finished("v2"), 90, "the resumed rollout finishing"),
                   after_kill)
    wait_for(lambda: rig.weights() == (("v2", 100),), 10, "100% v2 in the API server")
    writes = rig.writes_since(killed_rv)
    canary = [dict(split).get("v2", 0) for split in writes]
    assert writes and canary[-1] == 100, writes
    # never back to 100% v1 (or any step before the stored one), only forward
    assert min(canary) >= at_kill and canary == sorted(canary), writes


def test_an_ambient_canary_steps_the_httproute_judged_on_the_waypoint(
        apiserver: LocalApiServer, tmp_path: Path) -> None:
    """In an ambient namespace the same plan shifts the HTTPRoute's backend weights, and
    its checks read what the waypoint reports (``reporter="waypoint"``): the series a
    destination sidecar would report do not exist there."""
    rig = Rig(apiserver, tmp_path, reporter="waypoint")
    try:
        rig.start()
        ns = rig.namespace
        first = rig.git.push({"mesh.py": program(ns, canary=None, routed="v1",
                                                 mode="ambient")}, "v1")
        wait_for(lambda: rig.applied(first), 60, "the first revision applied")
        assert rig.route_weights() == (("v1", 1),)
        assert rig.virtualservice() is None
        rig.watch(rig.route_weights)
        second = rig.git.push({"mesh.py": program(ns, canary=("v2", "v1"), routed="v2",
                                                  mode="ambient")}, "canary v2")
        wait_for(lambda: rig.applied(second), 60, "the canary revision applied")
        state = wait_for(lambda: rig.finished("v2"), 90, "the v2 rollout finishing")
        assert state.phase is Phase.SUCCEEDED, state.reason
        wait_for(lambda: rig.route_weights() == (("v2", 100),), 10, "100% v2 on the route")
        assert (("v1", 80), ("v2", 20)) in rig.seen and (("v1", 50), ("v2", 50)) in rig.seen

        rig.exporter.errors["v3"] = 0.5
        third = rig.git.push({"mesh.py": program(ns, canary=("v3", "v2"), routed="v3",
                                                 mode="ambient")}, "canary v3 (broken)")
        wait_for(lambda: rig.applied(third), 60, "the v3 revision applied")
        state = wait_for(lambda: rig.finished("v3"), 90, "the v3 rollout finishing")
        assert state.phase is Phase.FAILED and "request-success-rate" in state.reason, \
            state.reason
        wait_for(lambda: rig.route_weights() == (("v2", 100),), 10, "100% v2 again")
        assert (("v2", 80), ("v3", 20)) in rig.seen
    finally:
        rig.stop()

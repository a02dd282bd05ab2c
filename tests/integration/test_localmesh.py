"""The local mesh with real traffic: real Envoys and demo apps on 127.0.0.1, started by
:class:`LocalMesh` from small meshes written with the builder API, one per behaviour —
weighted split, header match, retries, timeout, fault abort/delay, circuit breaker,
outlier ejection, rate limit, STRICT mTLS, authorization, and a live config change under
load with zero failed requests — plus ``meshctl up`` on bookinfo and ``--watch``.

Every loop is bounded; statistical assertions use tolerances of about four standard
deviations, so a correct mesh fails them far less than once in ten thousand runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshdsl.compile.envoy import names
from meshdsl.model import (
    Abort,
    ConnectionPool,
    Delay,
    Fault,
    From,
    Header,
    HttpPool,
    Mesh,
    OutlierDetection,
    Retries,
    TcpPool,
    Uri,
)
from reconciler.demo.apps import DEMO_APP
from reconciler.demo.apps import demo_command as demo
from reconciler.ports import Deployer, DeployError
from reconciler.targets.envoy.allocation import listener_ports
from reconciler.targets.envoy.errors import LocalAppError
from reconciler.targets.envoy.mesh import LocalMesh
from reconciler.testing.observe import metric_total
from tests.conftest import REPO

pytestmark = pytest.mark.integration

SERVED_BY = "x-served-by"
NS = "shop"




def shop() -> Mesh:
    mesh = Mesh("localtest", namespace=NS)
    mesh.mtls("STRICT")
    return mesh


def caller(mesh: Mesh, name: str = "client") -> None:
    """A workload whose sidecar the test calls through, as its app would (no app runs)."""
    mesh.service(name, port=8080).deploy("v1", image="none")


@contextmanager
def running(mesh: Mesh) -> Iterator[LocalMesh]:
    with LocalMesh(mesh.build()) as local:
        yield local


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as c:
        yield c


def served(client: httpx.Client, url: str, count: int, **kwargs: Any) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(count):
        response = client.get(url, **kwargs)
        seen[response.headers.get(SERVED_BY, str(response.status_code))] += 1
    return seen


def cluster_stat(mesh: LocalMesh, proxy: str, cluster: str, stat: str) -> int:
    """One counter or gauge of a cluster, by its Istio-style name (stats use the
    ``alt_stat_name``, see ``meshdsl.compile.envoy.names``)."""
    name = re.escape(names.stat_name(cluster))
    stats = mesh.envoy(proxy).admin.stats(rf"^cluster\.{name}\.{stat}$")
    return int(next(iter(stats.values()), 0))


# --- routing ---------------------------------------------------------------------------


def test_weighted_split_within_tolerance_versions_and_stats(client: httpx.Client) -> None:
    mesh = shop()
    caller(mesh)
    reviews = mesh.service("reviews", port=9080, versions=["v1", "v2"])
    reviews.run_locally(command=demo())
    reviews.route(to={reviews.v1: 80, reviews.v2: 20})
    with running(mesh) as local:
        assert local.versions() == local.pushed_versions()
        assert all(v.startswith("1-") for v in local.versions().values())
        n = 400
        seen = served(client, local.outbound_url("client", "reviews"), n)
        assert set(seen) == {"reviews-v1", "reviews-v2"}, seen
        assert 0.12 <= seen["reviews-v2"] / n <= 0.28, seen  # 0.2 ± 4 sd (sd = 0.02)
        # The caller's sidecar counted exactly those requests per subset, in Prometheus form.
        text = client.get(local.stats_urls()["client-v1.shop"]).text
        for version in ("v1", "v2"):
            name = names.subset_stat_name(NS, "reviews", 9080, version)
            assert metric_total(text, "envoy_cluster_upstream_rq_total",
                          envoy_cluster_name=name) == seen[f"reviews-{version}"]


def test_header_match_routes_to_v2(client: httpx.Client) -> None:
    mesh = shop()
    caller(mesh)
    reviews = mesh.service("reviews", port=9080, versions=["v1", "v2"])
    reviews.run_locally(command=demo())
    reviews.route(match=Header("end-user", exact="jason"), to=reviews.v2)
    reviews.route(to=reviews.v1)
    with running(mesh) as local:
        url = local.outbound_url("client", "reviews")
        assert served(client, url, 20, headers={"end-user": "jason"}) == {"reviews-v2": 20}
        assert served(client, url, 20, headers={"end-user": "mary"}) == {"reviews-v1": 20}
        assert served(client, url, 20) == {"reviews-v1": 20}


# --- resilience ------------------------------------------------------------------------


def test_retries_recover_a_flaky_upstream(client: httpx.Client) -> None:
    mesh = shop()
    caller(mesh)
    flaky = mesh.service("flaky", port=9080)
    flaky.run_locally(command=demo("--fail-first", "2"))  # each request fails twice first
    flaky.route(match=Header("x-retries", exact="none"), to=flaky, retries=Retries(attempts=0))
    flaky.route(to=flaky, retries=Retries(attempts=3, retry_on="5xx"))
    with running(mesh) as local:
        url = local.outbound_url("client", "flaky") + "/flaky"
        without = [client.get(url, headers={"x-retries": "none"}).status_code
                   for _ in range(5)]
        assert without == [503] * 5
        assert [client.get(url).status_code for _ in range(10)] == [200] * 10
        cluster = f"outbound|9080||flaky.{NS}.svc.cluster.local"
        assert cluster_stat(local, "client", cluster, "upstream_rq_retry") >= 20


def test_route_timeout_answers_504(client: httpx.Client) -> None:
    mesh = shop()
    caller(mesh)
    slow = mesh.service("slow", port=9080)
    slow.run_locally(command=demo("--latency-ms", "1500"))
    slow.route(to=slow, timeout="200ms")
    with running(mesh) as local:
        began = time.perf_counter()
        response = client.get(local.outbound_url("client", "slow"))
        elapsed = time.perf_counter() - began
        assert response.status_code == 504
        assert "upstream request timeout" in response.text
        assert 0.15 <= elapsed < 1.2, elapsed


def test_fault_abort_and_delay(client: httpx.Client) -> None:
    mesh = shop()
    caller(mesh)
    api = mesh.service("api", port=9080)
    api.run_locally(command=demo())
    api.route(match=Uri(prefix="/abort"), to=api, fault=Fault(abort=Abort(status=418)))
    api.route(match=Uri(prefix="/half"), to=api,
              fault=Fault(abort=Abort(status=503, percent=50)), retries=Retries(attempts=0))
    api.route(match=Uri(prefix="/delay"), to=api, fault=Fault(delay=Delay(fixed="300ms")))
    api.route(to=api)
    with running(mesh) as local:
        base = local.outbound_url("client", "api")
        aborted = client.get(base + "/abort")
        assert aborted.status_code == 418 and SERVED_BY not in aborted.headers
        codes = Counter(client.get(base + "/half").status_code for _ in range(200))
        assert set(codes) == {200, 503} and 72 <= codes[503] <= 128, codes  # 100 ± 4 sd
        began = time.perf_counter()
        delayed = client.get(base + "/delay")
        assert delayed.status_code == 200 and time.perf_counter() - began >= 0.29
        began = time.perf_counter()
        assert client.get(base + "/plain").status_code == 200
        assert time.perf_counter() - began < 0.25


def test_circuit_breaker_overflow_answers_503(client: httpx.Client) -> None:
    mesh = shop()
    caller(mesh)
    busy = mesh.service("busy", port=9080)
    busy.run_locally(command=demo("--latency-ms", "400"))
    busy.policy(connection_pool=ConnectionPool(tcp=TcpPool(max_connections=1),
                                               http=HttpPool(http1_max_pending_requests=1)))
    with running(mesh) as local:
        url = local.outbound_url("client", "busy")
        assert client.get(url).status_code == 200

        def one(_: int) -> tuple[int, bool]:
            with httpx.Client(timeout=10, trust_env=False) as own:
                response = own.get(url)
                return response.status_code, "x-envoy-overloaded" in response.headers

        with ThreadPoolExecutor(max_workers=10) as pool:
            results = list(pool.map(one, range(10)))
        codes = Counter(code for code, _ in results)
        assert codes[200] >= 1 and codes[503] >= 5, codes
        assert all(overloaded for code, overloaded in results if code == 503), results
        cluster = f"outbound|9080||busy.{NS}.svc.cluster.local"
        assert cluster_stat(local, "client", cluster, "upstream_rq_pending_overflow") >= 5


def test_outlier_detection_ejects_the_failing_endpoint(client: httpx.Client) -> None:
    mesh = shop()
    caller(mesh)
    backend = mesh.service("backend", port=9080, versions=["v1", "v2"])
    backend.run_locally("v1", command=demo())
    backend.run_locally("v2", command=demo("--error-rate", "1.0"))  # every request 503
    backend.route(to=backend, retries=Retries(attempts=0))  # no retry hides the errors
    backend.policy(outlier_detection=OutlierDetection(
        consecutive_5xx_errors=3, interval="1s", base_ejection_time="60s",
        max_ejection_percent=50))
    with running(mesh) as local:
        url = local.outbound_url("client", "backend")
        first = [client.get(url).status_code for _ in range(30)]
        assert first.count(503) == 3, first  # three in a row from v2, then it is out
        assert served(client, url, 30) == {"backend-v1": 30}
        cluster = f"outbound|9080||backend.{NS}.svc.cluster.local"
        assert cluster_stat(local, "client", cluster,
                            "outlier_detection.ejections_enforced_consecutive_5xx") == 1
        assert cluster_stat(local, "client", cluster,
                            "outlier_detection.ejections_active") == 1


def test_local_rate_limit_answers_429(client: httpx.Client) -> None:
    mesh = shop()
    caller(mesh)
    limited = mesh.service("limited", port=9080)
    limited.run_locally(command=demo())
    limited.rate_limit(max_tokens=5, tokens_per_fill=5, fill_interval="60s")
    with running(mesh) as local:
        url = local.outbound_url("client", "limited")
        codes = [client.get(url).status_code for _ in range(8)]
        assert codes == [200] * 5 + [429] * 3


# --- security --------------------------------------------------------------------------


def test_strict_mtls_refuses_plaintext_and_permissive_accepts_it(client: httpx.Client) -> None:
    mesh = shop()
    caller(mesh)
    strict = mesh.service("vault", port=9080)
    strict.run_locally(command=demo())
    legacy = mesh.service("legacy", port=9080)
    legacy.run_locally(command=demo())
    legacy.mtls("PERMISSIVE")
    with running(mesh) as local:
        inbound = local.inbound_address("vault")
        with pytest.raises(httpx.TransportError):
            client.get(f"http://{inbound}/")
        # Through the caller's sidecar it is mutual TLS, with the caller's SPIFFE identity.
        answer = client.get(local.outbound_url("client", "vault")).json()
        assert "URI=spiffe://cluster.local/ns/shop/sa/client" in answer["headers"][
            "x-forwarded-client-cert"]
        plain = client.get(f"http://{local.inbound_address('legacy')}/")
        assert plain.status_code == 200 and plain.headers[SERVED_BY] == "legacy-v1"


def test_authorization_deny_answers_403_and_the_allowed_caller_passes(
        client: httpx.Client) -> None:
    mesh = shop()
    for name in ("trusted", "untrusted", "stranger"):
        caller(mesh, name)
    api = mesh.service("api", port=9080)
    api.run_locally(command=demo())
    api.allow("trusted", "untrusted")
    api.authorization("deny-untrusted", action="DENY").rule(
        from_=From(principals=[f"cluster.local/ns/{NS}/sa/untrusted"]))
    with running(mesh) as local:
        ok = client.get(local.outbound_url("trusted", "api"))
        assert ok.status_code == 200 and ok.headers[SERVED_BY] == "api-v1"
        for who in ("untrusted", "stranger"):  # explicit DENY; not in the ALLOW list
            denied = client.get(local.outbound_url(who, "api"))
            assert denied.status_code == 403 and "RBAC" in denied.text, who


# --- live changes ----------------------------------------------------------------------


def _versioned(weights: dict[str, int], *, versions: tuple[str, ...] = ("v1", "v2")) -> Mesh:
    mesh = shop()
    reviews = mesh.service("reviews", port=9080, versions=list(versions))
    reviews.run_locally(command=demo())
    reviews.route(to={reviews.subset(v): w for v, w in weights.items()})
    gateway = mesh.gateway("front")
    gateway.http("*")
    gateway.routes("front", hosts=["*"]).route(to={reviews.subset(v): w
                                                   for v, w in weights.items()})
    return mesh


def _load(url: str, stop: threading.Event, codes: Counter[int],
          last: dict[int, str], worker: int) -> None:
    with httpx.Client(timeout=10, trust_env=False) as own:
        while not stop.is_set():
            try:
                response = own.get(url)
            except httpx.HTTPError as err:
                codes[-1] += 1
                last[worker] = repr(err)
                continue
            codes[response.status_code] += 1
            last[worker] = response.headers.get(SERVED_BY, "")


@pytest.mark.parametrize("routes", ["rds", "inline"])
def test_config_changes_under_load_fail_no_request(client: httpx.Client, routes: str) -> None:
    """With route tables by RDS (small meshes) and inline in listeners (what sidecars of a
    big mesh get, to stay within the inotify limit)."""
    spec = _versioned({"v1": 100}).build()
    with LocalMesh(spec, route_delivery=routes) as local:  # type: ignore[arg-type]
        assert set(local.route_delivery().values()) == {routes}
        url = local.gateway_url() + "/load"
        stop, codes, last = threading.Event(), Counter[int](), dict[int, str]()
        workers = [threading.Thread(target=_load, args=(url, stop, codes, last, i))
                   for i in range(4)]
        for worker in workers:
            worker.start()
        try:
            steps: list[tuple[Mesh, Callable[[Counter[str]], bool]]] = [
                (_versioned({"v1": 50, "v2": 50}), lambda s: set(s) == {"reviews-v1",
                                                                        "reviews-v2"}),
                (_versioned({"v2": 100}), lambda s: s == {"reviews-v2": 40}),
                # a new version: its app and sidecar start before anyone routes to it
                (_versioned({"v3": 100}, versions=("v1", "v2", "v3")),
                 lambda s: s == {"reviews-v3": 40}),
                # v1 and v2 go away: callers move first, then their Envoys and apps stop
                (_versioned({"v3": 100}, versions=("v3",)), lambda s: s == {"reviews-v3": 40}),
            ]
            for mesh, check in steps:
                before = sum(codes.values())
                applied = local.apply(mesh.build())
                if routes == "inline":  # an open connection ends its current filter chain
                    client.get(url)     # with one more request, answered "Connection: close"
                seen = served(client, url, 40)
                assert check(seen), (applied, seen)
                deadline = time.monotonic() + 5
                while sum(codes.values()) < before + 20 and time.monotonic() < deadline:
                    time.sleep(0.02)
            assert applied.stopped == ("reviews-v1.shop", "reviews-v2.shop")
            assert local.versions() == local.pushed_versions()
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=15)
        assert sum(codes.values()) > 200, codes
        assert set(codes) == {200}, (codes, last)


def test_unchanged_proxies_keep_their_version() -> None:
    mesh = shop()
    caller(mesh)
    reviews = mesh.service("reviews", port=9080, versions=["v1", "v2"])
    reviews.run_locally(command=demo())
    gateway = mesh.gateway("front")
    gateway.http("*")
    gateway.routes("front", hosts=["*"]).route(to=reviews.v1)
    with running(mesh) as local:
        before = local.versions()
        reviews.route(to=reviews.v2)  # sidecars change; the gateway's own route does not
        applied = local.apply(mesh.build())
        after = local.versions()
        gateway_id = "istio-ingressgateway.istio-system"
        assert applied.unchanged == (gateway_id,)
        assert after[gateway_id] == before[gateway_id]
        assert all(after[p] != before[p] and after[p].startswith("2-")
                   for p in applied.updated)
        assert local.apply(mesh.build()).changed is False


def test_an_app_that_fails_to_start_is_reported_and_nothing_is_left_running(
        tmp_path: Path) -> None:
    mesh = shop()
    ok = mesh.service("ok", port=9080)
    ok.run_locally(command=demo())
    broken = mesh.service("broken", port=9080)
    broken.run_locally(command=[sys.executable, "-c", "import sys; print('no config for "
                                "{service} {version}'); sys.exit(3)"])
    local = LocalMesh(mesh.build(), workdir=tmp_path / "mesh")
    with pytest.raises(LocalAppError, match="exited with code 3") as failure:
        local.start()
    assert "no config for broken v1" in str(failure.value)  # the app's own log
    assert local.proxies() == []
    ok_log = (tmp_path / "mesh" / "apps" / "ok-v1.shop.log")
    assert ok_log.exists()
    assert "listening" in ok_log.read_text()


def test_gitops_deployer_port_runs_the_sandbox_output(client: httpx.Client) -> None:
    """The GitOps loop hands a deployer the sandbox's output; with ``spec`` in it (and
    canary ``weights``), LocalMesh starts, then updates, the local mesh."""
    mesh = _versioned({"v1": 100})
    local = LocalMesh()
    try:
        assert isinstance(local, Deployer)
        with pytest.raises(DeployError, match="needs the program's spec"):
            local.deploy({"manifests": []}, mesh="localtest", heal=True)
        output = {"manifests": [], "spec": mesh.build().model_dump(mode="json")}
        first = local.deploy(output, mesh="localtest", heal=True)
        assert first.changes == {"started": 3}
        url = local.gateway_url()
        assert served(client, url, 10) == {"reviews-v1": 10}
        canary = {**output, "weights": {f"{NS}/reviews": {"v1": 0, "v2": 100}}}
        planned = local.deploy(canary, mesh="localtest", heal=True, dry_run=True)
        assert planned.changes == {"would update": 3}  # gateway and both sidecars
        assert served(client, url, 5) == {"reviews-v1": 5}  # a dry run changes nothing
        second = local.deploy(canary, mesh="localtest", heal=True)
        assert second.changes["updated"] >= 1 and second.write_calls >= 1
        assert served(client, url, 10) == {"reviews-v2": 10}
    finally:
        local.stop()


# --- meshctl up ------------------------------------------------------------------------


class Meshctl:
    """``meshctl up`` in a subprocess, its output collected by reader threads."""

    def __init__(self, *args: str, cwd: Path = REPO) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from reconciler.cli import main; main()", "up", *args],
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"})
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(stream, into), daemon=True)
                         for stream, into in ((self.process.stdout, self.out),
                                              (self.process.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def wait_for_output(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.stdout:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"no {needle!r} from meshctl up:\n{self.stdout[-3000:]}"
                                     f"\n{self.stderr[-3000:]}")
            time.sleep(0.05)

    def stop(self, sig: signal.Signals) -> int:
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"meshctl up did not stop on {sig.name}:\n"
                                 f"{self.stderr[-3000:]}") from None
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _get(url: str) -> httpx.Response:
    with httpx.Client(timeout=10, trust_env=False) as c:
        return c.get(url)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_meshctl_up_bookinfo_serves_productpage_and_stops_on_sigint() -> None:
    (port,) = listener_ports(1)
    meshctl = Meshctl("examples/bookinfo/mesh.py", "--gateway-port", str(port), "-o", "json")
    try:
        meshctl.wait_for_output("\n}\n", 120)  # the summary: everything is up
        page = _get(f"http://127.0.0.1:{port}/productpage")
        assert page.status_code == 200 and page.headers[SERVED_BY] == "productpage-v1"
        # productpage called reviews through its sidecar (mTLS), which routes 100% to v1
        assert page.json()["calls"] == [{"service": "reviews", "status": 200,
                                         "served_by": "reviews-v1"}]
    except BaseException:
        meshctl.kill()
        raise
    assert meshctl.stop(signal.SIGINT) == 0, meshctl.stderr[-3000:]
    out = meshctl.stdout
    summary = json.loads(out[:out.index("\n}\n") + 2])
    assert summary["gateway"] == f"http://127.0.0.1:{port}"
    rows = {row["proxy"]: row for row in summary["proxies"]}
    assert len(rows) == 13  # 12 versions of 7 services, and the ingress gateway
    pids = [int(row["app_state"].split()[1]) for row in rows.values()
            if row["app_state"].startswith("pid")]
    assert len(pids) == 12
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(pid) for pid in pids)
    assert '"event": "stopped"' in out


WATCHED = '''
import sys
from meshdsl import Mesh

mesh = Mesh("watched", namespace="shop")
web = mesh.service("web", port=8080, versions=["v1", "v2"])
web.run_locally(command=[sys.executable, {demo!r}, "--name", "{{service}}",
                         "--version", "{{version}}", "--port", "{{port}}"])
gateway = mesh.gateway("front")
gateway.http("*")
gateway.routes("front", hosts=["*"]).route(to=web.{version})
'''


def test_meshctl_up_watch_applies_edits_and_keeps_the_last_good_config(
        tmp_path: Path) -> None:
    program = tmp_path / "mesh.py"
    program.write_text(WATCHED.format(demo=str(DEMO_APP), version="v1"))
    (port,) = listener_ports(1)
    meshctl = Meshctl(str(program), "--watch", "--gateway-port", str(port), cwd=tmp_path)
    url = f"http://127.0.0.1:{port}/"
    try:
        meshctl.wait_for_output("Ctrl-C to stop", 60)
        assert _get(url).headers[SERVED_BY] == "web-v1"
        edited = time.monotonic()
        program.write_text(WATCHED.format(demo=str(DEMO_APP), version="v2"))
        meshctl.wait_for_output("applied generation 2", 10)
        assert time.monotonic() - edited < 3
        assert _get(url).headers[SERVED_BY] == "web-v2"
        good = WATCHED.format(demo=str(DEMO_APP), version="v2")
        program.write_text(good + "web.route(to=web.v9 +)\n")
        broken_line = len(good.splitlines()) + 1
        deadline = time.monotonic() + 10
        while "keeping the last good config" not in meshctl.stderr:
            assert time.monotonic() < deadline, meshctl.stderr[-3000:]
            time.sleep(0.05)
        assert _get(url).headers[SERVED_BY] == "web-v2"  # still the last good config
    except BaseException:
        meshctl.kill()
        raise
    assert meshctl.stop(signal.SIGTERM) == 0, meshctl.stderr[-3000:]
    err = meshctl.stderr
    assert f"{program.name}:{broken_line}" in err and "syntax error" in err, err[-2000:]

"""An ambient namespace on the local mesh, with real traffic: real Envoys (a waypoint and
an L4 proxy per workload) and demo apps on 127.0.0.1, started by :class:`LocalMesh` once
for the module — weights, header match, retries, timeout, authorization deny/allow through
the waypoint, mTLS on both hops, and the waypoint's own stats showing it is on the path.

Statistical assertions use tolerances of about four standard deviations."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from meshdsl.compile.envoy import ProxyKind, names
from meshdsl.model import From, Header, Mesh, Retries
from reconciler.core.graph import build_graph, service_id, workload_id
from reconciler.dashboard import EnvoyTraffic, PrometheusTraffic, local_proxies
from reconciler.demo.prometheus import LocalPrometheus
from reconciler.demo.traffic import TrafficGenerator, envoy_scrape_job
from reconciler.metrics.recording_rules import istio_bridge_rule_groups
from reconciler.targets.envoy.mesh import LocalMesh
from tests.integration.test_localmesh import SERVED_BY, demo, served

pytestmark = pytest.mark.integration

NS = "shop"
WAYPOINT = "waypoint.shop"


def ambient_shop() -> Mesh:
    """``shop`` in ambient mode (STRICT mTLS): reviews v1/v2 (jason → v2, else 80/20),
    flaky (fails twice per request), slow (1.5 s, 200 ms timeout), api (allows trusted and
    untrusted, denies untrusted) and the callers; ``web`` with a sidecar in ``front``; an
    ingress gateway routing to reviews."""
    mesh = Mesh("waypoint-itest", namespace=NS)
    mesh.namespace(NS, mode="ambient")
    mesh.mtls("STRICT")
    reviews = mesh.service("reviews", port=9080, versions=["v1", "v2"])
    reviews.run_locally(command=demo())
    reviews.route(match=Header("end-user", exact="jason"), to=reviews.v2)
    reviews.route(to={reviews.v1: 80, reviews.v2: 20})
    flaky = mesh.service("flaky", port=9080)
    flaky.run_locally(command=demo("--fail-first", "2"))
    flaky.route(match=Header("x-retries", exact="none"), to=flaky, retries=Retries(attempts=0))
    flaky.route(to=flaky, retries=Retries(attempts=3, retry_on="5xx"))
    slow = mesh.service("slow", port=9080)
    slow.run_locally(command=demo("--latency-ms", "1500"))
    slow.route(to=slow, timeout="200ms")
    api = mesh.service("api", port=9080)
    api.run_locally(command=demo())
    api.allow("trusted", "untrusted")
    api.authorization("deny-untrusted", action="DENY").rule(
        from_=From(principals=[f"cluster.local/ns/{NS}/sa/untrusted"]))
    for name in ("client", "trusted", "untrusted", "stranger"):
        mesh.service(name, port=8080).deploy("v1", image="none")
    mesh.namespace("front").service("web", port=8080).deploy("v1", image="none")
    gateway = mesh.gateway("edge")
    gateway.http("*")
    gateway.routes("edge", hosts=["*"]).route(to=reviews)
    return mesh


@pytest.fixture(scope="module")
def local() -> Iterator[LocalMesh]:
    with LocalMesh(ambient_shop().build()) as running:
        yield running


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as c:
        yield c


def waypoint_rq(local: LocalMesh, service: str, version: str | None = None,
                stat: str = "upstream_rq_total") -> int:
    """A counter of the waypoint's cluster toward a subset (or all) of a service."""
    cluster = names.stat_name(names.waypoint_cluster(9080, version,
                                                     names.service_fqdn(NS, service)))
    stats = local.envoy(WAYPOINT).admin.stats(rf"^cluster\.{re.escape(cluster)}\.{stat}$")
    return int(next(iter(stats.values()), 0))


def test_the_namespace_runs_a_waypoint_and_an_l4_proxy_per_workload(local: LocalMesh) -> None:
    kinds = {pid: local.config(pid).kind for pid in local.proxies()}
    assert kinds[WAYPOINT] is ProxyKind.WAYPOINT
    assert kinds["reviews-v1.shop"] is kinds["client-v1.shop"] is ProxyKind.ZTUNNEL
    assert kinds["web-v1.front"] is ProxyKind.SIDECAR
    assert local.versions() == local.pushed_versions()
    rows = {row.proxy: row for row in local.table()}
    assert rows[WAYPOINT].kind == "waypoint" and rows["reviews-v1.shop"].kind == "ztunnel"


def test_weighted_split_is_applied_and_counted_by_the_waypoint(
        local: LocalMesh, client: httpx.Client) -> None:
    before = {v: waypoint_rq(local, "reviews", v) for v in ("v1", "v2")}
    n = 400
    seen = served(client, local.outbound_url("client", "reviews"), n)
    assert set(seen) == {"reviews-v1", "reviews-v2"}, seen
    assert 0.12 <= seen["reviews-v2"] / n <= 0.28, seen  # 0.2 ± 4 sd (sd = 0.02)
    # The waypoint sent exactly those requests to each version: it is on the path.
    for version in ("v1", "v2"):
        assert waypoint_rq(local, "reviews", version) - before[version] == \
            seen[f"reviews-{version}"]
    # The caller's L4 proxy did no HTTP of its own (its only HTTP is its admin API).
    stats = local.envoy("client").admin.stats(r"^http\..*\.downstream_rq_total$")
    assert set(stats) == {"http.admin.downstream_rq_total"}, stats


def test_header_match_routes_to_v2(local: LocalMesh, client: httpx.Client) -> None:
    url = local.outbound_url("client", "reviews")
    assert served(client, url, 20, headers={"end-user": "jason"}) == {"reviews-v2": 20}
    assert set(served(client, url, 20, headers={"end-user": "mary"})) <= {"reviews-v1",
                                                                          "reviews-v2"}


def test_retries_recover_a_flaky_upstream(local: LocalMesh, client: httpx.Client) -> None:
    url = local.outbound_url("client", "flaky") + "/flaky"
    assert [client.get(url, headers={"x-retries": "none"}).status_code
            for _ in range(5)] == [503] * 5
    before = waypoint_rq(local, "flaky", stat="upstream_rq_retry")
    assert [client.get(url).status_code for _ in range(10)] == [200] * 10
    assert waypoint_rq(local, "flaky", stat="upstream_rq_retry") - before == 20  # 2 each


def test_route_timeout_answers_504_from_the_waypoint(local: LocalMesh,
                                                     client: httpx.Client) -> None:
    began = time.perf_counter()
    response = client.get(local.outbound_url("client", "slow"))
    elapsed = time.perf_counter() - began
    assert response.status_code == 504 and "upstream request timeout" in response.text
    assert 0.15 <= elapsed < 1.2, elapsed
    assert waypoint_rq(local, "slow", stat="upstream_rq_timeout") >= 1


def test_authorization_deny_and_allow_at_the_waypoint(local: LocalMesh,
                                                      client: httpx.Client) -> None:
    ok = client.get(local.outbound_url("trusted", "api"))
    assert ok.status_code == 200 and ok.headers[SERVED_BY] == "api-v1"
    for who in ("untrusted", "stranger"):  # explicit DENY; not in the ALLOW list
        denied = client.get(local.outbound_url(who, "api"))
        assert denied.status_code == 403 and "RBAC" in denied.text, who
    prefix = names.stat_name(names.waypoint_cluster(9080, None, names.service_fqdn(NS, "api")))
    stats = local.envoy(WAYPOINT).admin.stats(rf"^http\.{re.escape(prefix)}\.rbac\.denied$")
    assert sum(stats.values()) >= 2, stats


def test_mtls_on_both_hops_and_no_caller_skips_the_waypoint(
        local: LocalMesh, client: httpx.Client) -> None:
    answer = client.get(local.outbound_url("client", "reviews")).json()
    # The app sees the caller's SPIFFE identity, vouched for by the waypoint.
    xfcc = answer["headers"]["x-forwarded-client-cert"]
    assert "By=spiffe://cluster.local/ns/shop/sa/waypoint" in xfcc
    assert "URI=spiffe://cluster.local/ns/shop/sa/client" in xfcc
    # Plaintext to the waypoint, or to a workload's own proxy, is refused.
    port = local.placement.waypoints[next(iter(local.placement.waypoints))].listeners[
        ("reviews", 9080, "")]
    with pytest.raises(httpx.TransportError):
        client.get(f"http://127.0.0.1:{port}/")
    with pytest.raises(httpx.TransportError):
        client.get(f"http://{local.inbound_address('reviews-v1')}/")


def test_sidecar_callers_and_the_gateway_go_through_the_waypoint(
        local: LocalMesh, client: httpx.Client) -> None:
    before = waypoint_rq(local, "reviews", "v2")
    from_web = served(client, local.outbound_url("web", "reviews.shop"), 10,
                      headers={"end-user": "jason"})
    from_edge = served(client, local.gateway_url() + "/", 10, headers={"end-user": "jason"})
    assert from_web == from_edge == {"reviews-v2": 10}
    assert waypoint_rq(local, "reviews", "v2") - before == 20


def test_the_dashboard_draws_the_split_the_waypoint_made(
        local: LocalMesh, client: httpx.Client) -> None:
    """Envoy-stats traffic for the graph: the waypoint's counters give the service's split
    between its versions; a sidecar caller in another namespace is drawn calling the
    service; nothing is drawn from an unnamed caller."""
    source = EnvoyTraffic(local_proxies(local))
    assert source.edges() == []          # the first scrape is the window's start
    seen = served(client, local.outbound_url("client", "reviews"), 200)
    from_web = served(client, local.outbound_url("web", "reviews.shop"), 20)
    graph = build_graph(local.spec, source.edges())
    edges = {(e["source"], e["target"]): e for e in graph["edges"]}
    svc = service_id(NS, "reviews")
    v1, v2 = (edges[(svc, workload_id(NS, "reviews", v))]["rps"] for v in ("v1", "v2"))
    total = sum(seen.values()) + sum(from_web.values())
    want = (seen.get("reviews-v2", 0) + from_web.get("reviews-v2", 0)) / total
    assert v2 / (v1 + v2) == pytest.approx(want, abs=0.01), (v1, v2, seen, from_web)
    assert (workload_id("front", "web", "v1"), svc) in edges
    assert not any(src in ("", "unknown") for src, _ in edges), sorted(edges)


def test_kiali_queries_draw_the_waypoints_series(local: LocalMesh, tmp_path: Path) -> None:
    """With Prometheus (through the bridge), an ambient service is drawn from
    ``reporter="waypoint"`` series: there is no destination sidecar to report it."""
    prometheus = LocalPrometheus(rule_groups=istio_bridge_rule_groups(interval="1s"),
                                 workdir=tmp_path / "prometheus").start()
    traffic = None
    try:
        prometheus.reload_targets([envoy_scrape_job(local)])
        traffic = TrafficGenerator(local.outbound_url("client", "reviews"), rate=20,
                                   max_seconds=60).start()
        source = PrometheusTraffic(prometheus.url, lambda: local.spec, window="10s")
        deadline, versions = time.monotonic() + 40, {}
        while time.monotonic() < deadline:
            versions = {e.version: e for e in source.edges() if e.service == "reviews"}
            if {"v1", "v2"} <= versions.keys():
                break
            time.sleep(1)
        assert {"v1", "v2"} <= versions.keys(), versions
        assert versions["v1"].rps > versions["v2"].rps > 0   # 80/20
        assert versions["v1"].source == "unknown"             # no source labels here
        source.close()
    finally:
        if traffic is not None:
            traffic.stop()
        prometheus.stop()

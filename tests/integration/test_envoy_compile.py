"""The Envoy compiler against real Envoy 1.40: every proxy of bookinfo and of a mesh using
every supported feature passes ``envoy --mode validate`` without deprecation warnings, and a
small mesh of real sidecars, a gateway and demo apps behaves as Istio would (weighted split,
header match, fault abort, mTLS, RBAC, local rate limit, per-subset Prometheus stats,
canary weights applied live)."""

from __future__ import annotations

import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshdsl.compile.envoy import (
    CertFiles,
    LocalPlacement,
    ProxyConfig,
    allocate,
    compile_local,
    names,
    ports_needed,
)
from meshdsl.model import (
    Abort,
    Authority,
    ClientTls,
    ConnectionPool,
    ConsistentHash,
    Cors,
    Delay,
    Fault,
    From,
    Header,
    HeaderOps,
    Headers,
    HttpCookie,
    HttpPool,
    LoadBalancer,
    Mesh,
    Method,
    OutlierDetection,
    Query,
    Redirect,
    Retries,
    Rewrite,
    ServicePort,
    StringMatch,
    TcpPool,
    To,
    TrafficPolicy,
    Uri,
    Version,
    When,
    WithoutHeader,
)
from meshdsl.model.spec import MeshSpec
from reconciler.demo.apps import DemoApp
from reconciler.processes.ports import free_ports
from reconciler.targets.envoy.binary import find_envoy
from reconciler.targets.envoy.files import render, static_bootstrap
from reconciler.targets.envoy.pki import LocalCA
from reconciler.targets.envoy.process import EnvoyProcess
from tests.conftest import load_example

pytestmark = pytest.mark.integration

SERVED_BY = "x-served-by"


def _untyped(resources: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Static bootstrap entries must not carry ``@type`` (only xDS/Any values do)."""
    return [{k: v for k, v in r.items() if k != "@type"} for r in resources]


def _pki_placement(spec: MeshSpec, directory: Path) -> LocalPlacement:
    ca = LocalCA.create(directory)

    def identity(spiffe_id: str) -> CertFiles:
        pair = ca.issue_spiffe(spiffe_id)
        return CertFiles(str(pair.cert_path), str(pair.key_path))

    def credential(name: str, hosts: list[str]) -> CertFiles:
        pair = ca.issue_server([h.replace("*", "wildcard.local") for h in hosts])
        return CertFiles(str(pair.cert_path), str(pair.key_path), str(ca.cert_path))

    return allocate(spec, iter(free_ports(ports_needed(spec))), ca_cert=str(ca.cert_path),
                    identity=identity, credential=credential)


def _validate(proxy: ProxyConfig, workdir: Path) -> tuple[str, int, str]:
    config = static_bootstrap(listeners=_untyped(proxy.listeners),
                              clusters=_untyped(proxy.clusters), routes=proxy.routes,
                              node_id=proxy.id)
    path = workdir / f"{proxy.id}.yaml"
    path.write_text(render(config), encoding="utf-8")
    result = subprocess.run(
        [str(find_envoy()), "--mode", "validate", "-c", str(path), "--log-level", "warn",
         "--disable-hot-restart"],
        capture_output=True, text=True, timeout=60, check=False)
    output = result.stdout + result.stderr
    complaints = [line for line in output.splitlines()
                  if "Deprecated" in line or "critical" in line or "error" in line]
    return proxy.id, result.returncode, "\n".join(complaints)


def kitchen_sink() -> MeshSpec:
    """Every feature the compiler knows, at once, so Envoy judges every shape it emits."""
    mesh = Mesh("sink", namespace="shop", mtls="PERMISSIVE")
    web = mesh.service("web", port=[ServicePort(number=9080, name="http"),
                                    ServicePort(number=9090, name="grpc-api")])
    web.deploy("v1", image="web")
    canary = Version("v2", labels={"track": "canary"},
                     traffic_policy=TrafficPolicy(load_balancer=LoadBalancer(simple="RANDOM")))
    api = mesh.service("api", port=8080, versions=["v1", canary])
    api.deploy("v1", image="api").deploy("v2", image="api")
    api.policy(
        connection_pool=ConnectionPool(
            tcp=TcpPool(max_connections=10, connect_timeout="250ms"),
            http=HttpPool(http1_max_pending_requests=5, http2_max_requests=50, max_retries=2,
                          max_requests_per_connection=3, idle_timeout="30s")),
        load_balancer=LoadBalancer(consistent_hash=ConsistentHash(
            http_cookie=HttpCookie(name="s", ttl="1h", path="/"), minimum_ring_size=1024)),
        outlier_detection=OutlierDetection(consecutive_5xx_errors=3,
                                           consecutive_gateway_errors=2, interval="5s",
                                           base_ejection_time="30s", max_ejection_percent=50,
                                           min_health_percent=10))
    shadow = mesh.service("shadow", port=8080)
    shadow.deploy("v1", image="shadow").policy(tls=ClientTls(mode="ISTIO_MUTUAL"))
    db = mesh.service("db", port=ServicePort(number=5432, name="tcp-postgres"))
    db.deploy("v1", image="db").mtls("STRICT")
    db.tcp_route(to=db)
    legacy = mesh.service("legacy", port=8080)
    legacy.deploy("v1", image="legacy").mtls("DISABLE").policy(tls=ClientTls(mode="DISABLE"))
    api.route(match=Uri(regex="/v[0-9]+/.*", ignore_case=True) & Header("x-user", prefix="u")
              & Query("debug", exact="1") & Method("GET"),
              to={api.v1: 50, api.v2: 50}, timeout="3s",
              retries=Retries(attempts=2, per_try_timeout="1s", retry_on="5xx,503"),
              mirror=shadow, mirror_percent=10,
              headers=Headers(request=HeaderOps(set={"x-a": "1"}, add={"x-b": "2"},
                                                remove=["x-c"]),
                              response=HeaderOps(set={"x-d": "4"}, remove=["server"])),
              cors=Cors(allow_origins=[StringMatch(exact="https://a.example"),
                                       StringMatch(regex="https://.*[.]b[.]example")],
                        allow_methods=["GET"], allow_headers=["x-token"],
                        expose_headers=["x-id"], max_age="24h", allow_credentials=True))
    api.route(match=Uri(prefix="/old"), redirect=Redirect(uri="/new", redirect_code=302))
    api.route(match=Uri(exact="/moved"), redirect=Redirect(authority="new.example", scheme="https",
                                                           port=8443, redirect_code=308))
    api.route(match=WithoutHeader("x-a", exact="1") & Authority(prefix="api"), to=api.v2,
              fault=Fault(delay=Delay(fixed="100ms", percent=5), abort=Abort(status=503,
                                                                           percent=1.5)),
              rewrite=Rewrite(uri="/", authority="api.internal"))
    api.route(to={api.v1: 90, api.v2: 10})
    api.authorization("deny", action="DENY").rule(
        from_=From(not_namespaces=["shop"], ip_blocks=["10.0.0.0/8"],
                   request_principals=["issuer/subject"]),
        to=To(not_paths=["/public*"], ports=[8080], not_hosts=["*.internal"]),
        when=[When(key="request.headers[x-env]", values=["prod"], not_values=["dev*"]),
              When(key="source.ip", values=["1.2.3.4"])])
    api.authorization("allow").rule(
        from_=[From(principals=["*"], remote_ip_blocks=["127.0.0.1/32"]),
               From(namespaces=["shop", "team-*"], not_principals=["*/sa/bad"])],
        to=To(hosts=["*.example.com"], methods=["GET"], paths=["*/info", "/exact", "*"],
              not_ports=[9999]),
        when=[When(key="connection.sni", values=["x"]),
              When(key="destination.port", values=["8080"]),
              When(key="remote.ip", values=["127.0.0.1"]),
              When(key="source.principal", values=["cluster.local/ns/shop/sa/web"])])
    api.authorization("audit", action="AUDIT").rule(to=To(paths=["/audit"]))
    api.authorization("ext", action="CUSTOM").rule(to=To(paths=["/ext"]))
    api.rate_limit(max_tokens=10, tokens_per_fill=5, fill_interval="500ms")
    db.allow(web)
    edge = mesh.gateway("edge")
    edge.http("shop.example.com", https_redirect=True)
    edge.https("shop.example.com", credential="shop-cert")
    edge.https("a.example.com", credential="a-cert", port=8443, name="https-a", mode="MUTUAL")
    edge.https("b.example.com", credential="b-cert", port=8443, name="https-b")
    edge.routes("front").route(match=Uri(prefix="/api"), to=api.v2).route(to=web.on(9080))
    mesh.namespace("istio-system").authorization("gw", selector={"istio": "ingressgateway"},
                                                 action="DENY").rule(
        to=To(paths=["/admin*"], ports=[443]))
    return mesh.build()


@pytest.mark.parametrize("example", ["bookinfo", "ambient", "kitchen-sink"])
def test_every_proxy_passes_envoy_validate(example: str, tmp_path: Path) -> None:
    spec = kitchen_sink() if example == "kitchen-sink" else load_example(example)
    placement = _pki_placement(spec, tmp_path / "ca")
    proxies = compile_local(spec, placement)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: _validate(p, tmp_path), proxies.values()))
    for proxy_id, code, complaints in results:
        assert code == 0 and not complaints, f"{proxy_id}:\n{complaints}"


# --- a live mesh ------------------------------------------------------------------------


def shop() -> MeshSpec:
    """Three services in STRICT mTLS: reviews (two versions, routes and an ALLOW policy),
    ratings (a local rate limit), productpage (behind an HTTP gateway)."""
    mesh = Mesh("itest", namespace="shop")
    mesh.mtls("STRICT")
    productpage = mesh.service("productpage", port=9080)
    productpage.deploy("v1", image="demo")
    reviews = mesh.service("reviews", port=9080, versions=["v1", "v2"])
    reviews.deploy("v1", image="demo").deploy("v2", image="demo")
    reviews.route(match=Header("end-user", exact="jason"), to=reviews.v2)
    reviews.route(match=Uri(prefix="/fault"), to=reviews.v1,
                  fault=Fault(abort=Abort(status=418)))
    reviews.route(to={reviews.v1: 90, reviews.v2: 10})
    reviews.allow(productpage)
    ratings = mesh.service("ratings", port=9080)
    ratings.deploy("v1", image="demo")
    ratings.rate_limit(max_tokens=3, tokens_per_fill=3, fill_interval="60s")
    gateway = mesh.gateway("shop-gateway")
    gateway.http("*")
    gateway.routes("front", hosts=["*"]).route(to=productpage)
    return mesh.build()


@dataclass
class LiveMesh:
    spec: MeshSpec
    placement: LocalPlacement
    envoys: dict[str, EnvoyProcess]
    client: httpx.Client

    def outbound(self, caller: str, service: str) -> str:
        """URL of ``caller``'s sidecar listener for ``service`` (namespace shop, port 9080)."""
        key = next(k for k in self.placement.sidecars if k.proxy_id == caller)
        return f"http://127.0.0.1:{self.placement.sidecars[key].outbound[('shop', service, 9080)]}"

    def served_by(self, url: str, count: int, **kwargs: Any) -> Counter[str]:
        seen: Counter[str] = Counter()
        for _ in range(count):
            response = self.client.get(url, **kwargs)
            seen[response.headers.get(SERVED_BY, str(response.status_code))] += 1
        return seen

    def apply(self, proxies: dict[str, ProxyConfig], version: str) -> None:
        def update(proxy_id: str) -> None:
            proxy = proxies[proxy_id]
            self.envoys[proxy_id].update(proxy.listeners, proxy.clusters, version,
                                         routes=proxy.routes, timeout=4)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(update, self.envoys))


@pytest.fixture(scope="module")
def live() -> Iterator[LiveMesh]:
    """The shop mesh running: a demo app and an Envoy per workload, plus the gateway."""
    spec = shop()
    with tempfile.TemporaryDirectory(prefix="envoy-compile-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        placement = _pki_placement(spec, root / "ca")
        proxies = compile_local(spec, placement)
        apps = [DemoApp(key.service, key.version, port=where.app.port)
                for key, where in placement.sidecars.items()]
        envoys = {proxy_id: EnvoyProcess(root / proxy_id, node_id=proxy_id, log_level="warn")
                  for proxy_id in proxies}
        components: list[DemoApp | EnvoyProcess] = [*apps, *envoys.values()]
        for component in components:
            stack.callback(component.stop)
        with ThreadPoolExecutor(max_workers=8) as pool:  # ~1 s instead of ~8 s one by one
            list(pool.map(lambda c: c.start(), components))
        client = stack.enter_context(httpx.Client(timeout=10, trust_env=False))
        mesh = LiveMesh(spec, placement, envoys, client)
        mesh.apply(proxies, "1")
        yield mesh


def test_weighted_split_reaches_both_versions_through_mtls(live: LiveMesh) -> None:
    seen = live.served_by(live.outbound("productpage-v1.shop", "reviews"), 300)
    assert set(seen) == {"reviews-v1", "reviews-v2"}, seen
    assert 0.8 < seen["reviews-v1"] / 300 < 0.97, seen


def test_header_match_routes_to_v2(live: LiveMesh) -> None:
    seen = live.served_by(live.outbound("productpage-v1.shop", "reviews"), 20,
                          headers={"end-user": "jason"})
    assert seen == Counter({"reviews-v2": 20})


def test_fault_abort_answers_the_configured_status(live: LiveMesh) -> None:
    response = live.client.get(live.outbound("productpage-v1.shop", "reviews") + "/fault/x")
    assert response.status_code == 418
    assert SERVED_BY not in response.headers


def test_authorization_allows_only_the_named_caller(live: LiveMesh) -> None:
    response = live.client.get(live.outbound("ratings-v1.shop", "reviews"))
    assert response.status_code == 403
    assert "RBAC" in response.text
    caller = live.client.get(live.outbound("productpage-v1.shop", "reviews"))
    assert "spiffe://cluster.local/ns/shop/sa/productpage" in caller.json()["headers"].get(
        "x-forwarded-client-cert", "")


def test_strict_mtls_refuses_plaintext(live: LiveMesh) -> None:
    key = next(k for k in live.placement.sidecars if k.proxy_id == "reviews-v1.shop")
    with pytest.raises(httpx.TransportError):
        live.client.get(f"http://127.0.0.1:{live.placement.sidecars[key].inbound.port}/")


def test_local_rate_limit_answers_429_when_the_bucket_is_empty(live: LiveMesh) -> None:
    url = live.outbound("productpage-v1.shop", "ratings")
    codes = [live.client.get(url).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200]
    assert codes[3:] == [429, 429]


def test_gateway_routes_to_productpage(live: LiveMesh) -> None:
    port = live.placement.gateways["istio-ingressgateway"].ports[80]
    response = live.client.get(f"http://127.0.0.1:{port}/products",
                               headers={"host": "shop.example.com"})
    assert response.status_code == 200
    assert response.headers[SERVED_BY] == "productpage-v1"


def test_subset_and_inbound_stats_reach_prometheus_output(live: LiveMesh) -> None:
    live.served_by(live.outbound("productpage-v1.shop", "reviews"), 5,
                   headers={"end-user": "jason"})
    metrics = live.envoys["productpage-v1.shop"].stats_prometheus()
    v2 = names.subset_stat_name("shop", "reviews", 9080, "v2")
    lines = [line for line in metrics.splitlines()
             if line.startswith("envoy_cluster_upstream_rq_xx{")
             and f'envoy_cluster_name="{v2}"' in line and 'class="2"' in line]
    assert lines and int(lines[0].rsplit(" ", 1)[1]) >= 5, lines
    served = live.envoys["reviews-v2.shop"].stats_prometheus()
    inbound = names.stat_name(names.inbound_cluster(9080, "v2", "reviews.shop.svc.cluster.local"))
    assert f'envoy_cluster_name="{inbound}"' in served
    assert f'envoy_http_conn_manager_prefix="{inbound}"' in served


def test_canary_weights_apply_live(live: LiveMesh) -> None:
    url = live.outbound("productpage-v1.shop", "reviews")
    try:
        live.apply(compile_local(live.spec, live.placement,
                                 weights={("shop", "reviews"): {"v1": 0, "v2": 100}}), "2")
        assert live.served_by(url, 30) == Counter({"reviews-v2": 30})
    finally:
        live.apply(compile_local(live.spec, live.placement), "3")
    assert set(live.served_by(url, 100)) == {"reviews-v1", "reviews-v2"}

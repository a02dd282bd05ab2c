"""The local Envoy target against the real Envoy 1.40 binary and real upstream services.

Covers what the local mesh promises: weighted routing, hot updates without a restart, zero
failed requests while config changes under load, rejected updates leaving the old config in
place, and Istio-style mutual TLS between two Envoys with SPIFFE certificates.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from reconciler.demo.apps import DemoApp
from reconciler.processes.ports import free_port
from reconciler.targets.envoy import (
    EnvoyConfigError,
    EnvoyProcess,
    EnvoyUpdateRejectedError,
    XdsVersions,
    validate_resources,
)
from reconciler.targets.envoy.pki import LocalCA, workload_secrets
from reconciler.testing.envoy_config import (
    http_listener,
    mtls_downstream,
    mtls_upstream,
    route_table,
    static_cluster,
    weighted_route,
)
from tests.integration.conftest import ROUTES, Ingress

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

def _client() -> httpx.Client:
    return httpx.Client(timeout=5.0, trust_env=False)


def _served_by(client: httpx.Client, url: str, count: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(count):
        response = client.get(url)
        assert response.status_code == 200, response.text
        seen[response.headers["x-served-by"]] += 1
    return seen


def test_weighted_split_and_hot_update_without_restart(
    envoy: EnvoyProcess, reviews: tuple[DemoApp, DemoApp], ingress: Ingress
) -> None:
    v1, v2 = reviews
    listeners, url = ingress.listeners, ingress.url
    clusters = [static_cluster("v1", v1.port), static_cluster("v2", v2.port)]

    envoy.update(
        listeners,
        clusters,
        "1",
        routes=[route_table(ROUTES, [weighted_route({"v1": 90, "v2": 10})])],
    )
    assert envoy.versions() == XdsVersions("1", "1")
    pid = envoy.pid
    with _client() as client:
        seen = _served_by(client, url, 500)
        assert set(seen) <= {"reviews-v1", "reviews-v2"}
        assert 0.05 <= seen["reviews-v2"] / 500 <= 0.17, seen

        envoy.update(
            listeners, clusters, "2", routes=[route_table(ROUTES, [weighted_route({"v2": 100})])]
        )
        envoy.wait_for_version("2", timeout=5)
        assert envoy.versions() == XdsVersions("2", "2")
        # Same client, same keep-alive connections: RDS updates apply to the next request.
        assert _served_by(client, url, 100) == {"reviews-v2": 100}
    assert envoy.pid == pid
    assert envoy.ready()
    assert 'envoy_cluster_name="v2"' in envoy.stats_prometheus()


def test_zero_failed_requests_while_config_changes_under_load(
    envoy: EnvoyProcess, reviews: tuple[DemoApp, DemoApp], ingress: Ingress
) -> None:
    v1, v2 = reviews
    url, rds_listener = ingress.url, ingress.listeners

    def rds(weights: dict[str, int]) -> list[dict[str, object]]:
        return [route_table(ROUTES, [weighted_route(weights)])]

    def clusters(*names: str) -> list[dict[str, object]]:
        return [static_cluster(n, app.port) for n, app in zip(names, (v1, v2), strict=True)]

    envoy.update(rds_listener, clusters("v1", "v2"), "0", routes=rds({"v1": 100}))
    pid = envoy.pid
    stop = threading.Event()
    failures: list[str] = []
    served: Counter[str] = Counter()

    def load(keep_alive: bool) -> None:
        limits = httpx.Limits(max_keepalive_connections=10 if keep_alive else 0)
        with httpx.Client(timeout=5.0, trust_env=False, limits=limits) as client:
            deadline = time.monotonic() + 50
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    response = client.get(url)
                except httpx.HTTPError as err:
                    failures.append(f"{type(err).__name__}: {err}")
                    continue
                if response.status_code != 200:
                    failures.append(f"HTTP {response.status_code}: {response.text[:200]}")
                else:
                    served[response.headers["x-served-by"]] += 1

    threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in (True, False)]
    for thread in threads:
        thread.start()
    steps = [
        # (listeners, clusters, routes): weights, cluster renames, a listener change.
        (rds_listener, clusters("v1", "v2"), rds({"v1": 50, "v2": 50})),
        (rds_listener, clusters("v1", "v2"), rds({"v2": 100})),
        (rds_listener, clusters("b1", "b2"), rds({"b1": 100})),
        (
            [
                http_listener(
                    "ingress",
                    ingress.port,
                    route_config=route_table("inline", [weighted_route({"v2": 100})]),
                )
            ],
            clusters("v1", "v2"),
            [],
        ),
        (rds_listener, clusters("v1", "v2"), rds({"v1": 90, "v2": 10})),
    ]
    try:
        for number, (listeners, cluster_set, routes) in enumerate(steps, start=1):
            time.sleep(0.3)
            envoy.update(listeners, cluster_set, f"load-{number}", routes=routes)
            assert envoy.versions() == XdsVersions(f"load-{number}", f"load-{number}")
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert failures == []
    assert sum(served.values()) > 500, served
    assert envoy.pid == pid


def test_rejected_update_keeps_serving_previous_config(
    envoy: EnvoyProcess, reviews: tuple[DemoApp, DemoApp], ingress: Ingress
) -> None:
    v1, _ = reviews
    port, listeners = ingress.port, ingress.listeners
    clusters = [static_cluster("v1", v1.port)]
    routes = [route_table(ROUTES, [weighted_route({"v1": 1})])]
    envoy.update(listeners, clusters, "good", routes=routes)

    bad_cluster = {**static_cluster("v1", v1.port), "lb_policy": "NO_SUCH_POLICY"}
    with pytest.raises(EnvoyUpdateRejectedError, match="NO_SUCH_POLICY"):
        envoy.update(listeners, [bad_cluster], "bad", routes=routes)
    inline_missing = route_table("inline", [weighted_route({"missing": 1})])
    with pytest.raises(EnvoyUpdateRejectedError, match="unknown weighted cluster 'missing'"):
        envoy.update(
            [http_listener("ingress", port, route_config=inline_missing)], clusters, "bad2"
        )

    assert envoy.versions().listeners == "good"
    with _client() as client:
        assert _served_by(client, f"http://127.0.0.1:{port}/", 5) == {"reviews-v1": 5}


def test_validate_config_reports_envoys_message() -> None:
    listener = http_listener("ingress", 10000, route_config_name=ROUTES)
    routes = [route_table(ROUTES, [weighted_route({"v1": 90, "v2": 10})])]
    validate_resources(
        listeners=[listener],
        clusters=[static_cluster("v1", 10001), static_cluster("v2", 10002)],
        routes=routes,
    )
    with pytest.raises(EnvoyConfigError, match="unknown weighted cluster 'v2'"):
        validate_resources(
            listeners=[listener], clusters=[static_cluster("v1", 10001)], routes=routes
        )


def test_mutual_tls_between_two_envoys_with_spiffe_identities(
    tmp_path: Path, reviews: tuple[DemoApp, DemoApp]
) -> None:
    v1, _ = reviews
    ca = LocalCA.create(tmp_path / "ca")
    client_id = "spiffe://cluster.local/ns/default/sa/productpage"
    server_id = "spiffe://cluster.local/ns/default/sa/reviews"
    client_pair = ca.issue_spiffe(client_id, [])
    server_pair = ca.issue_spiffe(server_id, ["reviews.default.svc.cluster.local"])
    inbound, outbound = free_port(), free_port()
    sni = "outbound_.9080_._.reviews.default.svc.cluster.local"

    with (
        EnvoyProcess(
            tmp_path / "server", node_id="reviews", secrets=workload_secrets(server_pair)
        ) as server,
        EnvoyProcess(
            tmp_path / "client", node_id="productpage", secrets=workload_secrets(client_pair)
        ) as client_side,
    ):
        server.update(
            [
                http_listener(
                    "inbound",
                    inbound,
                    route_config=route_table("inbound", [weighted_route({"local": 1})]),
                    transport_socket=mtls_downstream(),
                    forward_client_cert=True,
                )
            ],
            [static_cluster("local", v1.port)],
            "1",
        )
        upstream = "outbound|9080||reviews.default.svc.cluster.local"
        outbound_listener = http_listener(
            "outbound",
            outbound,
            route_config=route_table("outbound", [weighted_route({upstream: 1})]),
        )
        client_side.update(
            [outbound_listener],
            [static_cluster(upstream, inbound, transport_socket=mtls_upstream(server_id, sni=sni))],
            "1",
        )

        with _client() as http:
            response = http.get(f"http://127.0.0.1:{outbound}/reviews/0")
            assert response.status_code == 200, response.text
            assert response.headers["x-served-by"] == "reviews-v1"
            xfcc = response.json()["headers"]["x-forwarded-client-cert"]
            assert f"URI={client_id}" in xfcc

            with pytest.raises(httpx.TransportError):
                http.get(f"http://127.0.0.1:{inbound}/reviews/0")

        no_client_cert = ssl.create_default_context(cafile=str(ca.cert_path))
        no_client_cert.check_hostname = False
        with (
            httpx.Client(verify=no_client_cert, timeout=5.0, trust_env=False) as tls_only,
            pytest.raises(httpx.TransportError),
        ):
            tls_only.get(f"https://127.0.0.1:{inbound}/reviews/0")

        with_client_cert = ssl.create_default_context(cafile=str(ca.cert_path))
        with_client_cert.check_hostname = False
        with_client_cert.load_cert_chain(str(client_pair.cert_path), str(client_pair.key_path))
        with httpx.Client(verify=with_client_cert, timeout=5.0, trust_env=False) as mesh_peer:
            assert mesh_peer.get(f"https://127.0.0.1:{inbound}/reviews/0").status_code == 200

        # The client side insists on the server's identity: expect another SA and it fails.
        wrong = mtls_upstream("spiffe://cluster.local/ns/default/sa/ratings", sni=sni)
        client_side.update(
            [outbound_listener], [static_cluster(upstream, inbound, transport_socket=wrong)], "2"
        )
        with _client() as http:
            assert http.get(f"http://127.0.0.1:{outbound}/reviews/0").status_code == 503

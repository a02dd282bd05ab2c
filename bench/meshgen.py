"""Synthetic meshes for the benchmarks: N services, each with 3 versions, 4 routes, a
DestinationRule with a traffic policy and an AuthorizationPolicy naming its caller."""

from __future__ import annotations

from meshdsl import (
    ConnectionPool,
    Header,
    HttpPool,
    LoadBalancer,
    Mesh,
    OutlierDetection,
    Query,
    Retries,
    Uri,
)


def generate(n: int, *, namespaces: int = 10, name: str = "bench",
             mode: str = "sidecar") -> Mesh:
    """``mode="ambient"`` puts every namespace in ambient mode (and retries on 503, since
    Gateway API retries list status codes: ``5xx`` is a finding there)."""
    mesh = Mesh(name)
    scopes = [mesh.namespace(f"team-{i:02d}", mode=mode) for i in range(namespaces)]
    retry_on = "5xx" if mode == "sidecar" else "503"
    previous = None
    for i in range(n):
        scope = scopes[i % namespaces]
        svc = scope.service(f"svc-{i:05d}", port=8080, versions=["v1", "v2", "v3"])
        svc.route(match=Header("x-canary", exact="true"), to=svc.v2)
        svc.route(match=Uri(prefix="/beta"), to=svc.v3, timeout="5s")
        svc.route(match=Query("version", exact="1"), to=svc.v1)
        svc.route(to={svc.v1: 80, svc.v2: 10, svc.v3: 10}, timeout="10s",
                  retries=Retries(attempts=3, per_try_timeout="2s", retry_on=retry_on))
        svc.policy(
            connection_pool=ConnectionPool(http=HttpPool(http1_max_pending_requests=100,
                                                         max_requests_per_connection=10)),
            load_balancer=LoadBalancer(simple="LEAST_REQUEST"),
            outlier_detection=OutlierDetection(consecutive_5xx_errors=5, interval="30s",
                                               base_ejection_time="30s"),
        )
        svc.allow(*([previous] if previous is not None else []), namespaces=[scope.ns],
                  methods=["GET", "POST"])
        previous = svc
    return mesh

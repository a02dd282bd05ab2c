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


def generate(n: int, *, namespaces: int = 10, name: str = "bench") -> Mesh:
    mesh = Mesh(name)
    scopes = [mesh.namespace(f"team-{i:02d}") for i in range(namespaces)]
    previous = None
    for i in range(n):
        scope = scopes[i % namespaces]
        svc = scope.service(f"svc-{i:05d}", port=8080, versions=["v1", "v2", "v3"])
        svc.route(match=Header("x-canary", exact="true"), to=svc.v2)
        svc.route(match=Uri(prefix="/beta"), to=svc.v3, timeout="5s")
        svc.route(match=Query("version", exact="1"), to=svc.v1)
        svc.route(to={svc.v1: 80, svc.v2: 10, svc.v3: 10}, timeout="10s",
                  retries=Retries(attempts=3, per_try_timeout="2s", retry_on="5xx"))
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

"""The dashboard's graph edges from two scrapes of a proxy's Envoy stats."""

from __future__ import annotations

from reconciler.dashboard.traffic import _proxy_edges
from reconciler.metrics.envoy_stats import Samples


def rq(cluster: str, code: str, value: float) -> tuple[tuple[str, tuple[tuple[str, str], ...]],
                                                        float]:
    return (("envoy_cluster_upstream_rq",
             (("envoy_cluster_name", cluster), ("envoy_response_code", code))), value)


OUT_V2 = "outbound|9080|v2|reviews.shop.svc.cluster.local"
VIP_V1 = "inbound-vip|9080|v1|reviews.shop.svc.cluster.local"
VIP_V2 = "inbound-vip|9080|v2|reviews.shop.svc.cluster.local"
INBOUND = "inbound|9080|v1|reviews.shop.svc.cluster.local"


def test_callers_outbound_and_a_waypoints_inbound_vip_clusters_become_edges() -> None:
    before: Samples = dict([rq(OUT_V2, "200", 10), rq(VIP_V1, "200", 100),
                            rq(VIP_V2, "503", 0), rq(INBOUND, "200", 5)])
    after: Samples = dict([rq(OUT_V2, "200", 30), rq(VIP_V1, "200", 140),
                           rq(VIP_V2, "503", 10), rq(INBOUND, "200", 500)])
    edges = _proxy_edges("wl:shop/front-v1", before, after, elapsed=10.0)
    got = {(e.source, e.service, e.version): (e.rps, e.error_rps) for e in edges}
    assert got == {("wl:shop/front-v1", "reviews", "v2"): (2.0, 0.0),   # this proxy calls
                   ("", "reviews", "v1"): (4.0, 0.0),                   # a waypoint passes on
                   ("", "reviews", "v2"): (1.0, 1.0)}
    # a sidecar's own inbound cluster is left out: its callers' outbound already counts it

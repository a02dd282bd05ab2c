from __future__ import annotations

import pytest

from meshdsl.compile.envoy import names


@pytest.mark.parametrize(("port", "subset", "expected"), [
    (9080, "v2", "outbound|9080|v2|reviews.bookinfo.svc.cluster.local"),
    (9080, None, "outbound|9080||reviews.bookinfo.svc.cluster.local"),
])
def test_outbound_cluster_names_follow_istio(port: int, subset: str | None,
                                             expected: str) -> None:
    assert names.outbound_cluster(port, subset, "reviews.bookinfo.svc.cluster.local") == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("outbound|9080|v2|reviews.bookinfo.svc.cluster.local",
     "outbound|9080|v2|reviews_bookinfo_svc_cluster_local"),
    ("inbound|9080|v1|ratings.bookinfo.svc.cluster.local",
     "inbound|9080|v1|ratings_bookinfo_svc_cluster_local"),
    ("http.80", "http_80"),
    ("a:b", "a_b"),
])
def test_stat_names_have_no_dots_for_envoys_tag_extraction(name: str, expected: str) -> None:
    assert names.stat_name(name) == expected


def test_subset_stat_name_is_what_prometheus_shows() -> None:
    assert names.subset_stat_name("bookinfo", "reviews", 9080, "v2") == (
        "outbound|9080|v2|reviews_bookinfo_svc_cluster_local")


@pytest.mark.parametrize(("selector", "workload"), [
    ({"istio": "ingressgateway"}, "istio-ingressgateway"),
    ({"istio": "egressgateway"}, "istio-egressgateway"),
    ({"app": "edge", "tier": "front"}, "edge-front"),
])
def test_gateway_workload_names(selector: dict[str, str], workload: str) -> None:
    assert names.gateway_workload(selector) == workload


def test_proxy_ids_sni_and_spiffe() -> None:
    assert names.sidecar_id("bookinfo", "reviews", "v2") == "reviews-v2.bookinfo"
    assert names.gateway_id("istio-ingressgateway", "istio-system") == (
        "istio-ingressgateway.istio-system")
    assert names.sni("outbound|9080||a.b.svc.cluster.local") == (
        "outbound_.9080_._.a.b.svc.cluster.local")
    assert names.spiffe("cluster.local", "ns", "sa") == "spiffe://cluster.local/ns/ns/sa/sa"

"""Names of everything the Envoy compiler emits — the contract with metrics and the runtime.

Clusters are named like Istio's, so a newcomer reading ``/clusters`` or a config dump sees
the same strings as on a real mesh:

=====================================================  ======================================
``outbound|9080||reviews.bookinfo.svc.cluster.local``    every endpoint of a service port
``outbound|9080|v2|reviews.bookinfo.svc.cluster.local``  one subset (a DestinationRule subset)
``inbound|9080|v2|reviews.bookinfo.svc.cluster.local``   a sidecar's own app (server side)
``inbound-vip|9080|v2|reviews.shop.svc.cluster.local``   a waypoint to one subset it serves
``inbound-l4|9080|v2|reviews.shop.svc.cluster.local``    an ambient workload's L4 proxy to
                                                         its app (TCP: no request stats)
=====================================================  ======================================

Istio's inbound clusters are ``inbound|9080||``; ours carry the version and host too, so the
server-side view of a canary is one label value away, without relabelling scrape targets.

**Stats.** Envoy's built-in tag extraction cuts a cluster name at its first ``.``
(``envoy_cluster_name="outbound|9080|v2|reviews"`` and the rest glued onto the metric name:
``envoy_cluster_bookinfo_svc_cluster_local_upstream_rq``). Istio avoids that with custom
``stats_tags`` in its bootstrap; the local mesh does not own the bootstrap, so every cluster
carries an ``alt_stat_name`` with ``.`` and ``:`` replaced by ``_`` (:func:`stat_name`), and
``/stats/prometheus`` shows, for example::

    envoy_cluster_upstream_rq_xx{envoy_response_code_class="5",
        envoy_cluster_name="outbound|9080|v2|reviews_bookinfo_svc_cluster_local"} 3

HTTP connection managers use the same form as ``stat_prefix`` (label
``envoy_http_conn_manager_prefix``). In PromQL, match with ``=`` — ``|`` is alternation
inside ``=~`` — or escape it: ``=~"outbound\\\\|9080\\\\|v2\\\\|reviews.bookinfo.svc.cluster.local"``
matches our label *and* the Istio spelling, because ``.`` matches ``_``.

**Bridge to Istio's metrics.** Flagger-style checks read ``istio_requests_total`` with
``reporter="destination"``: the server side. Its local equivalent is the destination
sidecar's inbound cluster, whose stats name carries everything those labels need —
``inbound|<port>|<version>|<service>_<namespace>_svc_cluster_local`` (services and
namespaces are DNS labels, so they never contain ``_``), and ``<service>-<version>`` is the
Deployment name ``meshdsl.compile.kube`` gives the workload::

    destination_workload            ← label_replace(..., "$2-$1", "envoy_cluster_name",
                                        "inbound\\|[0-9]+\\|([^|]*)\\|([^_]+)_.*")
    destination_workload_namespace  ← label_replace(..., "$1", "envoy_cluster_name",
                                        "inbound\\|[0-9]+\\|[^|]*\\|[^_]+_([^_]+)_svc_.*")

``envoy_cluster_upstream_rq{envoy_response_code}`` counts what reached the app and
``envoy_cluster_upstream_rq_time_bucket`` is its latency in ms; requests the sidecar itself
answered (RBAC 403, rate-limit 429) show only in the inbound HTTP manager's
``envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix=<same name>}``.

**Waypoints.** In an ambient namespace the waypoint, not the destination's proxy, sees
the requests: its clusters toward the workloads it serves are ``inbound-vip|...`` (Istio's
waypoints name their service clusters ``inbound-vip|<port>|<protocol>|<host>``; ours keep
the subset in the third field, as above), and the bridge labels their series
``reporter="waypoint"`` with the same destination labels.

**Proxies.** A sidecar is ``<service>-<version>.<namespace>`` (``reviews-v2.bookinfo``), and
so is the L4 proxy of a workload in an ambient namespace; a waypoint is
``<name>.<namespace>`` (``waypoint.shop``); the gateway proxy for a selector is
``<name>.<root namespace>`` (``istio-ingressgateway.istio-system``). Route tables are named
after their listener.
"""

from __future__ import annotations

from collections.abc import Mapping

INGRESS_SELECTOR = {"istio": "ingressgateway"}


def service_fqdn(namespace: str, name: str) -> str:
    """The in-mesh host of a service (what :attr:`ServiceSpec.fqdn` is)."""
    return f"{name}.{namespace}.svc.cluster.local"


def outbound_cluster(port: int, subset: str | None, host: str) -> str:
    return f"outbound|{port}|{subset or ''}|{host}"


def inbound_cluster(port: int, version: str, host: str) -> str:
    return f"inbound|{port}|{version}|{host}"


def waypoint_cluster(port: int, subset: str | None, host: str) -> str:
    """A waypoint's cluster toward the workloads of a subset (or service) it serves; its
    listener for callers of that subset has the same name."""
    return f"inbound-vip|{port}|{subset or ''}|{host}"


def l4_inbound_cluster(port: int, version: str, host: str) -> str:
    """An ambient workload's L4 proxy toward its app. Named apart from ``inbound|`` so
    the metrics bridge, which reads request stats, never mistakes its TCP connection
    counts for a destination's requests (ztunnel reports no ``istio_requests_total``)."""
    return f"inbound-l4|{port}|{version}|{host}"


def stat_name(name: str) -> str:
    """What Prometheus shows for a cluster or HTTP stat prefix called ``name``."""
    return name.replace(".", "_").replace(":", "_")


def subset_stat_name(namespace: str, service: str, port: int, subset: str | None) -> str:
    """The ``envoy_cluster_name`` label of one subset's caller-side metrics."""
    return stat_name(outbound_cluster(port, subset, service_fqdn(namespace, service)))


def sni(cluster: str) -> str:
    """Istio's SNI for an outbound cluster: ``outbound_.9080_.v2_.reviews.bookinfo...``."""
    return cluster.replace("|", "_.")


def sidecar_id(namespace: str, service: str, version: str) -> str:
    return f"{service}-{version}.{namespace}"


def waypoint_id(name: str, namespace: str) -> str:
    return f"{name}.{namespace}"


def gateway_workload(selector: Mapping[str, str]) -> str:
    """The name of the gateway deployment a selector picks: ``istio=ingressgateway`` is
    ``istio-ingressgateway``, as installed by Istio; other selectors join their values."""
    if set(selector) == {"istio"}:
        return f"istio-{selector['istio']}"
    return "-".join(value for _, value in sorted(selector.items())) or "gateway"


def gateway_id(workload: str, root_namespace: str) -> str:
    return f"{workload}.{root_namespace}"


def gateway_account(workload: str) -> str:
    """The service account Istio's gateway charts give a gateway deployment."""
    return f"{workload}-service-account"


def spiffe(trust_domain: str, namespace: str, account: str) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{account}"


def outbound_listener(port: int, host: str) -> str:
    return outbound_cluster(port, None, host)


def gateway_route(protocol: str, port: int, server: str | None = None) -> str:
    """Istio's gateway route table names: ``http.80``,
    ``https.443.<port name>.<gateway>.<namespace>``."""
    base = f"{protocol}.{port}"
    return base if server is None else f"{base}.{server}"

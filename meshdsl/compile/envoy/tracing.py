"""Istio's Telemetry tracing for the local mesh: Envoy's Zipkin tracer on every proxy a
``Telemetry`` with ``tracing`` applies to, reporting to a collector on this machine.

Which declaration applies follows Istio: the workload's own (a selector matching its
labels) in its namespace, else its namespace's (no selector), else the mesh's (no
selector, root namespace). Each HTTP connection manager gets ``tracing`` with the
sampling percentage, and the proxy a ``zipkin`` cluster pointing at the collector; spans are
Zipkin v2 JSON posted to ``/api/v2/spans`` (what Jaeger and Zipkin accept too), named by
the proxy's node cluster (the service). The apps must pass the B3 / ``traceparent``
headers on (as Istio asks of every app) for the spans of one request to form one trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from meshdsl.compile.envoy import protos
from meshdsl.compile.envoy.clusters import static_cluster
from meshdsl.compile.envoy.placement import Address
from meshdsl.compile.envoy.protos import Resource
from meshdsl.compile.envoy.proxy import ProxyConfig, ProxyKind
from meshdsl.model.spec import MeshSpec
from meshdsl.model.telemetry import Telemetry, Tracing

__all__ = ["ZIPKIN_CLUSTER", "effective_tracing", "with_tracing"]

ZIPKIN_CLUSTER = "zipkin"
_ZIPKIN = "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig"
_GATEWAY_LABELS = {"istio": "ingressgateway"}
_GATEWAY_NAME = "gateway.networking.k8s.io/gateway-name"  # a waypoint pod's label


def effective_tracing(spec: MeshSpec, namespace: str, labels: Mapping[str, str]
                      ) -> Tracing | None:
    """The tracing that applies to a workload with ``labels`` in ``namespace``."""
    def traced(t: Telemetry) -> bool:
        return t.tracing is not None

    levels = [
        [t for t in spec.telemetry if t.namespace == namespace and t.selector
         and all(labels.get(k) == v for k, v in t.selector.items())],
        [t for t in spec.telemetry if t.namespace == namespace and not t.selector],
        [t for t in spec.telemetry if t.namespace == spec.root_namespace and not t.selector],
    ]
    for level in levels:
        found = [t for t in level if traced(t)]
        if found:
            return found[0].tracing
    return None


def _hcm_tracing(tracing: Tracing) -> Resource:
    return {"random_sampling": {"value": float(tracing.sampling)},
            "provider": {"name": "envoy.tracers.zipkin", "typed_config": {
                "@type": _ZIPKIN, "collector_cluster": ZIPKIN_CLUSTER,
                "collector_endpoint": "/api/v2/spans",
                "collector_endpoint_version": "HTTP_JSON", "shared_span_context": False,
                "trace_id_128bit": True}}}


def _traced_listener(listener: Resource, tracing: Tracing) -> Resource:
    chains = []
    for chain in listener.get("filter_chains") or []:
        filters = []
        for f in chain.get("filters") or []:
            if f.get("name") == protos.HCM_FILTER:
                f = {**f, "typed_config": {**f["typed_config"],
                                           "tracing": _hcm_tracing(tracing)}}
            filters.append(f)
        chains.append({**chain, "filters": filters})
    return {**listener, "filter_chains": chains} if chains else listener


def with_tracing(configs: Mapping[str, ProxyConfig], spec: MeshSpec, collector: Address
                 ) -> dict[str, ProxyConfig]:
    """``configs`` with tracing where a Telemetry asks for it (others unchanged)."""
    out: dict[str, ProxyConfig] = {}
    for pid, config in configs.items():
        if config.kind is ProxyKind.ZTUNNEL:  # L4 only: no spans, as ztunnel
            tracing = None
        elif config.workload is not None:
            key = config.workload
            tracing = effective_tracing(spec, key.namespace,
                                        {"app": key.service, "version": key.version})
        elif config.waypoint is not None:
            tracing = effective_tracing(spec, config.waypoint.namespace,
                                        {_GATEWAY_NAME: config.waypoint.name})
        else:
            tracing = effective_tracing(spec, spec.root_namespace, _GATEWAY_LABELS)
        if tracing is None or tracing.disable_span_reporting:
            out[pid] = config
            continue
        endpoint: dict[str, Any] = {"endpoint": {"address": protos.socket_address(
            collector.host, collector.port)}}
        cluster = static_cluster(ZIPKIN_CLUSTER, [endpoint], [collector])
        cluster["connect_timeout"] = "1s"
        out[pid] = replace(config,
                           listeners=[_traced_listener(li, tracing) for li in config.listeners],
                           clusters=[*config.clusters, cluster])
    return out

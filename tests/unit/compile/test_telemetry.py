"""Istio's Telemetry API in the DSL: mesh, namespace and workload levels, compiled to
``telemetry.istio.io/v1`` (valid against Istio's CRD) and to Zipkin tracing for the local
Envoys."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from meshdsl import AccessLogging, Mesh, Tracing
from meshdsl.compile import compile_mesh
from meshdsl.compile.envoy import Address, compile_local, local_workloads
from meshdsl.compile.envoy.placement import LocalPlacement, SidecarPlacement
from meshdsl.compile.envoy.tracing import ZIPKIN_CLUSTER, effective_tracing, with_tracing
from meshdsl.model.spec import MeshSpec
from tests.unit.compile.test_schema import istio_schemas


def program() -> MeshSpec:
    mesh = Mesh("t", namespace="shop")
    mesh.telemetry(tracing=Tracing(sampling=1), access_logging=True)
    shop = mesh.namespace("shop")
    shop.telemetry(tracing=Tracing(sampling=20))
    web = shop.service("web", versions=["v1"])
    web.deploy("v1", image="web:1")
    web.telemetry(tracing=Tracing(sampling=100), access_logging=AccessLogging(disabled=True))
    shop.service("db", versions=["v1"])
    other = mesh.namespace("other")
    other.service("cron", versions=["v1"])
    return mesh.build()


def telemetries(spec: MeshSpec) -> dict[str, dict]:
    return {f"{m['metadata']['namespace']}/{m['metadata']['name']}": m
            for m in compile_mesh(spec) if m["kind"] == "Telemetry"}


def test_three_levels_compile_to_valid_telemetry_objects() -> None:
    found = telemetries(program())
    assert set(found) == {"istio-system/default", "shop/default", "shop/web"}
    for manifest in found.values():
        assert manifest["apiVersion"] == "telemetry.istio.io/v1"
        assert istio_schemas().errors(manifest) == []
    web = found["shop/web"]["spec"]
    assert web["selector"] == {"matchLabels": {"app": "web"}}
    assert web["tracing"] == [{"providers": [{"name": "zipkin"}],
                               "randomSamplingPercentage": 100.0,
                               "disableSpanReporting": False}]
    assert web["accessLogging"] == [{"providers": [{"name": "envoy"}], "disabled": True}]
    assert "selector" not in found["istio-system/default"]["spec"]


def test_sampling_is_a_percentage() -> None:
    with pytest.raises(ValidationError):
        Tracing(sampling=150)


@pytest.mark.parametrize(("namespace", "labels", "sampling"), [
    ("shop", {"app": "web", "version": "v1"}, 100.0),   # the workload's own
    ("shop", {"app": "db", "version": "v1"}, 20.0),     # its namespace's
    ("other", {"app": "cron", "version": "v1"}, 1.0),   # the mesh's
])
def test_most_specific_tracing_applies(namespace: str, labels: dict, sampling: float) -> None:
    tracing = effective_tracing(program(), namespace, labels)
    assert tracing is not None and tracing.sampling == sampling


def test_no_telemetry_no_tracing() -> None:
    mesh = Mesh("t")
    mesh.service("web", versions=["v1"])
    assert effective_tracing(mesh.build(), "default", {"app": "web"}) is None


def test_local_envoys_get_zipkin_on_every_http_manager() -> None:
    spec = program()
    placement = LocalPlacement(sidecars={
        key: SidecarPlacement(app=Address(20000 + i), inbound=Address(21000 + i),
                              outbound={})
        for i, key in enumerate(local_workloads(spec))})
    configs = with_tracing(compile_local(spec, placement), spec, Address(9411))
    web = next(c for c in configs.values() if c.workload and c.workload.service == "web")
    cluster = web.cluster(ZIPKIN_CLUSTER)
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert address["address"]["socket_address"]["port_value"] == 9411
    managers = [f["typed_config"] for li in web.listeners for ch in li["filter_chains"]
                for f in ch["filters"] if f["name"].endswith("http_connection_manager")]
    assert managers and all(m["tracing"]["random_sampling"]["value"] == 100.0
                            for m in managers)
    assert managers[0]["tracing"]["provider"]["typed_config"]["collector_endpoint"] == \
        "/api/v2/spans"

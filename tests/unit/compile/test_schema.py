"""Every compiled Istio object validates against Istio's own CRD schemas (offline)."""

from __future__ import annotations

import functools

import yaml

from meshdsl.compile import compile_mesh
from meshdsl.compile.schema import SchemaIndex
from meshdsl.model.spec import MeshSpec
from tests.conftest import SHARED


@functools.cache
def istio_schemas() -> SchemaIndex:
    path = SHARED / "istio" / "crd-all.gen.yaml"
    return SchemaIndex(yaml.safe_load_all(path.read_text()))


def test_every_istio_object_of_bookinfo_is_schema_valid(bookinfo: MeshSpec) -> None:
    checked = 0
    for manifest in compile_mesh(bookinfo):
        if "istio.io" not in manifest["apiVersion"]:
            continue
        assert istio_schemas().errors(manifest) == [], manifest["metadata"]["name"]
        checked += 1
    assert checked == 14


def test_schema_check_rejects_wrong_types_and_unknown_fields() -> None:
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "x"},
          "spec": {"hosts": ["x"], "http": [{"route": [
              {"destination": {"host": "x"}, "weight": "ten"}]}]}}
    errors = istio_schemas().errors(vs)
    assert any("weight" in e and "integer" in e for e in errors), errors
    dr = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
          "metadata": {"name": "x"},
          "spec": {"host": "x", "trafficPolicy": {"outlierDetection": {"minRequestVolume": 5}}}}
    assert any("minRequestVolume" in e for e in istio_schemas().errors(dr))

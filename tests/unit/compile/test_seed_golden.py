"""The bookinfo example compiles to every resource of the user's guide (golden files)."""

from __future__ import annotations

from pathlib import Path

import yaml

from meshdsl.compile import compile_mesh, render
from meshdsl.compile.compare import differences, normalize
from meshdsl.model import OutlierDetection
from meshdsl.model.base import dump
from meshdsl.model.spec import MeshSpec

GOLDEN = Path(__file__).parent / "golden"


def seed_resources() -> list[dict[str, object]]:
    return [d for d in yaml.safe_load_all((GOLDEN / "seed.yaml").read_text()) if d]


def test_seed_has_every_resource_of_the_guide() -> None:
    kinds = sorted(str(d["kind"]) for d in seed_resources())
    assert kinds == sorted(
        ["VirtualService"] * 5 + ["DestinationRule"] * 4 + ["Gateway"] * 2
        + ["PeerAuthentication", "AuthorizationPolicy", "Namespace", "EnvoyFilter"]
        + ["Service"] * 3 + ["Deployment"] * 4
    )


def test_bookinfo_compiles_to_the_seed(bookinfo: MeshSpec) -> None:
    assert differences(seed_resources(), compile_mesh(bookinfo)) == []


def test_a_changed_field_is_a_difference(bookinfo: MeshSpec) -> None:
    compiled = compile_mesh(bookinfo)
    for m in compiled:
        if m["kind"] == "VirtualService" and m["metadata"]["name"] == "frontend":
            m["spec"]["http"][0]["route"][0]["weight"] = 94
    assert any("frontend" in d for d in differences(seed_resources(), compiled))


def test_output_is_byte_identical_across_builds(bookinfo: MeshSpec) -> None:
    from tests.conftest import load_example

    assert render(bookinfo) == render(load_example("bookinfo"))


def test_rendered_golden_file_is_current(bookinfo: MeshSpec) -> None:
    """examples/bookinfo/rendered.yaml is reviewed like code; regenerate with
    `meshctl render examples/bookinfo/mesh.py > examples/bookinfo/rendered.yaml`."""
    golden = Path(__file__).parents[3] / "examples" / "bookinfo" / "rendered.yaml"
    assert golden.read_text() == render(bookinfo)


def test_every_object_carries_ownership_labels(bookinfo: MeshSpec) -> None:
    for m in compile_mesh(bookinfo):
        labels = m["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "meshdsl"
        assert labels["meshdsl.io/mesh"] == "bookinfo"
        assert "labels" not in normalize(m)["metadata"] or m["kind"] == "Namespace"


def test_circuit_breaker_fragment_is_expressible() -> None:
    fragment = yaml.safe_load((GOLDEN / "circuit-breaker-fragment.yaml").read_text())
    od = dict(fragment["outlierDetection"])
    od.pop("minRequestVolume")  # not an Istio field (see the fragment's comment)
    assert dump(OutlierDetection.model_validate(od)) == od


def test_normalize_tolerates_null_sections() -> None:
    assert normalize({"apiVersion": "v1", "kind": "Service", "spec": None,
                      "metadata": None})["metadata"] == {}
    assert normalize({"apiVersion": "v1", "kind": "Service",
                      "spec": {"ports": None}})["spec"] == {"ports": None}

"""Importing a real repository folder: other kinds carried raw, non-objects skipped.

``mixed/`` holds what sits beside mesh config in practice: a cert-manager ClusterIssuer,
an IstioOperator, a PodSecurityPolicy, a Helm values file, and the routing itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meshdsl.compile import compile_mesh
from meshdsl.importer import ImporterError, import_documents, run_program
from meshdsl.importer.folder import load_folder

MIXED = Path(__file__).parent / "mixed"


def test_a_mixed_folder_imports_and_renders_back_equal() -> None:
    folder = load_folder([MIXED])
    assert folder.skipped == [f"{MIXED / 'charts' / 'values.yaml'}: skipped, not Kubernetes "
                              "objects (a document without apiVersion and kind, like a Helm "
                              "values file)"]
    program = import_documents(folder.documents, name="mixed")
    carried = sorted(w.resource for w in program.warnings if "mesh.raw" in w.message)
    assert carried == ["ClusterIssuer letsencrypt", "IstioOperator istio-system/control-plane",
                       "PodSecurityPolicy restricted"]
    rendered = {(m["kind"], m["metadata"].get("namespace")): m
                for m in compile_mesh(run_program(program.source))}
    written = [d for f in sorted(MIXED.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]
    for doc in written:
        key = (doc["kind"], doc["metadata"].get("namespace"))
        assert key in rendered, key
        assert rendered[key]["spec"] == doc["spec"], key
    assert set(rendered) == {(d["kind"], d["metadata"].get("namespace")) for d in written}


def test_a_named_file_that_is_not_kubernetes_objects_is_skipped_with_a_warning() -> None:
    folder = load_folder([MIXED / "charts" / "values.yaml"])
    assert folder.documents == [] and len(folder.skipped) == 1


def test_a_typo_of_a_known_kind_is_still_an_error(tmp_path: Path) -> None:
    path = tmp_path / "vs.yaml"
    path.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualServce\n"
                    "metadata: {name: x}\nspec: {hosts: [x]}\n")
    with pytest.raises(ImporterError, match="did you mean VirtualService"):
        import_documents(load_folder([path]).documents)

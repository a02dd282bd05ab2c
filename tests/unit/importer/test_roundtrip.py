"""Importing and rendering gives back the input: every seed resource, and a corpus of
realistic configurations with the objects the DSL cannot express carried raw."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshdsl.compile import compile_mesh
from meshdsl.compile.compare import differences
from meshdsl.importer import import_documents, import_files, load_text, run_program
from reconciler.runtime.loader import load
from tests.unit.importer.support import CORPUS, SEED, yaml_objects

# file -> the objects that must travel through mesh.raw (everything else is typed)
EXPECTED_RAW = {
    "apps.yaml": {"Deployment shop/cart", "ConfigMap shop/checkout-config"},
    "bookinfo-routing.yaml": set(),
    "egress.yaml": {"VirtualService default/direct-cnn-through-egress-gateway",
                    "DestinationRule default/originate-tls-for-httpbin"},
    "fault-injection.yaml": set(),
    "grpc-and-tls.yaml": set(),
    "ingress.yaml": set(),
    "kubectl-export.yaml": set(),
    "mirroring.yaml": set(),
    "multi-namespace.yaml": {"DestinationRule api/backend"},
    "proxies-and-telemetry.yaml": {"Sidecar shop/default", "Telemetry istio-system/mesh-default",
                                   "WasmPlugin shop/basic-auth",
                                   "VirtualService shop/storefront-root"},
    "ratelimit.yaml": {"EnvoyFilter bookinfo/add-header"},
    "resilience.yaml": {"DestinationRule shop/inventory"},
    "security.yaml": {"RequestAuthentication foo/jwt-example",
                      "AuthorizationPolicy foo/ext-authz"},
    "traffic-shifting.yaml": set(),
}


def test_the_corpus_is_listed() -> None:
    assert {p.name for p in CORPUS.glob("*.yaml")} == set(EXPECTED_RAW)


@pytest.mark.parametrize("name", sorted(EXPECTED_RAW))
def test_corpus_file_round_trips(name: str, tmp_path: Path) -> None:
    path = CORPUS / name
    program = import_files([path])  # verifies the round trip itself, or raises
    program_file = tmp_path / "mesh.py"
    program_file.write_text(program.source)
    spec = load(str(program_file)).spec
    rendered = compile_mesh(spec)
    assert differences(list(program.result.manifests), rendered) == []
    if name != "kubectl-export.yaml":  # that one has server-set fields on purpose
        assert differences(yaml_objects(path), rendered) == []
    raw = {f"{m['kind']} {m['metadata'].get('namespace', 'default')}/{m['metadata']['name']}"
           for m in spec.raw}
    assert raw == EXPECTED_RAW[name]
    for warning in program.warnings:
        assert warning.source is not None and warning.source.file == str(path)
        assert warning.source.line >= 1


def test_the_seed_round_trips_whole() -> None:
    program = import_files([SEED])
    spec = run_program(program.source)
    assert spec.raw == []
    assert differences(yaml_objects(SEED), compile_mesh(spec)) == []


def _seed_documents() -> list[tuple[str, int]]:
    docs = load_text(SEED.read_text(), str(SEED))
    return [(f"{d.manifest['kind']}-{d.manifest['metadata']['name']}", i)
            for i, d in enumerate(docs)]


@pytest.mark.parametrize(("label", "index"), _seed_documents(),
                         ids=[label for label, _ in _seed_documents()])
def test_every_seed_resource_round_trips_alone_in_the_dsl(label: str, index: int) -> None:
    document = load_text(SEED.read_text(), str(SEED))[index]
    program = import_documents([document])
    spec = run_program(program.source)
    assert spec.raw == [], label  # typed: the DSL covers every seed resource
    assert differences([yaml_objects(SEED)[index]], compile_mesh(spec)) == []

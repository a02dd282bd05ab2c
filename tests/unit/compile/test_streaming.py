"""Compiling one object at a time: the apply order is decided from each object's kind,
namespace and name before compiling, and ``render_to`` writes as it goes."""

from __future__ import annotations

import io

import pytest

from bench.meshgen import generate
from meshdsl.compile import (
    compile_mesh,
    istio,
    manifests,
    order_key,
    pending,
    render,
    render_to,
    sort_manifests,
)
from meshdsl.model.spec import MeshSpec
from tests.conftest import load_example


def _meshes() -> list[tuple[str, MeshSpec]]:
    mixed = generate(12, namespaces=3)
    mixed.namespace("team-01", mode="ambient")  # one ambient namespace beside sidecars
    mixed.raw({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "aaa", "namespace": "team-00"}})
    mixed.raw({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    return [("bookinfo", load_example("bookinfo")), ("ambient", load_example("ambient")),
            ("canary", load_example("canary")), ("generated", generate(30).build()),
            ("generated-ambient", generate(30, mode="ambient").build()),
            ("mixed", mixed.build())]


@pytest.mark.parametrize(("label", "mesh"), _meshes(), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_each_order_key_is_the_compiled_objects_own(label: str, mesh: MeshSpec) -> None:
    weights = {(mesh.services[0].namespace, mesh.services[0].name): {"v1": 60, "v2": 40}} \
        if mesh.services else None
    for with_weights in (None, weights):
        keys = []
        for key, make in pending(mesh, weights=with_weights):
            assert order_key(make()) == key, label
            keys.append(key)
        assert keys == sorted(keys)
        compiled = compile_mesh(mesh, weights=with_weights)
        assert sort_manifests(compiled) == compiled
        assert len(compiled) == len(keys)


def test_render_to_writes_one_object_at_a_time() -> None:
    mesh = generate(20).build()
    writes: list[str] = []
    count = render_to(mesh, writes.append)
    assert count == len(compile_mesh(mesh)) == len(writes)
    assert "".join(writes) == render(mesh)
    buffer = io.StringIO()
    render_to(mesh, buffer.write)
    assert buffer.getvalue() == render(mesh)


def test_manifests_compiles_only_what_was_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    mesh = generate(20).build()
    compiled: list[str] = []
    original = istio.virtual_service

    def counting(vs, labels):  # type: ignore[no-untyped-def]
        compiled.append(vs.name)
        return original(vs, labels)

    monkeypatch.setattr(istio, "virtual_service", counting)
    stream = manifests(mesh)
    first = [next(stream) for kind in range(len(pending(mesh)))
             if not compiled][-1]  # up to and including the first VirtualService
    assert first["kind"] == "VirtualService"
    assert compiled == [first["metadata"]["name"]]
    rest = list(stream)
    assert len(compiled) == 1 + sum(1 for m in rest if m["kind"] == "VirtualService") == 20

"""``meshctl render`` compiles, checks and writes one object at a time: what it holds while
rendering stays far below the manifests of the mesh (measured with tracemalloc, so the
figure does not depend on the machine's load), and its output is ``render``'s."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.meshgen import generate
from meshdsl.compile import compile_mesh, file_name, render, to_yaml
from meshdsl.crdcheck import default_catalog
from meshdsl.model.spec import MeshSpec
from reconciler.cli import _register, app
from reconciler.cli import mesh as mesh_cli

SERVICES = 1000


@pytest.fixture(scope="module")
def spec() -> MeshSpec:
    return generate(SERVICES).build()


def _render(spec: MeshSpec, monkeypatch: pytest.MonkeyPatch, *args: str
            ) -> tuple[int, str, int]:
    """Exit code, stdout and the peak of memory allocated while rendering, bytes."""
    _register()
    default_catalog()  # the bundled CRDs, read once per process: not the render's memory
    monkeypatch.setattr(mesh_cli, "evaluate_or_exit",
                        lambda program, **_: (spec, [], program))
    runner = CliRunner()
    tracemalloc.start()
    try:
        result = runner.invoke(app, ["render", "generated:mesh", *args])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result.exit_code, result.stdout, peak


def test_render_holds_one_object_at_a_time(spec: MeshSpec,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    code, stdout, peak = _render(spec, monkeypatch)
    assert code == 0
    assert stdout == render(spec)
    whole = compile_mesh(spec)
    tracemalloc.start()
    try:
        held = compile_mesh(spec)
        held_bytes, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held == whole
    # The test runner captures the output in memory (its bytes and its text, ~2 MB each);
    # beyond that the render holds ~2 MB at 1,000 services, where building the whole
    # list held the manifests and their text (~17 MB), more than ``held_bytes`` (~12 MB).
    assert peak - 2 * len(stdout) < held_bytes / 2, (peak, len(stdout), held_bytes)


def test_render_json_and_directory_as_before(spec: MeshSpec, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    small = generate(40).build()
    code, stdout, _ = _render(small, monkeypatch, "--format", "json")
    assert code == 0 and stdout == json.dumps(compile_mesh(small), indent=2) + "\n"
    empty = MeshSpec(name="empty")
    assert _render(empty, monkeypatch, "--format", "json")[1] == "[]\n"
    assert _render(empty, monkeypatch)[1] == ""
    out = tmp_path / "out"
    code, _, _ = _render(small, monkeypatch, "-o", str(out))
    assert code == 0
    for manifest in compile_mesh(small):
        assert (out / file_name(manifest)).read_text() == to_yaml([manifest])
    assert len(list(out.rglob("*.yaml"))) == len(compile_mesh(small))

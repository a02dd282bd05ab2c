"""``meshctl import --to ambient``: a classic (sidecar) import rewritten for ambient mode.

The import itself is verified first — the classic program renders the input back — and
only then is the same spec written with ``Mesh(..., mode="ambient")``, so its routes
compile to the Gateway API. The rewritten program is run and compiled here as well, and
its validation findings (what has no ambient form, MD130…MD137) travel with it: a
conversion never hides what would not carry over.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshdsl.compile import compile_mesh
from meshdsl.compile.manifest import Manifest
from meshdsl.importer.to_python import to_python
from meshdsl.model.dataplane import DataPlane
from meshdsl.model.spec import MeshSpec
from meshdsl.validate import Finding, validate


@dataclass(frozen=True)
class AmbientProgram:
    source: str
    spec: MeshSpec
    manifests: tuple[Manifest, ...]
    findings: tuple[Finding, ...]


def ambient_spec(spec: MeshSpec) -> MeshSpec:
    """Every namespace in ambient mode (the mesh default), canaries judged on waypoints;
    namespaces read as ambient keep their own waypoint."""
    dp = DataPlane(default="ambient", namespaces=spec.data_plane.namespaces)
    return spec.model_copy(update={"data_plane": dp, "canaries": dp.judged(spec.canaries)})


def to_ambient(spec: MeshSpec, *, namespace: str = "default", title: str | None = None,
               notes: tuple[str, ...] = ()) -> AmbientProgram:
    """The program of ``spec`` (a verified import) in ambient mode, run and compiled."""
    from meshdsl.importer import run_program  # the package imports this module

    source = to_python(ambient_spec(spec), namespace=namespace, title=title, notes=notes)
    built = run_program(source)
    return AmbientProgram(source=source, spec=built, manifests=tuple(compile_mesh(built)),
                          findings=tuple(validate(built)))

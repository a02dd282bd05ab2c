"""Istio YAML → model → readable Python source: how existing meshes adopt meshdsl.

The flow mirrors compilation in reverse, and is as pure: ``yamlsource`` reads YAML and
remembers file:line; ``to_model`` turns the objects into a :class:`MeshSpec`, typed where
the DSL can say them exactly and carried through ``MeshSpec.raw`` (with a warning per
field) where it cannot; ``to_python`` writes that spec as a program in the DSL's own
vocabulary. ``verify`` runs the generated program and compares what it renders with the
input, so an import never silently changes a mesh. ``analyze`` runs the validator on
existing YAML, with findings at the YAML's file:line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from meshdsl.compile import compile_mesh
from meshdsl.compile.compare import differences
from meshdsl.compile.manifest import Manifest
from meshdsl.errors import MeshdslError
from meshdsl.importer.analysis import analyze, analyze_documents
from meshdsl.importer.errors import ImporterError, ImporterWarning, InputError, NotExpressible
from meshdsl.importer.fallback import Rounds, carried_raw, describe, mismatches
from meshdsl.importer.gateway_api import read_ambient
from meshdsl.importer.live import left_out
from meshdsl.importer.manifests import CLUSTER_SCOPED, applied
from meshdsl.importer.to_model import ImportResult, to_model
from meshdsl.importer.to_python import to_python
from meshdsl.importer.yamlsource import Document, load_files, load_text
from meshdsl.model.base import SourceLocation
from meshdsl.model.builder import Mesh
from meshdsl.model.spec import MeshSpec

__all__ = [
    "Document",
    "ImportResult",
    "ImporterError",
    "ImporterWarning",
    "InputError",
    "NotExpressible",
    "Program",
    "analyze",
    "analyze_documents",
    "import_documents",
    "import_files",
    "load_files",
    "load_text",
    "mesh_name_for",
    "run_program",
    "to_model",
    "to_python",
    "verify",
]


@dataclass(frozen=True)
class Program:
    """A generated mesh program and what importing learned on the way."""

    source: str
    result: ImportResult

    @property
    def warnings(self) -> tuple[ImporterWarning, ...]:
        return self.result.warnings


_ROUNDS = 12  # each round carries at least one more object raw


def run_program(source: str, filename: str = "<meshctl import>") -> MeshSpec:
    """Execute a generated program (our own output, not user code) and build its mesh."""
    namespace: dict[str, object] = {"__name__": "__meshdsl_import__"}
    exec(compile(source, filename, "exec"), namespace)
    mesh = namespace.get("mesh")
    if not isinstance(mesh, Mesh):
        raise ImporterError("the generated program defines no mesh")
    return mesh.build()


def _placed(manifests: Iterable[Manifest], namespace: str) -> list[Manifest]:
    """Objects without a namespace as applied: in ``namespace`` (so that ``differences``
    cannot pair one with a namesake in another namespace)."""
    out = []
    for m in manifests:
        if m.get("kind") not in CLUSTER_SCOPED and not m["metadata"].get("namespace"):
            m = {**m, "metadata": {**m["metadata"], "namespace": namespace}}
        out.append(m)
    return out


def verify(source: str, manifests: Sequence[Manifest], namespace: str = "default"
           ) -> list[str]:
    """Differences between what the program renders and ``manifests``, objects without a
    namespace taken to be in ``namespace``; [] when equal."""
    rendered = compile_mesh(run_program(source))
    return differences(_placed(manifests, namespace), _placed(rendered, namespace))


def import_documents(documents: Sequence[Document], *, name: str | None = None,
                     namespace: str = "default", default_name: str = "imported",
                     title: str | None = None) -> Program:
    """The program for some documents (as written or as a cluster returns them), verified
    to render them back."""
    documents, whole = left_out([applied(d) for d in documents])
    ambient = read_ambient(documents, namespace)
    if ambient.found:
        try:
            program = _import_ambient(documents, name=name, namespace=namespace,
                                      default_name=default_name, title=title)
            return replace(program, result=replace(
                program.result, warnings=(*whole, *program.result.warnings)))
        except MeshdslError as e:  # not what the compiler writes: carried raw as a whole
            why = str(e).splitlines()[0]
            whole += [ImporterWarning(f"Namespace {ns}", "", (
                f"not read back into the DSL ({why}); its Gateway API objects are carried "
                "through unchanged (mesh.raw)"), _where_namespace(documents, ns))
                for ns in sorted(ambient.data_plane.namespaces)]
    result = to_model(documents, name=name, namespace=namespace, default_name=default_name)
    result = replace(result, warnings=(*whole, *result.warnings))
    return _verified(result, namespace=namespace, title=title)


def _where_namespace(documents: Sequence[Document], name: str) -> SourceLocation | None:
    return next((d.where() for d in documents if d.manifest.get("kind") == "Namespace"
                 and d.manifest["metadata"].get("name") == name), None)


def _verified(result: ImportResult, *, namespace: str, title: str | None) -> Program:
    source = to_python(result.spec, namespace=namespace, title=title, notes=result.notes)
    problems = verify(source, result.manifests, namespace)
    if problems:
        raise ImporterError("the generated program would not render the input back (a "
                            "meshdsl bug; please report it with the input):\n  "
                            + "\n  ".join(problems))
    return Program(source=source, result=result)


def _import_ambient(documents: Sequence[Document], *, name: str | None, namespace: str,
                    default_name: str, title: str | None) -> Program:
    """Ambient namespaces read back typed, object by object: an object the program does
    not reproduce (``fallback``) is carried raw with the reason, and the rest imported
    again, until the program renders every input object exactly (or no object is left
    to blame, and the caller carries the Gateway API objects raw as a whole)."""
    def typed(docs: Sequence[Document]) -> ImportResult:
        return to_model(docs, name=name, namespace=namespace, default_name=default_name)

    inputs = typed(documents).manifests  # the input as the cluster sees it
    placed = _placed(inputs, namespace)
    rounds = Rounds(placed)
    raw: dict[int, str] | None = {}
    for _ in range(_ROUNDS):
        found = read_ambient(documents, namespace, raw)
        excluded = {id(documents[i]) for i in found.raw}
        result = typed([d for d in found.documents if id(d) not in excluded])
        result = carried_raw(result, documents, inputs, found.raw, found.data_plane)
        source = to_python(result.spec, namespace=namespace, title=title, notes=result.notes)
        missed = mismatches(placed, _placed(compile_mesh(run_program(source)), namespace))
        if not missed:
            return _verified(result, namespace=namespace, title=title)
        raw = rounds.next(missed, found.raw)
        if raw is None:
            raise ImporterError(describe(missed))
    raise ImporterError(f"still not reproduced after {_ROUNDS} rounds: {describe(missed)}")


def import_files(paths: Iterable[str | Path], *, name: str | None = None,
                 namespace: str = "default") -> Program:
    """``meshctl import``: files of Istio YAML → a verified mesh program."""
    names = [str(p) for p in paths]
    title = f"Imported by meshctl import from {', '.join(names)}."
    return import_documents(load_files(names), name=name, namespace=namespace, title=title,
                            default_name=mesh_name_for(names[0] if names else ""))


def mesh_name_for(path: str) -> str:
    """A mesh name from a file name: ``istio/Bookinfo_v2.yaml`` → ``bookinfo-v2``."""
    stem = Path(path).stem.lower()
    name = re.sub(r"[^a-z0-9]+", "-", stem).strip("-")[:63].strip("-")
    return name or "imported"


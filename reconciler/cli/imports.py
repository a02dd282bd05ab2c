"""``meshctl import`` and ``meshctl analyze``: adopt existing Istio YAML.

``import`` writes a mesh program for YAML files (stdout, or ``-o FILE`` written atomically
and only when the import succeeded), warnings on stderr. ``analyze`` runs the validator
on the YAML itself, findings at the YAML's file:line with the nearest istioctl code.
Exit codes: 0 success/clean, 1 analysis errors, 2 bad input (nothing written).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from meshdsl.importer import (
    Document,
    ImporterError,
    Program,
    analyze_documents,
    import_documents,
    mesh_name_for,
    run_program,
)
from meshdsl.importer.ambient import to_ambient
from meshdsl.importer.folder import load_folder
from meshdsl.importer.yamlsource import load_stream
from meshdsl.validate import Severity, has_errors, validate
from reconciler.cli.app import Output, app, emit, err_console, fail
from reconciler.cli.crdcheck import CrdCheck, crd_check, document_findings
from reconciler.cli.mesh import print_findings
from reconciler.cli.options import OutputOpt, option_groups

FilesArg = Annotated[list[str], typer.Argument(
    help="Istio and Kubernetes YAML files or folders (multi-document streams and kind: List "
         "are fine; files in a folder that are not Kubernetes objects are skipped with a "
         "warning; '-' reads stdin).", show_default=False)]
NamespaceOpt = Annotated[str, typer.Option(
    "-n", "--namespace", help="The namespace of objects that do not name one.")]


def _documents(files: Sequence[str]) -> list[Document]:
    documents: list[Document] = []
    for name in files:
        if name == "-":
            documents += load_stream(sys.stdin.buffer)
            continue
        folder = load_folder([name])
        for skipped in folder.skipped:
            err_console.print(f"[yellow]warning[/] {skipped}", soft_wrap=True)
        documents += folder.documents
    return documents


def _ruff() -> str | None:
    beside = Path(sys.executable).parent / "ruff"
    return str(beside) if beside.is_file() else shutil.which("ruff")


def formatted(source: str) -> str:
    """``source`` through ``ruff format`` when ruff is installed (the generator already
    writes ruff's layout, so this only guards against drift); unchanged otherwise."""
    ruff = _ruff()
    if ruff is None:
        return source
    try:
        done = subprocess.run([ruff, "format", "--isolated", "--line-length", "100",
                               "--stdin-filename", "mesh.py", "-"], input=source,
                              capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return source
    return done.stdout if done.returncode == 0 and done.stdout else source


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _summary(program: Program) -> str:
    raw = len(program.result.spec.raw)
    total = len(program.result.manifests)
    return (f"imported {total} object(s): {total - raw} in the DSL, {raw} carried through "
            f"unchanged; {len(program.warnings)} warning(s)")


@app.command("import", short_help="Write a mesh program (readable DSL code) for existing Istio YAML.")
def import_cmd(
    files: FilesArg,
    out: Annotated[Path | None, typer.Option(
        "-o", "--out", help="Write the program to this file instead of stdout (only when "
        "the import succeeds).")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="The mesh's name (default: meshdsl's label on the input, else the "
        "first file's name).")] = None,
    namespace: NamespaceOpt = "default",
    to: Annotated[str, typer.Option(
        "--to", help="sidecar (the input as it is) or ambient: the verified import "
        "rewritten with Mesh(mode='ambient'), its routes compiling to the Gateway API; "
        "exit 1 when something has no ambient form.")] = "sidecar",
) -> None:
    """Write a mesh program (readable DSL code) for existing Istio YAML; what the DSL
    cannot express is carried through with mesh.raw(...) and a warning per field."""
    if to not in ("sidecar", "ambient"):
        fail(f"--to {to!r}: use sidecar or ambient", 2)
    title = f"Imported by meshctl import from {', '.join(files)}."
    try:
        program = import_documents(
            _documents(files), name=name, namespace=namespace,
            default_name=mesh_name_for(files[0] if files[0] != "-" else ""), title=title)
    except ImporterError as exc:
        fail(str(exc), 2)
    for warning in program.warnings:
        where = f"{escape(str(warning.source))}: " if warning.source else ""
        field = f" [dim]{escape(warning.path)}[/]" if warning.path else ""
        err_console.print(f"{where}[yellow]warning[/] {escape(warning.resource)}{field}\n    "
                          f"{escape(warning.message)}", soft_wrap=True, markup=True)
    source = formatted(program.source)
    blocked = False
    if to == "ambient":  # findings at the lines of the program as written out
        source = formatted(to_ambient(program.result.spec, namespace=namespace, title=title,
                                      notes=program.result.notes).source)
        findings = validate(run_program(source, str(out) if out else "<stdout>"))
        print_findings([f for f in findings if f.severity is not Severity.INFO])
        blocked = has_errors(findings)
    if out is None:
        sys.stdout.write(source)
    else:
        _write_atomically(out, source)
    err_console.print(f"[green]{_summary(program)}[/]"
                      + (f" → {escape(str(out))}" if out else ""), soft_wrap=True)
    if blocked:
        fail("the ambient program has errors (above): fix them or keep those namespaces in "
             "sidecar mode", 1)


@app.command("analyze", short_help="Run meshdsl's validator on existing Istio YAML (istioctl analyze codes).")
@option_groups(crds=crd_check)
def analyze_cmd(
    files: FilesArg,
    output: OutputOpt = Output.text,
    namespace: NamespaceOpt = "default",
    *,
    crds: CrdCheck | None,
) -> None:
    """Run meshdsl's validator on existing Istio YAML: the findings of `meshctl validate`
    at the YAML's file:line, each with the nearest `istioctl analyze` code, and every
    object checked against its CRD's schema and CEL rules. Exit 0 clean (warnings
    allowed), 1 with errors, 2 for input that cannot be read."""
    try:
        documents = _documents(files)
        findings = analyze_documents(documents, namespace=namespace)
    except ImporterError as exc:
        fail(str(exc), 2)
    if crds is not None:
        findings = sorted([*findings, *document_findings(documents, crds.catalog())],
                          key=lambda f: f.sort_key())
    if output is Output.text:
        print_findings(findings, istio_codes=True)
        errors = sum(f.severity is Severity.ERROR for f in findings)
        warnings = sum(f.severity is Severity.WARNING for f in findings)
        colour = "red" if errors else "yellow" if warnings else "green"
        err_console.print(f"[{colour}]{escape(', '.join(files))}: {errors} error(s), {warnings} "
                          "warning(s)[/]", soft_wrap=True)
    else:
        emit({"files": list(files), "findings": [f.as_dict() for f in findings]}, output)
    raise typer.Exit(1 if has_errors(findings) else 0)

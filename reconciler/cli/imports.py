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

from meshdsl.importer import (
    Document,
    ImporterError,
    Program,
    analyze_documents,
    import_documents,
    load_files,
    mesh_name_for,
)
from meshdsl.importer.yamlsource import load_stream
from meshdsl.validate import Severity, has_errors
from reconciler.cli.app import Output, app, emit, err_console, fail
from reconciler.cli.mesh import print_findings

FilesArg = Annotated[list[str], typer.Argument(
    help="Istio and Kubernetes YAML files (multi-document streams and kind: List are fine; "
         "'-' reads stdin).", show_default=False)]
NamespaceOpt = Annotated[str, typer.Option(
    "-n", "--namespace", help="The namespace of objects that do not name one.")]


def _documents(files: Sequence[str]) -> list[Document]:
    documents: list[Document] = []
    for name in files:
        documents += load_stream(sys.stdin.buffer) if name == "-" else load_files([name])
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


@app.command("import")
def import_cmd(
    files: FilesArg,
    out: Annotated[Path | None, typer.Option(
        "-o", "--out", help="Write the program to this file instead of stdout (only when "
        "the import succeeds).")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="The mesh's name (default: meshdsl's label on the input, else the "
        "first file's name).")] = None,
    namespace: NamespaceOpt = "default",
) -> None:
    """Write a mesh program (readable DSL code) for existing Istio YAML; what the DSL
    cannot express is carried through with mesh.raw(...) and a warning per field."""
    try:
        program = import_documents(
            _documents(files), name=name, namespace=namespace,
            default_name=mesh_name_for(files[0] if files[0] != "-" else ""),
            title=f"Imported by meshctl import from {', '.join(files)}.")
    except ImporterError as exc:
        fail(str(exc), 2)
    for warning in program.warnings:
        where = f"{warning.source}: " if warning.source else ""
        field = f" [dim]{warning.path}[/]" if warning.path else ""
        err_console.print(f"{where}[yellow]warning[/] {warning.resource}{field}\n    "
                          f"{warning.message}", soft_wrap=True, markup=True)
    source = formatted(program.source)
    if out is None:
        sys.stdout.write(source)
    else:
        _write_atomically(out, source)
    err_console.print(f"[green]{_summary(program)}[/]" + (f" → {out}" if out else ""),
                      soft_wrap=True)


@app.command("analyze")
def analyze_cmd(
    files: FilesArg,
    output: Annotated[Output, typer.Option("-o", "--output", help="Output format.")] =
        Output.text,
    namespace: NamespaceOpt = "default",
) -> None:
    """Run meshdsl's validator on existing Istio YAML: the findings of `meshctl validate`
    at the YAML's file:line, each with the nearest `istioctl analyze` code. Exit 0 clean
    (warnings allowed), 1 with errors, 2 for input that cannot be read."""
    try:
        findings = analyze_documents(_documents(files), namespace=namespace)
    except ImporterError as exc:
        fail(str(exc), 2)
    if output is Output.text:
        print_findings(findings, istio_codes=True)
        errors = sum(f.severity is Severity.ERROR for f in findings)
        warnings = sum(f.severity is Severity.WARNING for f in findings)
        colour = "red" if errors else "yellow" if warnings else "green"
        err_console.print(f"[{colour}]{', '.join(files)}: {errors} error(s), {warnings} "
                          "warning(s)[/]", soft_wrap=True)
    else:
        emit({"files": list(files), "findings": [f.as_dict() for f in findings]}, output)
    raise typer.Exit(1 if has_errors(findings) else 0)

"""``meshctl validate`` and ``meshctl render``: the pure core, from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from meshdsl.compile import compile_mesh, file_name, to_yaml
from meshdsl.model.base import bulk_build
from meshdsl.validate import Finding, Severity, has_errors, validate
from reconciler.cli.app import Output, app, console, emit, err_console, fail
from reconciler.runtime.loader import Loaded, ProgramError, load

ProgramArg = Annotated[str, typer.Argument(
    help="The mesh program: a file (mesh.py), file:attribute or module:attribute.")]

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def load_or_exit(program: str) -> Loaded:
    """Load the program; a broken one prints where it broke and exits 2."""
    try:
        return load(program)
    except ProgramError as exc:
        fail(str(exc), 2)


def print_findings(findings: list[Finding], *, istio_codes: bool = False) -> None:
    """One finding per entry on stderr; ``istio_codes`` adds the nearest istioctl code."""
    for f in findings:
        where = f"{f.source}: " if f.source else ""
        istio = f" ({f.istio_code})" if istio_codes and f.istio_code else ""
        err_console.print(f"{where}[{_STYLE[f.severity]}]{f.severity.value} {f.code}{istio}[/] "
                          f"[dim]{f.path}[/]\n    {f.message}", soft_wrap=True)


@app.command("validate")
def validate_cmd(
    program: ProgramArg,
    output: Annotated[Output, typer.Option("-o", "--output", help="Output format.")] =
        Output.text,
) -> None:
    """Check a mesh program; exit 0 clean (warnings allowed), 1 with errors, 2 if it fails
    to load."""
    loaded = load_or_exit(program)
    findings = validate(loaded.spec)
    if output is Output.text:
        print_findings(findings)
        errors = sum(f.severity is Severity.ERROR for f in findings)
        warnings = sum(f.severity is Severity.WARNING for f in findings)
        colour = "red" if errors else "yellow" if warnings else "green"
        err_console.print(f"[{colour}]{loaded.source}: {errors} error(s), {warnings} "
                          f"warning(s)[/]")
    else:
        emit({"program": loaded.source, "findings": [f.as_dict() for f in findings]}, output)
    raise typer.Exit(1 if has_errors(findings) else 0)


@app.command("render")
def render_cmd(
    program: ProgramArg,
    out: Annotated[Path | None, typer.Option(
        "-o", "--out", help="Write one file per object under this directory "
        "(<namespace>/<kind>-<name>.yaml) instead of one YAML stream on stdout.")] = None,
    format: Annotated[Output, typer.Option(
        "--format", help="yaml (default) or json for the stream on stdout.")] = Output.yaml,
    force: Annotated[bool, typer.Option(
        "--force", help="Render even when validation reports errors.")] = False,
) -> None:
    """Compile a mesh program to Istio and Kubernetes YAML (deterministic output)."""
    with bulk_build():
        loaded = load_or_exit(program)
        findings = validate(loaded.spec)
        if has_errors(findings) and not force:
            print_findings([f for f in findings if f.severity is Severity.ERROR])
            fail(f"{loaded.source} has validation errors; nothing rendered (use --force to "
                 "render anyway)", 1)
        manifests = compile_mesh(loaded.spec)
    if out is None:
        if format is Output.json:
            typer.echo(json.dumps(manifests, indent=2))
        else:
            typer.echo(to_yaml(manifests), nl=False)
        return
    written = 0
    for manifest in manifests:
        target = out / file_name(manifest)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = to_yaml([manifest])
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            written += 1
    console.print(f"[green]rendered[/] {len(manifests)} objects to {out} ({written} changed)")

"""``meshctl validate`` and ``meshctl render``: the pure core, from the command line.

A program given as a file runs in the same sandbox, under the same limits, as the
reconciler runs it (``--program-timeout``, ``--program-memory-mb``); only the
``module:attribute`` form, importable from the caller's own environment, is loaded here.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.markup import escape

from meshdsl.compile import compile_mesh, file_name, manifests, yamltext
from meshdsl.model.base import SourceLocation, bulk_build
from meshdsl.model.spec import MeshSpec
from meshdsl.validate import Finding, Severity, has_errors, validate
from reconciler.cli.app import Output, app, console, emit, err_console, fail
from reconciler.cli.crdcheck import CrdCheck, crd_check, mesh_findings
from reconciler.cli.options import (
    OutputOpt,
    ProgramMemoryOpt,
    ProgramTimeoutOpt,
    option_groups,
    parse_duration,
)
from reconciler.runtime.loader import Loaded, load
from reconciler.runtime.records import ProgramError
from reconciler.runtime.sandbox import Limits, Sandbox

ProgramArg = Annotated[str, typer.Argument(
    help="The mesh program: a file (mesh.py), file:attribute or module:attribute.")]

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_RELATIVE = re.compile(r"^(?!/)([^\s:]+\.py):(\d+)")



def load_or_exit(program: str) -> Loaded:
    """Load the program; a broken one prints where it broke and exits 2."""
    try:
        return load(program)
    except ProgramError as exc:
        fail(exc.report(), 2)


def evaluate_or_exit(program: str, *, timeout: str, memory_mb: int
                     ) -> tuple[MeshSpec, list[Finding], str]:
    """The program's spec and findings: a file runs in the sandbox (paths in errors and
    findings read as the user typed them, ``timeout`` a duration as ``--program-timeout``
    takes it); a broken one prints where it broke, exits 2."""
    seconds = parse_duration(timeout, what="--program-timeout")
    path_part, colon, attr = program.partition(":")
    file = Path(path_part)
    if file.suffix != ".py" and not file.is_file():
        loaded = load_or_exit(program)            # module:attribute, the caller's own
        return loaded.spec, validate(loaded.spec), loaded.source
    if not file.is_file():
        fail(f"no such file: {path_part}", 2)
    prefix = os.path.dirname(path_part)

    def typed(text: str) -> str:
        return _RELATIVE.sub(lambda m: f"{os.path.join(prefix, m[1])}:{m[2]}", text)

    with Sandbox(Limits(timeout=seconds, memory_mb=memory_mb), warm=False) as box:
        try:
            judged, _ = box.evaluate(file.resolve().parent, file.name + colon + attr)
        except ProgramError as exc:
            fail(exc.report(typed), 2)
    return judged.spec, as_typed(judged.findings, program), program


def as_typed(findings: list[Finding], program: str) -> list[Finding]:
    """Findings whose file:line is relative to the program's folder (as the sandbox sees
    it) made to read as the user typed the program's path."""
    prefix = os.path.dirname(program.partition(":")[0])
    return [replace(f, source=SourceLocation(file=os.path.join(prefix, f.source.file),
                                             line=f.source.line))
            if f.source is not None else f for f in findings]


def print_findings(findings: list[Finding], *, istio_codes: bool = False) -> None:
    """One finding per entry on stderr; ``istio_codes`` adds the nearest istioctl code."""
    for f in findings:
        where = f"{escape(str(f.source))}: " if f.source else ""
        istio = f" ({f.istio_code})" if istio_codes and f.istio_code else ""
        err_console.print(f"{where}[{_STYLE[f.severity]}]{f.severity.value} {f.code}{istio}[/] "
                          f"[dim]{escape(f.path)}[/]\n    {escape(f.message)}", soft_wrap=True)


@app.command("validate", short_help="Check a mesh program and its objects against their CRDs' schemas and CEL rules.")
@option_groups(crds=crd_check)
def validate_cmd(
    program: ProgramArg,
    output: OutputOpt = Output.text,
    *,
    crds: CrdCheck | None,
    timeout: ProgramTimeoutOpt = "10s",
    memory_mb: ProgramMemoryOpt = 1024,
) -> None:
    """Check a mesh program, and its compiled objects against their CRDs' schemas and CEL
    rules; exit 0 clean (warnings allowed), 1 with errors, 2 if it fails to load."""
    spec, findings, source = evaluate_or_exit(program, timeout=timeout, memory_mb=memory_mb)
    if crds is not None and not has_errors(findings):
        findings += as_typed(mesh_findings(spec, compile_mesh(spec), crds.catalog()), program)
    if output is Output.text:
        print_findings(findings)
        errors = sum(f.severity is Severity.ERROR for f in findings)
        warnings = sum(f.severity is Severity.WARNING for f in findings)
        colour = "red" if errors else "yellow" if warnings else "green"
        err_console.print(f"[{colour}]{escape(source)}: {errors} error(s), {warnings} "
                          f"warning(s)[/]")
    else:
        emit({"program": source, "findings": [f.as_dict() for f in findings]}, output)
    raise typer.Exit(1 if has_errors(findings) else 0)


def _targets(out: Path, names: list[str]) -> list[Path]:
    """Where each manifest goes (``names``: their :func:`file_name`), all checked before
    anything is written: ``out`` a directory (or creatable), and no file outside it (a
    name like ``../x`` or a symlink)."""
    if out.exists() and not out.is_dir():
        fail(f"-o {out}: not a directory", 2)
    try:
        out.mkdir(parents=True, exist_ok=True)
        root = out.resolve(strict=True)
    except OSError as exc:
        fail(f"-o {out}: cannot create the directory: {exc.strerror or exc}", 2)
    if not os.access(root, os.W_OK) or root.parts[1:2] in (("proc",), ("sys",), ("dev",)):
        fail(f"-o {out}: not a writable directory", 2)
    planned = []
    for name in names:
        target = root / name
        if not target.resolve().is_relative_to(root):
            fail(f"-o {out}: {name!r} would be written outside it; nothing written", 2)
        planned.append(target)
    return planned


def _json_text(manifest: dict[str, object]) -> str:
    """One element of ``json.dumps(manifests, indent=2)``, indented as in the list (JSON
    strings escape their newlines, so every newline is the layout's)."""
    return "  " + json.dumps(manifest, indent=2).replace("\n", "\n  ")


class _Staged:
    """The rendered text of every object, written to a temporary file as each object is
    compiled, so the manifests of a large mesh are never held whole; nothing reaches the
    user's stdout or ``-o`` directory until every object is compiled and checked.
    With ``named``, ``spans`` are (file name, start, end) of each object's own text."""

    def __init__(self, file: BinaryIO, text: Callable[[dict[str, object]], str],
                 separator: str, *, named: bool = False) -> None:
        self.file, self.named, self.count = file, named, 0
        self.spans: list[tuple[str, int, int]] = []
        self._text, self._separator = text, separator.encode()
        self._end = 0

    def add(self, manifest: dict[str, object]) -> None:
        if self.count:
            self._end += self.file.write(self._separator)
        data = self._text(manifest).encode()
        if self.named:
            self.spans.append((file_name(manifest), self._end, self._end + len(data)))
        self._end += self.file.write(data)
        self.count += 1

    def staging(self, compiled: Iterable[dict[str, object]]) -> Iterator[dict[str, object]]:
        """``compiled`` passed through, each manifest staged first."""
        for manifest in compiled:
            self.add(manifest)
            yield manifest

    def copy_to(self, out: BinaryIO) -> None:
        self.file.seek(0)
        shutil.copyfileobj(self.file, out)

    def read(self, start: int, end: int) -> str:
        self.file.seek(start)
        return self.file.read(end - start).decode()


def _write_files(out: Path, staged: _Staged) -> int:
    """Each object to its own file under ``out`` (only those whose text changed)."""
    written = 0
    try:
        targets = _targets(out, [name for name, _, _ in staged.spans])
        for target, (_, start, end) in zip(targets, staged.spans, strict=True):
            text = staged.read(start, end)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists() or target.read_text() != text:
                temporary = target.with_name(f".{target.name}.tmp")
                temporary.write_text(text)
                os.replace(temporary, target)
                written += 1
    except OSError as exc:
        fail(f"-o {out}: cannot write: {exc.strerror or exc}", 2)
    return written


@app.command("render")
@option_groups(crds=crd_check)
def render_cmd(
    program: ProgramArg,
    out: Annotated[Path | None, typer.Option(
        "-o", "--out", help="Write one file per object under this directory "
        "(<namespace>/<kind>-<name>.yaml) instead of one YAML stream on stdout.")] = None,
    format: Annotated[Output, typer.Option(
        "--format", help="yaml (default) or json for the stream on stdout.")] = Output.yaml,
    force: Annotated[bool, typer.Option(
        "--force", help="Render even when validation reports errors.")] = False,
    *,
    crds: CrdCheck | None,
    timeout: ProgramTimeoutOpt = "10s",
    memory_mb: ProgramMemoryOpt = 1024,
) -> None:
    """Compile a mesh program to Istio and Kubernetes YAML (deterministic output)."""
    spec, findings, source = evaluate_or_exit(program, timeout=timeout, memory_mb=memory_mb)
    if has_errors(findings) and not force:
        print_findings([f for f in findings if f.severity is Severity.ERROR])
        fail(f"{source} has validation errors; nothing rendered (use --force to "
             "render anyway)", 1)
    as_json = out is None and format is Output.json
    with tempfile.TemporaryFile() as file, bulk_build():
        staged = _Staged(file, _json_text, ",\n") if as_json else \
            _Staged(file, yamltext.dump, "---\n", named=out is not None)
        compiled = staged.staging(manifests(spec))
        if crds is not None and not force:
            rejected = as_typed(mesh_findings(spec, compiled, crds.catalog()), program)
            if rejected:
                print_findings(rejected)
                fail(f"{source}: {len(rejected)} object field(s) a cluster would reject; "
                     "nothing rendered (use --force to render anyway)", 1)
        else:
            collections.deque(compiled, maxlen=0)
        if out is not None:
            written = _write_files(out, staged)
            console.print(f"[green]rendered[/] {staged.count} objects to "
                          f"{escape(str(out))} ({written} changed)", soft_wrap=True)
            return
        stdout = sys.stdout.buffer
        if as_json:  # json.dumps(manifests, indent=2)'s brackets, the list made above
            stdout.write(b"[\n" if staged.count else b"[")
        staged.copy_to(stdout)
        if as_json:
            stdout.write(b"\n]\n" if staged.count else b"]\n")
        stdout.flush()

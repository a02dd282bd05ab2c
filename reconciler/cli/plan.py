"""``meshctl plan``: what merging a change would do, without a cluster (for reviews and CI)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

import typer

from reconciler.cli.app import Output as _Output
from reconciler.cli.app import app, console, emit, err_console, fail
from reconciler.cli.options import ProgramTimeoutOpt, parse_duration
from reconciler.core.changes import Change, ObjectChange, show
from reconciler.core.diff import MISSING
from reconciler.runtime.review import Review, ReviewError, review

__all__ = ["markdown", "plan_command", "text_lines"]


class PlanOutput(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


_MARK = {Change.ADDED: "+", Change.CHANGED: "~", Change.REMOVED: "-"}
_COLOUR = {Change.ADDED: "green", Change.CHANGED: "yellow", Change.REMOVED: "red"}


def _summary(r: Review) -> str:
    counts = {c: sum(1 for o in r.objects if o.change is c) for c in Change}
    parts = [f"{counts[c]} {c.value}" for c in Change]
    return (f"{', '.join(parts)}; {len(r.shifts)} traffic shift(s); "
            f"{len(r.canaries)} canary change(s); {len(r.new_findings)} new finding(s)")


def _heading(r: Review) -> str:
    return (f"mesh {r.mesh} ({r.program}): {r.base.short} -> {r.head.short} "
            f"{r.head.summary}").rstrip()


def text_lines(r: Review) -> list[tuple[str, str]]:
    """(style, line) pairs: the plain text, and how to colour it on a terminal."""
    out: list[tuple[str, str]] = [("bold", _heading(r))]
    out += [("yellow", f"note: {n}") for n in r.notes]
    if not r.has_changes:
        out.append(("green", "no changes"))
    if r.shifts:
        out.append(("bold", "traffic:"))
        out += [("", f"  {s}") for s in r.shifts]
    if r.canaries:
        out.append(("bold", "canaries:"))
        out += [("", f"  {c}") for c in r.canaries]
    if r.objects:
        out.append(("bold", "objects:"))
        for o in r.objects:
            out.append((_COLOUR[o.change], f"  {_MARK[o.change]} {o.change.value} {o.key}"))
            out += [("", f"      {f}") for f in o.fields]
    if r.findings:
        out.append(("bold", "findings:"))
        out += [("", f"  {'new ' if f in r.new_findings else ''}{f}") for f in r.findings]
    out.append(("", _summary(r)))
    return out


def _object_md(o: ObjectChange) -> list[str]:
    title = f"{_MARK[o.change]} {o.change.value} `{o.key}`"
    if not o.fields:
        return [f"- {title}"]
    body = ["```diff"]
    for f in o.fields:
        if f.before is not MISSING:
            body.append(f"- {f.path}: {show(f.before)}")
        if f.after is not MISSING:
            body.append(f"+ {f.path}: {show(f.after)}")
    body.append("```")
    return [f"- <details><summary>{title} ({len(o.fields)} field(s))</summary>", "",
            *(f"  {line}" for line in body), "  </details>"]


def markdown(r: Review) -> str:
    """A pull-request comment."""
    lines = [f"### meshctl plan: mesh `{r.mesh}`",
             f"`{r.program}` at `{r.base.short}` -> `{r.head.short}` {r.head.summary}".rstrip(),
             "", f"**{_summary(r)}**", ""]
    lines += [f"> note: {n}" for n in r.notes]
    if r.shifts:
        lines += ["#### Traffic", "", "| route | before | after |", "|---|---|---|"]
        for s in r.shifts:
            lines.append(f"| `{s.virtual_service.namespace}/{s.virtual_service.name}` "
                         f"{s.route} | {_cell(s.before) or '—'} | {_cell(s.after) or '—'} |")
        lines.append("")
    if r.canaries:
        lines += ["#### Canaries", ""]
        lines += [f"- **{c.effect.value}** `{c.namespace}/{c.service}` -> {c.target} "
                  f"(stable {c.stable}; steps {', '.join(f'{s}%' for s in c.steps)}): "
                  f"{c.reason}" for c in r.canaries]
        lines.append("")
    if r.objects:
        lines += ["#### Objects", ""]
        for o in r.objects:
            lines += _object_md(o)
        lines.append("")
    if r.findings:
        lines += ["#### Findings", ""]
        lines += [f"- {'**new** ' if f in r.new_findings else ''}`{f}`" for f in r.findings]
        lines.append("")
    if not r.has_changes:
        lines += ["No changes to the mesh.", ""]
    return "\n".join(lines)


def _cell(weights: Mapping[str, int]) -> str:
    return "<br>".join(f"`{d}` {w}%" for d, w in weights.items())


@app.command("plan")
def plan_command(
    base: str = typer.Option(..., "--base", help="The revision merged into (e.g. main)."),
    head: str = typer.Option(..., "--head", help="The revision to merge (e.g. HEAD)."),
    path: str = typer.Option("mesh.py", "--path", help="The program inside the repository."),
    repo: Path = typer.Option(Path("."), "--repo", help="A Git checkout holding both."),
    timeout: ProgramTimeoutOpt = "30s",
    output: PlanOutput = typer.Option(PlanOutput.text, "--output", "-o",
                                      help="text, markdown (a PR comment) or json."),
) -> None:
    """What merging HEAD into BASE would change, without a cluster: objects, traffic
    shifts per route, canaries started or restarted, findings. Exit 0 no change, 1
    changes, 2 error."""
    try:
        result = review(repo, base, head, program=path,
                        timeout=parse_duration(timeout, what="--program-timeout"))
    except ReviewError as exc:
        for line in exc.details:
            err_console.print(line, soft_wrap=True, markup=False)
        fail(str(exc).replace("[", "\\["))
    if output is PlanOutput.json:
        emit(result.to_json(), _Output.json)
    elif output is PlanOutput.markdown:
        sys.stdout.write(markdown(result))
    else:
        for style, line in text_lines(result):
            if console.is_terminal and style:
                console.print(line, style=style, soft_wrap=True, markup=False)
            else:
                sys.stdout.write(line + "\n")
    raise typer.Exit(1 if result.has_changes else 0)

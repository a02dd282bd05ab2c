"""``meshctl migrate``: what moving sidecar namespaces to ambient mode changes and what
blocks it (see :mod:`meshdsl.migrate`). Nothing is written."""

from __future__ import annotations

from typing import Annotated

import typer

from meshdsl.migrate import MigrationError, label, plan
from reconciler.cli.app import Output, app, console, emit, err_console, fail
from reconciler.cli.mesh import ProgramArg, load_or_exit, print_findings


@app.command("migrate", short_help="What moving sidecar namespaces to ambient mode changes and what blocks it.")
def migrate_cmd(
    program: ProgramArg,
    namespace: Annotated[list[str] | None, typer.Option(
        "-n", "--namespace", help="A sidecar namespace to move (repeatable; default: all).")]
        = None,
    output: Annotated[Output, typer.Option("-o", "--output", help="Output format.")] =
        Output.text,
) -> None:
    """Show what moving namespaces to ambient mode changes; exit 0 when nothing blocks it,
    1 when something does, 2 on bad input."""
    loaded = load_or_exit(program)
    try:
        migration = plan(loaded.spec, namespace or [])
    except MigrationError as exc:
        fail(str(exc), 2)
    if output is not Output.text:
        emit(migration.as_dict(), output)
        raise typer.Exit(0 if migration.ready else 1)
    console.print(f"moving to ambient: {', '.join(migration.namespaces) or 'nothing'}")
    for sign, style, keys in (("-", "red", migration.removed), ("+", "green", migration.added),
                              ("~", "yellow", migration.changed)):
        for key in keys:
            console.print(f"  [{style}]{sign} {label(key)}[/]", soft_wrap=True)
    print_findings(list(migration.findings))
    blockers = len(migration.blockers)
    summary = (f"{len(migration.removed)} removed, {len(migration.added)} added, "
               f"{len(migration.changed)} changed; ")
    if blockers:
        err_console.print(f"[red]{summary}{blockers} blocker(s): fix them before moving[/]")
    else:
        err_console.print(f"[green]{summary}nothing blocks the move[/]")
    raise typer.Exit(0 if migration.ready else 1)

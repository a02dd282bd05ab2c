"""The Typer application object and the output helpers every command shares.

Two rules hold for everything meshctl prints. User text (commit subjects, reasons, names,
file names, a program's exception text) is shown literally: interpolate it with
:func:`escape` into rich markup, or pass it as a cell to :func:`add_row`, which never parses
markup. And output stays complete off a terminal: :func:`print_table` draws a boxed table
that folds on a terminal, and plain aligned columns, one record per line and never cut,
when stdout is a pipe or a CI log.
"""

from __future__ import annotations

import io
import json
import sys
from enum import StrEnum
from typing import Any, NoReturn

import typer
import yaml
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

_PIPED = not sys.stdout.isatty()
# Off a terminal (a pipe, a CI log) --help is click's plain text, wide enough that no
# option or command summary is cut; on one, rich's panels.
_HELP: dict[str, Any] = (
    {"rich_markup_mode": None, "context_settings": {"terminal_width": 160,
                                                     "max_content_width": 160}}
    if _PIPED else {"rich_markup_mode": "rich"})


def command_group(name: str, help: str) -> typer.Typer:
    """A ``meshctl NAME ...`` group with the same help rendering as the top level."""
    group = typer.Typer(name=name, help=help, no_args_is_help=True, add_completion=False,
                        pretty_exceptions_enable=False, **_HELP)
    return group


app = command_group(
    "meshctl", "Istio service mesh as typed Python: validate, render, apply, reconcile, deliver.")

# soft_wrap: a line is never broken by rich at the console width (80 off a terminal); a
# terminal wraps it, a pipe keeps it whole. Tables are laid out by print_table.
console = Console(highlight=False, emoji=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


class Output(StrEnum):
    text = "text"
    json = "json"
    yaml = "yaml"


def emit(data: Any, fmt: Output) -> None:
    """Machine-readable output on stdout."""
    if fmt is Output.json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def fail(message: str, code: int = 2) -> NoReturn:
    """One clear line on stderr, then exit with ``code``; ``message`` is printed as
    written (it often quotes user text: never rich markup)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


Cell = str | Text


def table(*columns: str, title: str | None = None) -> Table:
    """An empty table with ``columns``; fill it with :func:`add_row`, show it with
    :func:`print_table`."""
    plain = not console.is_terminal
    result = Table(title=title, title_justify="left", box=None if plain else box.HEAVY_HEAD,
                   show_edge=not plain, pad_edge=not plain, header_style="bold")
    for column in columns:
        if plain:
            result.add_column(column, no_wrap=True, overflow="ignore")
        else:
            result.add_column(column, overflow="fold")
    return result


def add_row(target: Table, *cells: Cell) -> None:
    """A row whose plain strings are literal text (never markup); style a cell by passing
    ``Text(value, style=...)``."""
    target.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in cells))


def print_table(target: Table) -> None:
    """On a terminal as rich draws it; off one as plain aligned text, each row on its own
    line at full length (no terminal width to fit, so nothing is cut or wrapped)."""
    if console.is_terminal:
        console.print(target)
        return
    buffer = io.StringIO()
    Console(file=buffer, width=100_000, highlight=False, emoji=False,
            color_system=None).print(target)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines()))
    sys.stdout.flush()

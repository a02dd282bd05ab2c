"""The Typer application object and the output helpers every command shares."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Any, NoReturn

import typer
import yaml
from rich.console import Console

app = typer.Typer(
    name="meshctl",
    help="Istio service mesh as typed Python: validate, render, apply, reconcile, deliver.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

console = Console(highlight=False, emoji=False)
err_console = Console(stderr=True, highlight=False, emoji=False)


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
    """One clear line on stderr, then exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)

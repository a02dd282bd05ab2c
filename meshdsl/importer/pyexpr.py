"""Python expressions as a small tree, printed the way ``ruff format`` prints them.

The generator builds calls, lists and dicts rather than strings so that layout is decided
in one place: an expression stays on one line when it fits in 100 columns; otherwise its
contents go on one indented line between the brackets (calls only), or one item per
line with a trailing comma — the rules ruff (and black) follow, so formatting the generated program
changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from meshdsl.importer.errors import NotExpressible

LINE = 100


class Expr:
    def flat(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Code(Expr):
    """Already written code: a name, a literal, ``svc.v1``."""

    text: str

    def flat(self) -> str:
        return self.text


@dataclass(frozen=True)
class Call(Expr):
    func: str
    args: Sequence[Expr] = ()
    kwargs: Sequence[tuple[str, Expr]] = ()

    def items(self) -> list[tuple[str, Expr]]:
        return [("", a) for a in self.args] + [(f"{k}=", v) for k, v in self.kwargs]

    def flat(self) -> str:
        return f"{self.func}({', '.join(p + e.flat() for p, e in self.items())})"


@dataclass(frozen=True)
class ListOf(Expr):
    values: Sequence[Expr] = field(default_factory=tuple)

    def flat(self) -> str:
        return f"[{', '.join(v.flat() for v in self.values)}]"


@dataclass(frozen=True)
class DictOf(Expr):
    entries: Sequence[tuple[Expr, Expr]] = field(default_factory=tuple)

    def flat(self) -> str:
        return "{" + ", ".join(f"{k.flat()}: {v.flat()}" for k, v in self.entries) + "}"


@dataclass(frozen=True)
class And(Expr):
    """``a & b & c`` (match conditions that must all hold)."""

    parts: Sequence[Expr]

    def flat(self) -> str:
        return " & ".join(p.flat() for p in self.parts)


def string(text: str) -> str:
    """A string literal in double quotes (ruff's preference), escaped as repr escapes."""
    quoted = repr(text)
    if quoted.startswith("'") and '"' not in text:
        return '"' + quoted[1:-1] + '"'
    return quoted


def literal(value: Any) -> Expr:
    """Plain data (what YAML holds) as an expression."""
    if isinstance(value, str):
        return Code(string(value))
    if isinstance(value, bool) or value is None:
        return Code(repr(value))
    if isinstance(value, float) and not math.isfinite(value):
        return Code(f'float("{value}")')
    if isinstance(value, (int, float)):
        return Code(repr(value))
    if isinstance(value, dict):
        return DictOf([(literal(k), literal(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return ListOf([literal(v) for v in value])
    raise NotExpressible(f"cannot write {type(value).__name__} as Python")


def _brackets(expr: Expr) -> tuple[str, list[tuple[str, Expr]], str] | None:
    if isinstance(expr, Call):
        return f"{expr.func}(", expr.items(), ")"
    if isinstance(expr, ListOf):
        return "[", [("", v) for v in expr.values], "]"
    if isinstance(expr, DictOf):
        return "{", [(f"{k.flat()}: ", v) for k, v in expr.entries], "}"
    return None


def layout(expr: Expr, indent: int, lead: int, trail: int = 0) -> str:
    """``expr`` starting after ``lead`` columns of a line indented by ``indent`` and
    followed by ``trail`` characters; continuation lines carry their own indentation."""
    flat = expr.flat()
    if lead + len(flat) + trail <= LINE:
        return flat
    if isinstance(expr, And):  # one operand per line, at the expression's indentation
        pad = "\n" + " " * indent + "& "
        return pad.join(layout(p, indent, indent + 2, trail) for p in expr.parts)
    parts = _brackets(expr)
    if parts is None or not parts[1]:
        return flat
    opening, items, closing = parts
    inner = " " * (indent + 4)
    body = ", ".join(prefix + e.flat() for prefix, e in items)
    collection = not isinstance(expr, Call) and len(items) > 1  # ruff explodes these
    if indent + 4 + len(body) <= LINE and not collection:
        return f"{opening}\n{inner}{body}\n{' ' * indent}{closing}"
    lines = [opening]
    for prefix, e in items:
        text = layout(e, indent + 4, indent + 4 + len(prefix), 1)
        lines.append(f"{inner}{prefix}{text},")
    lines.append(" " * indent + closing)
    return "\n".join(lines)


def statement(expr: Expr, target: str | None = None) -> str:
    lead = f"{target} = " if target else ""
    return lead + layout(expr, 0, len(lead))

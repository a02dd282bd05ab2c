"""``reconciler.delivery`` is the pure heart: it imports no I/O library and no adapter."""

from __future__ import annotations

import ast
from pathlib import Path

import reconciler.delivery

PACKAGE = Path(reconciler.delivery.__file__).parent
FORBIDDEN = ("httpx", "kubernetes", "subprocess", "git", "watchdog", "pulumi", "socket",
             "requests", "tenacity", "time", "random", "threading",
             "reconciler.metrics", "reconciler.targets", "reconciler.runtime",
             "reconciler.sources", "reconciler.cli")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_delivery_imports_nothing_that_does_io() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 9
    for module in modules:
        for name in imported(module):
            assert not any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN), (
                f"{module.name} imports {name}")

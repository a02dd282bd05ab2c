"""Where a child keeps its files: paths under its owner's working directory.

Envoy, Prometheus, the test API server and the local CA each keep a few fixed files in one
directory (config, logs, keys); each such path is declared once on the class, as a
:class:`WorkFile`, instead of a property repeating ``return self.workdir / "name"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, overload

__all__ = ["WorkFile"]


class WorkFile:
    """``log_path = WorkFile("envoy.log")``: reads as ``self.workdir / "envoy.log"``,
    computed on every access (the directory may be chosen at start); ``under`` names
    another directory attribute."""

    def __init__(self, *parts: str, under: str = "workdir") -> None:
        self.parts, self.under = parts, under

    @overload
    def __get__(self, owner: None, kind: type[Any]) -> WorkFile: ...

    @overload
    def __get__(self, owner: object, kind: type[Any]) -> Path: ...

    def __get__(self, owner: object | None, kind: type[Any]) -> WorkFile | Path:
        if owner is None:
            return self
        directory: Path = getattr(owner, self.under)
        return directory.joinpath(*self.parts)

    def __set__(self, owner: object, value: object) -> None:
        raise AttributeError(f"{'/'.join(self.parts)} is a fixed file of the {self.under}")

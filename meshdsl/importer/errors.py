"""What importing can report: an error that stops it, or a warning that it carried on.

Bad input (YAML that does not parse, an unknown kind, a field of the wrong type) is the
user's to fix, so every error names the file and line. Anything the DSL cannot express is
not an error: the resource is carried through unchanged and a warning names each field.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshdsl.errors import MeshdslError
from meshdsl.model.base import SourceLocation


class ImporterError(MeshdslError):
    """Root of the importer's exceptions."""


class InputError(ImporterError):
    """The input cannot be imported: what is wrong, where (file:line) and how to fix it."""

    def __init__(self, message: str, source: SourceLocation | None = None) -> None:
        super().__init__(message)
        self.message, self.source = message, source

    def __str__(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message


class NotExpressible(ImporterError):
    """A model value that the builder API cannot reproduce (``to_python`` refuses it
    rather than generating a program that would compile to something else)."""


@dataclass(frozen=True)
class ImporterWarning:
    """One field (or a whole resource) that the DSL does not model and that therefore
    travels through ``mesh.raw(...)`` unchanged."""

    resource: str  # "Kind namespace/name"
    path: str  # YAML path inside the resource, "" for the whole resource
    message: str
    source: SourceLocation | None = None

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        field = f" {self.path}" if self.path else ""
        return f"{where}warning: {self.resource}{field}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"resource": self.resource, "path": self.path, "message": self.message,
                "file": self.source.file if self.source else None,
                "line": self.source.line if self.source else None}

"""The parent's judgement of what a sandboxed program returned.

Everything that comes out of the sandbox is data written by the program, which may be
hostile: a forged ``{"ok": true}`` with a ClusterRoleBinding in it must not be applied.
So the parent never takes a verdict or a manifest from it. It takes the *spec* — the one
thing a program legitimately produces — parses it again through the frozen pydantic
models (``extra="forbid"``), validates it and compiles it itself. A forged spec is no more
than a program could have built honestly; whatever it claims, the same rules apply.

``sources`` (which file:line each finding points at) is display data only: it is matched
to the parent's own findings by code and path, and a source that does not look like a
relative path and a line number is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from meshdsl.compile import compile_mesh
from meshdsl.model.base import SourceLocation, restore_source
from meshdsl.model.spec import MeshSpec
from meshdsl.validate import Finding, Severity, validate

__all__ = ["Judged", "judge"]

_MAX_LOCATION = 300
_MAX_DECLARED = 500_000   # located objects read back at most (10,000 services: ~60,000)


class Rejected(Exception):
    """The program's claim is not a mesh; ``message`` says why."""


@dataclass(frozen=True)
class Judged:
    spec: MeshSpec
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    def manifests(self) -> list[dict[str, Any]]:
        return compile_mesh(self.spec)


def _sources(raw: Any) -> dict[tuple[str, str], SourceLocation]:
    found: dict[tuple[str, str], SourceLocation] = {}
    if not isinstance(raw, list):
        return found
    for item in raw[:10_000]:
        if (isinstance(item, list) and len(item) == 4
                and all(isinstance(x, str) for x in item[:3]) and isinstance(item[3], int)
                and not isinstance(item[3], bool)):
            code, path, file, line = item
            if (len(file) <= _MAX_LOCATION and not file.startswith("/")
                    and file.isprintable() and 0 < line < 10**7):
                found.setdefault((code, path), SourceLocation(file=file, line=line))
    return found


def _location(file: Any, line: Any) -> SourceLocation | None:
    if (isinstance(file, str) and isinstance(line, int) and not isinstance(line, bool)
            and len(file) <= _MAX_LOCATION and not file.startswith("/")
            and file.isprintable() and 0 < line < 10**7):
        return SourceLocation(file=file, line=line)
    return None


def _restore_declared(spec: MeshSpec, raw: Any) -> None:
    """Put the program's file:line back on the declared objects (display data: a path that
    names no declared object, or a location that does not look like one, is ignored)."""
    if not isinstance(raw, list):
        return
    for item in raw[:_MAX_DECLARED]:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], list)
                and len(item[0]) <= 16):
            continue
        path = item[0]
        if not all((isinstance(p, str) and len(p) <= 64) or
                   (isinstance(p, int) and not isinstance(p, bool)) for p in path):
            continue
        location = _location(item[1], item[2])
        if location is not None:
            restore_source(spec, tuple(path), location)


def judge(claim: dict[str, Any]) -> Judged:
    """Parse, validate (and make ready to compile) the spec a program claims; raise
    :class:`Rejected` if it is not a mesh spec at all."""
    raw = claim.get("spec")
    if not isinstance(raw, dict):
        raise Rejected("the program's result holds no mesh spec")
    try:
        spec = MeshSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in first["loc"])[:200]
        raise Rejected(f"the program's result is not a valid mesh spec ({exc.error_count()} "
                       f"error(s), first at {where or 'the top'}: {first['msg']})") from None
    _restore_declared(spec, claim.get("declared"))
    sources = _sources(claim.get("sources"))
    findings = [replace(f, source=sources.get((f.code, f.path))) if f.source is None else f
                for f in validate(spec)]
    return Judged(spec=spec, findings=findings)

"""Load a mesh program: a file (``mesh.py``, ``mesh.py:attr``) or ``module:attr``.

A broken program is the user's problem to fix, so errors point at *their* line: the
traceback is cut to the frames of their files, never ours. Every failure is a
:class:`~reconciler.runtime.records.ProgramError` (the one the sandbox raises too), its
kind read from the cause: a syntax error, memory, any other exception, or a module that
is not a mesh program (``invalid``).
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from meshdsl.model.builder import Mesh
from meshdsl.model.spec import MeshSpec
from reconciler.runtime.records import FailureKind, ProgramError

_OURS = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    os.path.dirname(os.path.abspath(importlib.import_module("meshdsl").__file__ or "")),
)


@dataclass(frozen=True)
class Loaded:
    spec: MeshSpec
    source: str


def _is_user_frame(filename: str) -> bool:
    path = os.path.abspath(filename)
    if filename.startswith("<frozen") or "site-packages" in path or "/lib/python" in path:
        return False
    return not any(path.startswith(root + os.sep) for root in _OURS if root)


def _user_error(exc: BaseException, what: str) -> ProgramError:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_user_frame(f.filename)]
    if isinstance(exc, SyntaxError) and exc.filename:
        lines = [f"{(exc.text or '').rstrip()}"] if exc.text else []
        return ProgramError(f"syntax error in {what}: {exc.msg}", kind=FailureKind.SYNTAX,
                            location=f"{exc.filename}:{exc.lineno}", details=lines)
    location = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None
    shown = [f"{f.filename}:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in frames]
    if isinstance(exc, ValidationError):
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or e.get('ctx', '')}: {e['msg']}"
            for e in exc.errors())
        message = f"invalid {exc.title}: {detail}"
    else:
        message = f"{type(exc).__name__}: {exc}"
    kind = (FailureKind.SYNTAX if isinstance(exc, SyntaxError) else
            FailureKind.MEMORY if isinstance(exc, MemoryError) else FailureKind.EXCEPTION)
    return ProgramError(f"{what} failed: {message}", kind=kind, location=location,
                        details=shown)


def _pick(namespace: dict[str, Any], attr: str | None, what: str) -> MeshSpec:
    if attr is not None:
        if attr not in namespace:
            raise ProgramError(f"{what} has no attribute {attr!r}", kind=FailureKind.INVALID)
        candidates = {attr: namespace[attr]}
    else:
        candidates = {k: v for k, v in namespace.items()
                      if isinstance(v, (Mesh, MeshSpec)) and not k.startswith("_")}
        if not candidates:
            raise ProgramError(f"{what} defines no Mesh; create one with mesh = Mesh('name')",
                               kind=FailureKind.INVALID)
        if len(candidates) > 1:
            if "mesh" in candidates:
                candidates = {"mesh": candidates["mesh"]}
            else:
                raise ProgramError(f"{what} defines several meshes ({', '.join(candidates)}); "
                                   f"choose one with {what}:NAME", kind=FailureKind.INVALID)
    ((name, value),) = candidates.items()
    if callable(value) and not isinstance(value, (Mesh, MeshSpec)):
        try:
            value = value()
        except Exception as exc:  # the user's factory failed
            raise _user_error(exc, f"{what}:{name}()") from exc
    if isinstance(value, Mesh):
        try:
            return value.build()
        except ValidationError as exc:
            raise _user_error(exc, what) from exc
    if isinstance(value, MeshSpec):
        return value
    raise ProgramError(f"{what}:{name} is a {type(value).__name__}, not a Mesh",
                       kind=FailureKind.INVALID)


def load(target: str) -> Loaded:
    """Run the program and return its mesh, or raise :class:`ProgramError`."""
    path_part, _, attr = target.partition(":") if not os.path.exists(target) else (target, "", "")
    path = Path(path_part)
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise ProgramError(f"no such file: {path_part}", kind=FailureKind.INVALID)
        what = str(path)
        sys.path.insert(0, str(path.resolve().parent))
        try:
            namespace = runpy.run_path(str(path), run_name="__meshdsl__")
        except SystemExit as exc:
            raise ProgramError(f"{what} called exit({exc.code})",
                               kind=FailureKind.EXCEPTION) from exc
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise _user_error(exc, what) from exc
        finally:
            sys.path.pop(0)
    else:
        what = path_part
        try:
            namespace = vars(importlib.import_module(path_part))
        except ModuleNotFoundError as exc:
            raise ProgramError(f"cannot find {path_part!r}: not a file and not an importable "
                               "module", kind=FailureKind.INVALID) from exc
        except Exception as exc:
            raise _user_error(exc, what) from exc
    return Loaded(spec=_pick(namespace, attr or None, what), source=what)

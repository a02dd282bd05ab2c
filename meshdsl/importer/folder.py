"""Reading a whole folder for ``meshctl import``/``analyze``: what is not a Kubernetes
object is skipped, with a warning, instead of stopping the import.

A repository's config folder holds more than manifests: Helm values files, kustomization
files, CI configs. A YAML file is read as manifests when every document in it is a
Kubernetes object (a mapping with ``apiVersion`` and ``kind``) or empty; otherwise it is
skipped with one warning naming the file. A file that does not even parse as YAML is still
an error when it was named explicitly, and skipped with a warning when found in a folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshdsl.importer.errors import InputError
from meshdsl.importer.yamlsource import Document, load_data, load_files

_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Folder:
    documents: list[Document] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one warning per skipped file


def _kubernetes(data: Any) -> bool:
    return data is None or (isinstance(data, dict) and isinstance(data.get("apiVersion"), str)
                            and isinstance(data.get("kind"), str))


def _why_not(path: Path) -> str | None:
    """Why the file holds no Kubernetes objects (None when it does)."""
    try:
        docs = load_data(path)
    except InputError as exc:
        return f"not readable YAML ({str(exc).splitlines()[0]})"
    if all(_kubernetes(d) for d in docs):
        return None
    return ("not Kubernetes objects (a document without apiVersion and kind, like a Helm "
            "values file)")


def files_of(paths: Iterable[str | Path]) -> list[tuple[Path, bool]]:
    """Every file to read and whether it was named explicitly (folders walked, sorted)."""
    out: list[tuple[Path, bool]] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            out += [(p, False) for p in sorted(path.rglob("*"))
                    if p.suffix in _SUFFIXES and p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)]
        else:
            out.append((path, True))
    return out


def load_folder(paths: Iterable[str | Path]) -> Folder:
    """The Kubernetes objects of files and folders; other files skipped with a warning."""
    folder = Folder()
    for path, named in files_of(paths):
        why = _why_not(path) if path.is_file() else None
        if why is not None and (not named or why.startswith("not Kubernetes")):
            folder.skipped.append(f"{path}: skipped, {why}")
            continue
        try:
            folder.documents += load_files([path])
        except InputError:
            if named:
                raise
            folder.skipped.append(f"{path}: skipped, not readable as Kubernetes YAML")
    return folder

"""Reading Istio YAML while remembering where everything came from.

Warnings and validation findings on imported resources should point at the user's YAML,
not at generated Python, so every document keeps its file, its first line and the line of
each key and list item (from the composed node tree's marks). Multi-document streams and
``kind: List`` (what ``kubectl get -o yaml`` prints) are flattened to one document per
object.

The data is normalized to what the API server would receive: mapping keys are strings
(JSON has no other keys), timestamps and binary scalars are strings. Duplicate keys are an
error here, although PyYAML would silently keep the last one, because Kubernetes'
strict decoding rejects them too.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from meshdsl.importer.errors import InputError
from meshdsl.model.base import SourceLocation

YamlPath = tuple[str | int, ...]

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Document:
    """One Kubernetes object of the input and where each of its parts was written."""

    manifest: dict[str, Any]
    file: str
    line: int
    lines: Mapping[YamlPath, int] = field(default_factory=dict, repr=False)

    def where(self, path: Sequence[str | int] = ()) -> SourceLocation:
        """The line of ``path`` inside this object, or of its nearest enclosing part."""
        key = tuple(path)
        while key:
            if key in self.lines:
                return SourceLocation(file=self.file, line=self.lines[key])
            key = key[:-1]
        return SourceLocation(file=self.file, line=self.line)


def _key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _normalize(value: Any) -> Any:
    """What the API server would see: string keys, no timestamps or bytes."""
    if isinstance(value, dict):
        return {_key(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _index(node: Node, path: YamlPath, lines: dict[YamlPath, int], file: str) -> None:
    """Record the line of every key and item; reject duplicate keys."""
    if isinstance(node, MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.value == "<<":
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise InputError(f"duplicate key {key!r} in the same mapping; Kubernetes "
                                 "rejects it — keep one", SourceLocation(file=file, line=line))
            seen.add(key)
            lines[(*path, key)] = line
            _index(value_node, (*path, key), lines, file)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _index(item, (*path, i), lines, file)


def _describe(value: Any) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)


def _objects(data: Any, file: str, line: int, lines: Mapping[YamlPath, int]
             ) -> list[Document]:
    if not isinstance(data, dict):
        raise InputError(f"each YAML document must be a Kubernetes object (a mapping with "
                         f"apiVersion, kind and metadata), not {_describe(data)}",
                         SourceLocation(file=file, line=line))
    kind = data.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and "items" in data:
        items = data["items"]
        if not isinstance(items, list):
            raise InputError(f"'items' of a {kind} must be a list, not {_describe(items)}",
                             SourceLocation(file=file, line=lines.get(("items",), line)))
        out: list[Document] = []
        for i, item in enumerate(items):
            prefix = ("items", i)
            sub = {k[2:]: v for k, v in lines.items() if k[:2] == prefix}
            out += _objects(item, file, lines.get(prefix, line), sub)
        return out
    return [Document(manifest=data, file=file, line=line, lines=dict(lines))]


def load_text(text: str, file: str = "<stdin>") -> list[Document]:
    """Every object of a YAML stream, in order; :class:`InputError` for bad YAML."""
    loader = _Loader(text)
    documents: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            data = _normalize(loader.construct_document(node))
            if data is None:
                continue  # an empty document (``---`` twice, or only comments)
            lines: dict[YamlPath, int] = {}
            _index(node, (), lines, file)
            documents += _objects(data, file, node.start_mark.line + 1, lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = ": ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise InputError(f"invalid YAML: {what}", SourceLocation(file=file, line=line)
                         ) from exc
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", SourceLocation(file=file, line=1)) from exc
    finally:
        loader.dispose()
    return documents


def load_files(paths: Iterable[str | Path]) -> list[Document]:
    """Every object of every file, in the order given."""
    documents: list[Document] = []
    for path in paths:
        name = str(path)
        try:
            text = Path(path).read_bytes().decode("utf-8-sig")
        except FileNotFoundError as exc:
            raise InputError(f"{name}: no such file") from exc
        except IsADirectoryError as exc:
            raise InputError(f"{name}: is a directory; pass the YAML files in it "
                             f"({name}/*.yaml)") from exc
        except OSError as exc:
            raise InputError(f"{name}: cannot read: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise InputError(f"{name}: not UTF-8 text (byte {exc.start}); YAML must be "
                             "UTF-8") from exc
        documents += load_text(text, name)
    return documents

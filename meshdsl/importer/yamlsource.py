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

Input is bounded before it costs anything: at most :data:`MAX_BYTES` read from any file
or stream (``/dev/zero`` is "too large", not a hang), nesting at most :data:`MAX_DEPTH`
(checked on the event stream, before anything recursive runs), and at most
:data:`MAX_NODES` nodes once aliases are expanded (a 441-byte "billion laughs" document
is refused in milliseconds, not after gigabytes). Every such input is an
:class:`InputError`, like any other bad YAML.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml
from yaml.events import (
    MappingEndEvent,
    MappingStartEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from meshdsl.importer.errors import InputError
from meshdsl.model.base import SourceLocation

YamlPath = tuple[str | int, ...]

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_BYTES = 16 << 20
MAX_DEPTH = 100
MAX_NODES = 1_000_000


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


def _check_depth(text: str, file: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` from the events alone."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else 1
                raise InputError(f"nested more than {MAX_DEPTH} levels deep; a Kubernetes "
                                 "object never is", SourceLocation(file=file, line=line))
        elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
            depth -= 1


def _check_size(node: Node, file: str) -> None:
    """Refuse a document that expands (through aliases) to more than :data:`MAX_NODES`
    nodes, or refers to itself; counts each shared node once per use, without expanding."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(current: Node) -> int:
        key = id(current)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise InputError("a YAML alias refers to the node that contains it",
                             SourceLocation(file=file, line=current.start_mark.line + 1))
        active.add(key)
        children: list[Node] = []
        if isinstance(current, MappingNode):
            children = [part for pair in current.value for part in pair]
        elif isinstance(current, SequenceNode):
            children = list(current.value)
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_NODES:
                raise InputError(
                    f"the document expands to more than {MAX_NODES:,} values through YAML "
                    "aliases (an alias bomb?)",
                    SourceLocation(file=file, line=node.start_mark.line + 1))
        active.discard(key)
        sizes[key] = total
        return total

    size(node)


def _construct(loader: Any, node: Node, file: str) -> Any:
    """The document's data; a malformed explicitly tagged scalar (``!!timestamp x``,
    ``!!binary *``) makes PyYAML's constructors raise whatever they hit, which is bad
    input like any other."""
    try:
        return loader.construct_document(node)
    except yaml.YAMLError:
        raise
    except Exception as exc:
        raise InputError(f"invalid YAML value ({type(exc).__name__}: {exc})",
                         SourceLocation(file=file, line=node.start_mark.line + 1)) from exc


def _parsed(text: str, file: str) -> Iterator[tuple[Any, Any]]:
    """Each non-empty document of a YAML stream as (node, plain data), within the bounds:
    size, nesting depth and alias expansion checked before anything is built."""
    if len(text) > MAX_BYTES:
        raise InputError(f"{file}: larger than {MAX_BYTES >> 20} MiB")
    loader = _Loader(text)
    try:
        _check_depth(text, file)
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            _check_size(node, file)
            data = _normalize(_construct(loader, node, file))
            if data is not None:  # None: an empty document (``---`` twice, or only comments)
                yield node, data
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = ": ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise InputError(f"invalid YAML: {what}", SourceLocation(file=file, line=line)
                         ) from exc
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", SourceLocation(file=file, line=1)) from exc
    except RecursionError as exc:
        raise InputError("nested too deeply", SourceLocation(file=file, line=1)) from exc
    finally:
        loader.dispose()


def load_text(text: str, file: str = "<stdin>") -> list[Document]:
    """Every object of a YAML stream, in order; :class:`InputError` for bad YAML."""
    documents: list[Document] = []
    for node, data in _parsed(text, file):
        lines: dict[YamlPath, int] = {}
        _index(node, (), lines, file)
        documents += _objects(data, file, node.start_mark.line + 1, lines)
    return documents


def load_data(path: str | Path) -> list[Any]:
    """The plain data of every document of a file (any YAML, not only Kubernetes objects),
    under the same bounds as :func:`load_files`."""
    return [data for _, data in _parsed(_read(path), str(path))]


def _decode(data: bytes, name: str) -> str:
    if len(data) > MAX_BYTES:
        raise InputError(f"{name}: larger than {MAX_BYTES >> 20} MiB; not a manifest")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not UTF-8 text (byte {exc.start}); YAML must be "
                         "UTF-8") from exc


def load_stream(stream: IO[bytes], name: str = "<stdin>") -> list[Document]:
    """Every object of a binary stream (stdin), read up to :data:`MAX_BYTES` + 1."""
    try:
        data = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror}") from exc
    return load_text(_decode(data, name), name)


def load_files(paths: Iterable[str | Path]) -> list[Document]:
    """Every object of every file, in the order given."""
    documents: list[Document] = []
    for path in paths:
        documents += load_text(_read(path), str(path))
    return documents


def _read(path: str | Path) -> str:
    name = str(path)
    try:
        with open(path, "rb") as handle:
            return _decode(handle.read(MAX_BYTES + 1), name)
    except FileNotFoundError as exc:
        raise InputError(f"{name}: no such file") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{name}: is a directory; pass the YAML files in it "
                         f"({name}/*.yaml)") from exc
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror}") from exc

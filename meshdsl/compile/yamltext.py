"""A small, fast YAML emitter for manifests (dicts, lists, strings, numbers, booleans).

Rendering thousands of objects is on the hot path of every reconcile, and PyYAML's
emitter (even libyaml's) is several times slower than building the objects. Manifests
only hold JSON-like data, so block-style YAML can be written directly: strings that could
be read back as anything but themselves are double-quoted (JSON string syntax is valid
YAML). A property test checks that ``yaml.safe_load`` reads back exactly what was written.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

_PLAIN = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./@+-]*(:[A-Za-z0-9_./@+-]+)*\Z")
# Characters YAML allows unescaped in a double-quoted scalar (besides JSON's own escapes).
_UNPRINTABLE = re.compile(
    "[^\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_RESOLVER = Resolver()
_STR_TAG = "tag:yaml.org,2002:str"
_RESERVED = {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"}


def _scalar(value: Any) -> str:
    if type(value) is str:
        return _string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text and "." not in text:  # YAML 1.1 floats need a dot: 1e-05 -> 1.0e-05
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    return _string(str(value))


_STRINGS: dict[str, str] = {}
_STRINGS_LIMIT = 65536


def _string(text: str) -> str:
    """Plain when a YAML 1.1 reader would resolve it back to this string, else quoted.
    Memoised in a plain dict (cleared when full): manifests repeat their keys and values
    thousands of times, and a dict lookup is the cheapest way to recognise them."""
    out = _STRINGS.get(text)
    if out is None:
        if len(_STRINGS) >= _STRINGS_LIMIT:
            _STRINGS.clear()
        out = _STRINGS[text] = _quote(text)
    return out


def _quote(text: str) -> str:
    if (_PLAIN.match(text) and text.lower() not in _RESERVED
            and _RESOLVER.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
            == _STR_TAG):
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


_KEYS: dict[str, str] = {}


def _key(key: Any) -> str:
    """``key:`` as it heads a mapping entry; string keys memoised like string values."""
    if type(key) is not str:
        return _scalar(key) + ":"
    out = _KEYS.get(key)
    if out is None:
        if len(_KEYS) >= _STRINGS_LIMIT:
            _KEYS.clear()
        out = _KEYS[key] = _string(key) + ":"
    return out


def _mapping(value: dict[Any, Any], indent: str, out: list[str], first: str | None) -> None:
    """Dispatch on the exact type first: strings, dicts, lists and ints are nearly every
    value of a manifest, so the common case costs a type check and a dict lookup."""
    prefix = indent if first is None else first
    inner = indent + "  "
    append = out.append
    keys, strings = _KEYS, _STRINGS
    for key, item in value.items():
        head = keys.get(key) if type(key) is str else None
        if head is None:
            head = _key(key)
        kind = type(item)
        if kind is str:
            text = strings.get(item)
            append(f"{prefix}{head} {_string(item) if text is None else text}")
        elif kind is dict or (kind is not list and isinstance(item, dict)):
            if item:
                append(prefix + head)
                _mapping(item, inner, out, None)
            else:
                append(prefix + head + " {}")
        elif kind is list or isinstance(item, list):
            if item:
                append(prefix + head)
                _sequence(item, indent, out)
            else:
                append(prefix + head + " []")
        elif kind is int:
            append(f"{prefix}{head} {item}")
        else:
            append(f"{prefix}{head} {_scalar(item)}")
        prefix = indent


def _sequence(value: list[Any], indent: str, out: list[str]) -> None:
    dash, inner = indent + "- ", indent + "  "
    for item in value:
        kind = type(item)
        if kind is str:
            text = _STRINGS.get(item)
            out.append(dash + (_string(item) if text is None else text))
        elif isinstance(item, dict) and item:
            _mapping(item, inner, out, dash)
        elif isinstance(item, list) and item:
            out.append(f"{indent}-")
            _sequence(item, inner, out)
        else:
            out.append(dash + _flow_empty(item))


def _flow_empty(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def dump(document: Any) -> str:
    """One document as block-style YAML (no leading ``---``)."""
    out: list[str] = []
    if isinstance(document, dict) and document:
        _mapping(document, "", out, None)
    elif isinstance(document, list) and document:
        _sequence(document, "", out)
    else:
        out.append(_flow_empty(document))
    return "\n".join(out) + "\n"


def dump_all(documents: Iterable[Any]) -> str:
    """A stream of documents separated by ``---``."""
    return "---\n".join(dump(d) for d in documents)


def write_all(documents: Iterable[Any], write: Callable[[str], object]) -> int:
    """The stream of :func:`dump_all` handed to ``write`` one document at a time (a file's
    ``write``), so the text of a large mesh is never held whole; returns the count."""
    count = 0
    for document in documents:
        write(dump(document) if count == 0 else "---\n" + dump(document))
        count += 1
    return count

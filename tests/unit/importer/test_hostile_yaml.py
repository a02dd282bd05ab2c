"""Hostile YAML: alias bombs, deep nesting, endless or non-UTF-8 input are input errors
within milliseconds; and a fuzz of the loader and the importer — any text is either
imported or an :class:`InputError`/:class:`ImporterError`, never another exception."""

from __future__ import annotations

import contextlib
import io
import itertools
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshdsl.importer import ImporterError, InputError, import_documents
from meshdsl.importer.yamlsource import MAX_BYTES, load_files, load_stream, load_text


def laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in itertools.pairwise("abcdefghijklmnop"[:levels]):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("text", "message"), [
    (laughs(), "alias bomb"),
    ("a: &a [*a]\n", "refers to the node that contains it"),
    ("[" * 500 + "]" * 500, "nested more than 100 levels"),
    ("a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 300)), "nested more than"),
    ("x" * (MAX_BYTES + 1), "larger than"),
])
def test_hostile_documents_are_input_errors_fast(text: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(InputError, match=message):
        load_text(text, "bomb.yaml")
    assert time.monotonic() - started < 2.0


def test_moderate_aliases_still_load() -> None:
    docs = load_text("apiVersion: v1\nkind: List\nitems:\n"
                     "- {apiVersion: v1, kind: ConfigMap, metadata: &m {name: a}}\n"
                     "- {apiVersion: v1, kind: Secret, metadata: *m}\n")
    assert [d.manifest["metadata"]["name"] for d in docs] == ["a", "a"]


def test_endless_and_non_utf8_input() -> None:
    started = time.monotonic()
    with pytest.raises(InputError, match="larger than 16 MiB"):
        load_files(["/dev/zero"])
    assert time.monotonic() - started < 5.0
    with pytest.raises(InputError, match="not UTF-8"):
        load_stream(io.BytesIO(b"kind: \xff\xfe\n"), "<stdin>")
    with pytest.raises(InputError, match="is a directory"):
        load_files(["/"])


TOKENS = ["&a ", "&b ", "*a", "*b", "[", "]", "{", "}", ": ", ", ", "- ", "\n", "  ", "---\n",
          "!!binary ", "!!timestamp ", "!!python/object:os.system ", "<<: ", "? ", "|\n",
          ">\n", "#", '"', "'", "%YAML 1.1\n", "1e400", ".inf", "0x1F", "2001-12-14",
          "apiVersion: networking.istio.io/v1\n", "kind: VirtualService\n",
          "kind: DestinationRule\n", "kind: Gateway\n", "kind: List\nitems:\n",
          "metadata:\n  name: web\n  namespace: ../../x\n", "spec:\n  hosts: [web]\n",
          "  http:\n  - route:\n    - destination: {host: web, subset: v1}\n",
          "\t", "\x00", "\u2028", "é"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=4)), max_size=40))
def test_fuzz_loader_and_importer(parts: list[str]) -> None:
    text = "".join(parts)
    try:
        documents = load_text(text, "fuzz.yaml")
    except InputError:
        return
    with contextlib.suppress(ImporterError):
        import_documents(documents)

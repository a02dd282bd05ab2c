"""Reading YAML: one document per object, and the line of everything in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshdsl.importer import InputError, load_files, load_text

STREAM = """\
# a comment
apiVersion: v1
kind: Service
metadata:
  name: a
spec:
  ports:
  - port: 80
    name: http
---
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata:
    name: shop
- apiVersion: security.istio.io/v1
  kind: PeerAuthentication
  metadata: {name: p}
  spec:
    portLevelMtls:
      8080: {mode: DISABLE}
"""


def test_documents_lists_and_lines() -> None:
    docs = load_text(STREAM, "s.yaml")
    assert [d.manifest["kind"] for d in docs] == ["Service", "Namespace", "PeerAuthentication"]
    service, namespace, peer = docs
    assert (service.file, service.line) == ("s.yaml", 2)
    assert str(service.where(("spec", "ports", 0, "name"))) == "s.yaml:9"
    assert str(service.where(("spec", "ports", 0, "nowhere"))) == "s.yaml:8"  # nearest part
    assert namespace.line == 15 and str(namespace.where(("metadata", "name"))) == "s.yaml:18"
    assert peer.line == 19


def test_keys_are_strings_as_the_api_server_sees_them() -> None:
    (peer,) = load_text("kind: X\nspec:\n  8080: {mode: DISABLE}\n  when: 2024-01-01\n"
                        "  true: yes\n", "k.yaml")
    assert peer.manifest["spec"] == {"8080": {"mode": "DISABLE"}, "when": "2024-01-01",
                                     "true": True}


@pytest.mark.parametrize(("text", "line", "words"), [
    ("kind: A\nmetadata:\n  name: a\n spec: [\n", 4, "invalid YAML"),
    ("kind: A\nmetadata: {name: a\n", 3, "invalid YAML"),
    ("kind: A\nkind: B\n", 2, "duplicate key 'kind'"),
    ("- a\n- b\n", 1, "not a list"),
    ("apiVersion: v1\nkind: List\nitems: 3\n", 3, "must be a list"),
    ("kind: A\nvalue: !!python/object:os.system x\n", 2, "invalid YAML"),
    ("kind: A\nx: !Ref y\n", 2, "invalid YAML"),
])
def test_bad_yaml_is_an_error_at_its_line(text: str, line: int, words: str) -> None:
    with pytest.raises(InputError) as info:
        load_text(text, "bad.yaml")
    assert info.value.source is not None
    assert (info.value.source.file, info.value.source.line) == ("bad.yaml", line)
    assert words in str(info.value)


def test_empty_input_has_no_documents() -> None:
    assert load_text("", "e.yaml") == [] and load_text("# only\n---\n", "e.yaml") == []


def test_files(tmp_path: Path) -> None:
    good = tmp_path / "a.yaml"
    good.write_text("kind: A\nmetadata: {name: a}\n")
    assert [d.file for d in load_files([good, good])] == [str(good)] * 2
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"kind: \xff\n")
    for path, words in ((tmp_path / "none.yaml", "no such file"), (tmp_path, "is a directory"),
                        (binary, "not UTF-8")):
        with pytest.raises(InputError, match=words):
            load_files([path])

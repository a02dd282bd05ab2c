"""DNS-1123 names: the predicates, and every declared and raw object checked."""

from __future__ import annotations

import pytest

from meshdsl import Mesh
from meshdsl.validate import validate
from meshdsl.validate.names import is_label, is_subdomain


@pytest.mark.parametrize(("value", "label", "subdomain"), [
    ("web", True, True), ("web-1", True, True), ("a.b", False, True),
    ("../../x", False, False), ("", False, False), ("-web", False, False),
    ("Web", False, False), ("a" * 63, True, True), ("a" * 64, False, False),
    ("web\n", False, False), ("wéb", False, False), ("x/y", False, False),
])
def test_predicates(value: str, label: bool, subdomain: bool) -> None:
    assert is_label(value) is label
    assert is_subdomain(value) is subdomain


def test_every_bad_name_is_a_finding_with_its_line() -> None:
    mesh = Mesh("t", namespace="../../x")
    mesh.service("ok", versions=["v1"])
    mesh.raw({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "../escape", "namespace": "default"}})
    found = [f for f in validate(mesh.build()) if f.code == "MD116"]
    assert any("'../../x'" in f.message and f.source is not None for f in found)
    assert any("'../escape'" in f.message for f in found)
    assert all(f.severity.value == "error" for f in found)

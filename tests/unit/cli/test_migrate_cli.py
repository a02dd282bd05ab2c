"""`meshctl migrate` as a user runs it (a real subprocess)."""

from __future__ import annotations

import json

from tests.conftest import EXAMPLES
from tests.unit.cli.test_mesh_cli import meshctl

BOOKINFO = str(EXAMPLES / "bookinfo" / "mesh.py")


def test_a_blocked_move_exits_1_naming_the_blocker() -> None:
    result = meshctl("migrate", BOOKINFO, "-n", "bookinfo")
    assert result.returncode == 1, result.stderr
    assert "+ HTTPRoute/bookinfo/reviews (gateway.networking.k8s.io)" in result.stdout
    assert "- VirtualService/bookinfo/reviews (networking.istio.io)" in result.stdout
    assert "mesh.py:114: error MD130 EnvoyFilter bookinfo/filter-ratelimit" in result.stderr
    assert "1 blocker(s)" in result.stderr


def test_json_output_and_bad_namespace() -> None:
    result = meshctl("migrate", BOOKINFO, "-n", "default", "-o", "json")
    data = json.loads(result.stdout)
    assert data["namespaces"] == ["default"]
    assert result.returncode == (0 if data["ready"] else 1)
    assert "HTTPRoute/default/users (gateway.networking.k8s.io)" in data["added"]
    bad = meshctl("migrate", BOOKINFO, "-n", "nope")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: namespace 'nope' is not in this mesh; sidecar namespaces: bookinfo, default"]

"""How much of an import is typed DSL rather than ``mesh.raw``, printed per corpus.

Routing objects import as typed DSL, and so do Bookinfo's workloads (Services with ordinary
labels, one ServiceAccount shared by a service's versions, Deployments with pull policy,
env and scratch volumes), as do httpbin's and helloworld's; of Istio's sleep sample the
Deployment (a secret volume, a grace period) and so its ServiceAccount stay raw. The
figures are printed so a change to the model shows its effect, and the floors keep them
from sliding back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from meshdsl.importer import import_files
from tests.unit.importer.support import CORPUS

WORKLOADS = Path(__file__).parent / "workloads"


def share(paths: list[Path]) -> tuple[int, int]:
    """(typed objects, all objects) over files imported one by one (each renders back)."""
    typed = total = 0
    for path in paths:
        result = import_files([path]).result
        total += len(result.manifests)
        typed += len(result.manifests) - len(result.spec.raw)
    return typed, total


@pytest.mark.parametrize(("name", "paths", "floor"), [
    ("routing corpus", sorted(CORPUS.glob("*.yaml")), 0.80),
    ("Istio sample workloads", sorted(WORKLOADS.glob("*.yaml")), 0.9),
])
def test_typed_share(name: str, paths: list[Path], floor: float,
                     capsys: pytest.CaptureFixture[str]) -> None:
    typed, total = share(paths)
    assert total > 0
    with capsys.disabled():
        print(f"\ntyped share, {name}: {typed}/{total} objects = {typed / total:.0%}")
    assert typed / total >= floor

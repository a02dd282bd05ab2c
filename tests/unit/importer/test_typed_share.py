"""How much of an import is typed DSL rather than ``mesh.raw``, printed per corpus.

Routing objects import as typed DSL, and so do the workloads of Istio's samples in the
workload corpus: Services with ordinary labels, one ServiceAccount shared by a service's
versions, Deployments with pull policy, env (also from Secrets, ConfigMaps and the pod),
scratch volumes, files from Secrets and ConfigMaps, a grace period, several container
ports, a container beside the app; a ServiceEntry selecting a VM's WorkloadEntry. What
stays raw: Secrets and ConfigMaps (not workloads), Redis's Deployment in the rate-limit
sample (a named container port, an explicit restartPolicy, an empty serviceAccountName)
and the echo app's (probe thresholds, a startupProbe, a container named "app", named
container ports). The figures are printed so a change to the model shows its effect, and
the floors keep them from sliding back.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from pathlib import Path
from typing import Any

import pytest

from meshdsl.importer import import_files
from tests.unit.importer.support import CORPUS

WORKLOADS = Path(__file__).parent / "workloads"
WORKLOAD_KINDS = frozenset({"Service", "Deployment", "ServiceAccount", "ServiceEntry",
                            "WorkloadEntry"})


def _identity(manifest: Mapping[str, Any]) -> tuple[object, ...]:
    meta = manifest["metadata"]
    return manifest["kind"], meta.get("namespace"), meta["name"]


def share(paths: list[Path], kinds: Set[str] | None = None) -> tuple[int, int]:
    """(typed objects, all objects) of ``kinds`` (default: every kind) over files imported
    one by one (each renders back)."""
    typed = total = 0
    for path in paths:
        result = import_files([path]).result
        raw = [_identity(m) for m in result.spec.raw]
        counted = [m for m in result.manifests if kinds is None or m["kind"] in kinds]
        total += len(counted)
        typed += sum(_identity(m) not in raw for m in counted)
    return typed, total


@pytest.mark.parametrize(("name", "paths", "kinds", "floor"), [
    ("routing corpus", sorted(CORPUS.glob("*.yaml")), None, 0.80),
    ("Istio sample workloads", sorted(WORKLOADS.glob("*.yaml")), None, 0.86),
    ("Istio sample workloads, workload kinds only", sorted(WORKLOADS.glob("*.yaml")),
     WORKLOAD_KINDS, 0.95),
])
def test_typed_share(name: str, paths: list[Path], kinds: Set[str] | None, floor: float,
                     capsys: pytest.CaptureFixture[str]) -> None:
    typed, total = share(paths, kinds)
    assert total > 0
    with capsys.disabled():
        print(f"\ntyped share, {name}: {typed}/{total} objects = {typed / total:.0%}")
    assert typed / total >= floor

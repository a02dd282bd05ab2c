"""The kube deployer enforces the program's fence under the reconciler's flags before it
reads or writes anything: a refusal is permanent (wait for a new commit), not retried."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.ports import DeployError
from reconciler.runtime.deploy import KubeDeployer


class _Untouchable:
    """A target any call to which fails the test (the fence must refuse first)."""

    write_calls = 0
    server = "test"

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the target was used ({name}) before the fence refused")


def _output(namespace: str, declared: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"mesh": "shop", "manifests": [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": namespace}}]}
    if declared is not None:
        out["tenancy"] = {"namespaces": declared, "clusterKinds": [], "adopt": []}
    return out


@pytest.mark.parametrize(("namespace", "declared", "allow", "expected"), [
    ("kube-system", ["shop", "kube-system"], (), "reserved namespace 'kube-system'"),
    ("payments", ["shop"], (), "outside the mesh's tenancy"),
    ("kube-system", None, (), "reserved namespace"),            # an output stored before fences
    ("istio-system", ["istio-system"], ("kube-system",), "reserved namespace 'istio-system'"),
])
def test_refused_before_any_request(namespace: str, declared: list[str] | None,
                                    allow: tuple[str, ...], expected: str) -> None:
    deployer = KubeDeployer(_Untouchable(), allow_namespaces=allow)  # type: ignore[arg-type]
    with pytest.raises(DeployError) as refused:
        deployer.deploy(_output(namespace, declared), mesh="shop", heal=True)
    assert expected in str(refused.value)
    assert refused.value.transient is False

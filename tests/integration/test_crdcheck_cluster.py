"""The offline CRD check reads a live cluster's CRDs when given its kubeconfig.

The test server is Kubernetes 1.20: it serves Istio's CRDs with their structural schemas
but has dropped the ``x-kubernetes-validations`` rules (a 1.20 server does not know them).
So against the cluster, a rule-only problem is not reported (the cluster would accept the
object) while a schema problem still is; against the bundled CRDs both are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meshdsl.crdcheck import check
from reconciler.runtime.crds import CrdSourceError, catalog, read_cluster
from reconciler.testing.apiserver import LocalApiServer

pytestmark = pytest.mark.integration


def _vs(**route: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"hosts": ["api"], "http": [
                {"route": [{"destination": {"host": "api"}}], **route}]}}


def test_the_clusters_crds_are_the_schemas_checked(apiserver: LocalApiServer) -> None:
    served = read_cluster(str(apiserver.kubeconfig), None)
    names = {crd["metadata"]["name"] for crd in served}
    assert {"virtualservices.networking.istio.io", "httproutes.gateway.networking.k8s.io"} \
        <= names
    cluster = catalog(kubeconfig=str(apiserver.kubeconfig))
    rule_only = _vs(timeout="0s")
    assert [v.rule for v in check([rule_only])] == ["duration(self) >= duration('1ms')"]
    assert check([rule_only], cluster) == []
    wrong_type = _vs(timeout=5)
    assert [v.path for v in check([wrong_type], cluster)] == [("spec", "http", 0, "timeout")]


def test_an_unreachable_cluster_is_one_clear_error(unreachable_kubeconfig: Path) -> None:
    with pytest.raises(CrdSourceError, match="cannot read the cluster's CRDs"):
        read_cluster(str(unreachable_kubeconfig), None)

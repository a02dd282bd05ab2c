"""Safe on a shared cluster (issue 12), on the real kube-apiserver with RBAC on, applying as
the ServiceAccount ``meshctl install --print`` creates (by impersonation):

the program of the issue declares, through ``mesh.raw``, a Namespace another team created,
``Service kube-system/kube-dns``, the reconciler's own control ConfigMap (invalid JSON) and
a Deployment in kube-system with a hostPath volume. It is refused at the first commit —
by validation, by the reconciler's fence, by ownership and by RBAC, each layer alone — and
nothing outside the mesh's namespace changes. The next commit, without them, applies.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshdsl.compile import compile_mesh
from meshdsl.compile.manifest import CONFIG_MAP, GroupKind, ResourceKey
from meshdsl.compile.tenancy import declaration
from reconciler.core.ownership import NotOwnedError
from reconciler.core.tenancy import Policy, TenancyError
from reconciler.runtime.apply import Options, RejectedError, apply
from reconciler.runtime.install import InstallOptions, manifests
from reconciler.runtime.loader import load
from reconciler.targets.kube import Forbidden, KubeTarget
from reconciler.testing.apiserver import LocalApiServer

NET = "networking.istio.io"

pytestmark = pytest.mark.integration

MESHCTL = [sys.executable, "-c", "from reconciler.cli import main; main()"]
SA = "system:serviceaccount:meshdsl-system:meshdsl"


def _program(shop: str, payments: str, *, foreign: bool) -> str:
    raw = textwrap.dedent(f"""
        mesh.raw({{"apiVersion": "v1", "kind": "Namespace", "metadata": {{"name": "{payments}"}}}})
        mesh.raw({{"apiVersion": "v1", "kind": "Service",
                  "metadata": {{"name": "kube-dns", "namespace": "kube-system"}},
                  "spec": {{"ports": [{{"port": 53, "protocol": "UDP", "name": "dns"}}],
                           "selector": {{"k8s-app": "evil"}}}}}})
        mesh.raw({{"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {{"name": "meshdsl-control-default",
                               "namespace": "meshdsl-system"}},
                  "data": {{"control.json": "{{not json"}}}})
        mesh.raw({{"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {{"name": "evil", "namespace": "kube-system"}},
                  "spec": {{"selector": {{"matchLabels": {{"app": "evil"}}}},
                           "template": {{"metadata": {{"labels": {{"app": "evil"}}}},
                                        "spec": {{"containers": [{{"name": "c", "image": "x"}}],
                                                 "volumes": [{{"name": "root",
                                                              "hostPath": {{"path": "/"}}}}]}}}}}}}})
        """) if foreign else ""
    return textwrap.dedent(f"""
        from meshdsl import Mesh
        mesh = Mesh("{shop}", namespace="{shop}")
        mesh.namespace("{shop}", create=False)
        mesh.service("web", port=80, versions=["v1"])
        """) + raw


def _snapshot(target: KubeTarget, namespaces: list[str]) -> dict[str, str]:
    """Every object outside the mesh's namespace this scenario could touch, with its
    resourceVersion."""
    seen: dict[str, str] = {}
    for item in target.list(GroupKind("", "Namespace"), None):
        seen[f"Namespace/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    for ns in namespaces:
        for group, kind in (("", "Service"), ("", "ConfigMap"), ("apps", "Deployment"),
                            ("", "ServiceAccount")):
            for item in target.list(GroupKind(group, kind), ns):
                meta = item["metadata"]
                seen[f"{kind}/{ns}/{meta['name']}"] = meta["resourceVersion"]
    return seen


@pytest.fixture
def installed(apiserver: LocalApiServer) -> Iterator[tuple[KubeTarget, str, str]]:
    """The install's RBAC for a mesh in ``shop-*`` (applied by the administrator), another
    team's namespace with a Service, kube-dns, and the reconciler's control record."""
    shop, payments = f"shop-{uuid.uuid4().hex[:6]}", f"payments-{uuid.uuid4().hex[:6]}"
    with KubeTarget.from_kubeconfig(str(apiserver.kubeconfig)) as admin:
        for doc in manifests(InstallOptions(repo="https://git.example/mesh.git",
                                            mesh_namespaces=(shop,), mesh=shop)):
            if doc["kind"] not in ("Deployment", "Service"):
                admin.apply(doc, force=True)
        subprocess.run(apiserver.kubectl_argv("create", "namespace", payments), check=True,
                       capture_output=True, timeout=60)  # another team, with kubectl
        admin.apply({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": "ledger", "namespace": payments},
                     "spec": {"ports": [{"port": 80}]}}, force=True)
        admin.apply({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": "kube-dns", "namespace": "kube-system",
                                  "labels": {"k8s-app": "kube-dns"}},
                     "spec": {"ports": [{"port": 53, "protocol": "UDP", "name": "dns"}],
                              "selector": {"k8s-app": "kube-dns"}}}, force=True)
        admin.apply({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "meshdsl-control-default",
                                  "namespace": "meshdsl-system"},
                     "data": {"control.json": "{}"}}, force=True)
        yield admin, shop, payments


def test_the_issue_scenario_is_refused_as_the_installed_service_account(
        apiserver: LocalApiServer, installed: tuple[KubeTarget, str, str],
        tmp_path: Path) -> None:
    admin, shop, payments = installed
    outside = ["kube-system", "meshdsl-system", payments, "default"]
    before = _snapshot(admin, outside)
    v1 = tmp_path / "v1.py"
    v1.write_text(_program(shop, payments, foreign=True))
    base = [*MESHCTL, "apply", str(v1), "--prune", "--kubeconfig", str(apiserver.kubeconfig),
            "--as", SA]

    # 1. the CLI: validation names each foreign object at its line; nothing is sent
    run = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    for code in ("MD601", "MD604"):
        assert code in run.stderr
    assert f"{v1.name}:" in run.stderr and "nothing sent to the cluster" in run.stderr

    spec = load(str(v1)).spec
    desired = compile_mesh(spec)
    with KubeTarget.from_kubeconfig(str(apiserver.kubeconfig), impersonate=SA) as as_sa:
        # 2. the reconciler's fence, without validation (a program from Git is untrusted)
        fence = Policy.of(declaration(spec))
        with pytest.raises(TenancyError) as refused:
            apply(as_sa, desired, mesh=shop, options=Options(prune=True, tenancy=fence))
        text = "\n".join(refused.value.lines)
        assert f"Namespace/{payments} is in namespace {payments!r}, outside" in text
        assert "Service/kube-system/kube-dns is in reserved namespace" in text
        assert "Deployment/kube-system/evil is in reserved namespace" in text
        assert "ConfigMap/meshdsl-system/meshdsl-control-default is named like" in text
        assert as_sa.write_calls == 0

        # 3. ownership, even with a fence wide open: the other team's Namespace is refused
        # naming its owner, before any write
        wide = Policy.of({"namespaces": [shop, payments]})
        theirs = [m for m in desired if m["kind"] != "Deployment" and
                  m["metadata"].get("namespace") in (None, shop, payments)
                  and m["kind"] != "ConfigMap"]
        with pytest.raises(NotOwnedError) as not_ours:
            apply(as_sa, theirs, mesh=shop, options=Options(prune=True, tenancy=wide))
        assert f"Namespace/{payments} exists and was not created by this mesh" in str(
            not_ours.value)
        assert "(owner: field managers kubectl" in str(not_ours.value)
        assert as_sa.write_calls == 0

        # 4. RBAC, with no fence at all and the foreign Deployment adopted: the server
        # refuses the ServiceAccount in kube-system
        deployment = [m for m in desired if m["kind"] == "Deployment"
                      and m["metadata"]["namespace"] == "kube-system"]
        with pytest.raises((Forbidden, RejectedError)):
            apply(as_sa, deployment, mesh=shop, options=Options())
    assert _snapshot(admin, outside) == before

    # the next commit, without the foreign objects, applies as the ServiceAccount
    v2 = tmp_path / "v2.py"
    v2.write_text(_program(shop, payments, foreign=False))
    run = subprocess.run([*MESHCTL, "apply", str(v2), "--prune", "--kubeconfig",
                          str(apiserver.kubeconfig), "--as", SA, "-o", "json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    assert {a["object"] for a in result["actions"]} == {f"DestinationRule/{shop}/web"}
    assert admin.get(ResourceKey(NET, "DestinationRule", shop, "web")) is not None
    after = _snapshot(admin, outside)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    # only the mesh's own inventory record appears outside its namespace
    assert changed == {f"ConfigMap/meshdsl-system/meshdsl-inventory-{shop}"}


def _can(apiserver: LocalApiServer, user: str, *args: str) -> bool:
    run = subprocess.run(apiserver.kubectl_argv("auth", "can-i", *args, "--as", user),
                         capture_output=True, text=True, timeout=60)
    return run.stdout.strip() == "yes"


def test_tenant_impersonation_applies_as_the_tenant_and_nothing_else(
        apiserver: LocalApiServer, tmp_path: Path) -> None:
    """``install --as NS/SA``: the reconciler may only impersonate the tenant, the tenant
    writes the mesh's namespace and its inventory record, never the reconciler's state."""
    shop = f"tenant-{uuid.uuid4().hex[:6]}"
    tenant = f"system:serviceaccount:{shop}:deployer"
    with KubeTarget.from_kubeconfig(str(apiserver.kubeconfig)) as admin:
        for doc in manifests(InstallOptions(repo="r", name=shop, mesh_namespaces=(shop,),
                                            mesh=shop, tenant=f"{shop}/deployer")):
            if doc["kind"] not in ("Deployment", "Service"):
                admin.apply(doc, force=True)
    assert _can(apiserver, SA, "impersonate", "serviceaccount/deployer", "-n", shop)
    assert not _can(apiserver, SA, "impersonate", "serviceaccount/default", "-n", shop)
    assert not _can(apiserver, SA, "create", "deployments", "-n", shop)  # only the tenant
    assert _can(apiserver, tenant, "create", "deployments", "-n", shop)
    assert not _can(apiserver, tenant, "create", "deployments", "-n", "kube-system")
    assert not _can(apiserver, tenant, "delete", "namespaces")
    assert not _can(apiserver, tenant, "patch", "configmaps/meshdsl-control-default", "-n",
                    "meshdsl-system")
    assert _can(apiserver, tenant, "patch", f"configmaps/meshdsl-inventory-{shop}", "-n",
                "meshdsl-system")

    program = tmp_path / "mesh.py"
    program.write_text(_program(shop, "unused", foreign=False))
    run = subprocess.run([*MESHCTL, "apply", str(program), "--prune", "--kubeconfig",
                          str(apiserver.kubeconfig), "--as", tenant],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    with KubeTarget.from_kubeconfig(str(apiserver.kubeconfig)) as admin:
        assert admin.get(ResourceKey(NET, "DestinationRule", shop, "web")) is not None
        assert admin.get(CONFIG_MAP.key("meshdsl-system",
                                        f"meshdsl-inventory-{shop}")) is not None

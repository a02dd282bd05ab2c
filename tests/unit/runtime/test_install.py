"""The in-cluster install manifests: least privilege, probes, deterministic output."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from reconciler.cli import _register, app
from reconciler.runtime.install import InstallOptions, manifests


def _by_kind(docs: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(d["kind"]): d for d in docs}


def _rules(doc: dict[str, object]) -> list[dict[str, object]]:
    rules = doc["rules"]
    assert isinstance(rules, list)
    return rules


def test_rbac_is_generated_from_the_mesh_namespaces() -> None:
    docs = manifests(InstallOptions(repo="https://git.example.com/mesh.git",
                                    mesh_namespaces=("shop", "shop-canary")))
    roles = [d for d in docs if d["kind"] in ("Role", "ClusterRole")]
    where = {(d["kind"], d["metadata"].get("namespace")): d for d in roles}  # type: ignore[union-attr]
    assert set(where) == {("ClusterRole", None), ("Role", "shop"), ("Role", "shop-canary"),
                          ("Role", "meshdsl-system")}
    # cluster-wide: only Namespaces, and never delete; patch only the mesh's own by name
    cluster = _rules(where[("ClusterRole", None)])
    assert {r for rule in cluster for r in rule["resources"]} == {"namespaces"}  # type: ignore[attr-defined]
    assert not any("delete" in rule["verbs"] for rule in cluster)  # type: ignore[operator]
    patch = [r for r in cluster if "patch" in r["verbs"]]  # type: ignore[operator]
    assert patch == [{"apiGroups": [""], "resources": ["namespaces"],
                      "resourceNames": ["shop", "shop-canary"], "verbs": ["patch", "update"]}]
    mesh_resources = {r for rule in _rules(where[("Role", "shop")]) for r in rule["resources"]}  # type: ignore[attr-defined]
    assert mesh_resources == {"services", "serviceaccounts", "deployments", "virtualservices",
                              "destinationrules", "gateways", "envoyfilters",
                              "peerauthentications", "authorizationpolicies", "httproutes",
                              "grpcroutes", "tcproutes", "referencegrants"}
    text = yaml.safe_dump_all(docs)
    for forbidden in ("secrets", "pods", "roles", "clusterroles", "escalate", "bind",
                      "impersonate", "'*'", "istio-system", "kube-system"):
        assert forbidden not in text
    lease_rules = [r for r in _rules(where[("Role", "meshdsl-system")])
                   if r["resources"] == ["leases"]]
    assert {tuple(r["verbs"]) for r in lease_rules} == {("create",), ("get", "update")}  # type: ignore[arg-type]


def test_reserved_namespaces_only_when_listed_and_passed_as_flags() -> None:
    docs = manifests(InstallOptions(repo="r", mesh_namespaces=("shop", "istio-system")))
    assert any(d["kind"] == "Role" and d["metadata"]["namespace"] == "istio-system"  # type: ignore[index]
               for d in docs)
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]  # type: ignore[index]
    assert args[args.index("--allow-namespace") + 1] == "istio-system"
    assert not any(d["kind"] == "Namespace" and d["metadata"]["name"] == "istio-system"  # type: ignore[index]
                   for d in docs)


def test_tenant_impersonation_binds_the_mesh_roles_to_the_tenant() -> None:
    docs = manifests(InstallOptions(repo="r", mesh_namespaces=("shop",), mesh="shop",
                                    tenant="shop/shop-deployer"))
    bindings = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]):  # type: ignore[union-attr,index]
                d["subjects"] for d in docs if str(d["kind"]).endswith("Binding")}
    tenant = [{"kind": "ServiceAccount", "name": "shop-deployer", "namespace": "shop"}]
    reconciler = [{"kind": "ServiceAccount", "name": "meshdsl", "namespace": "meshdsl-system"}]
    assert bindings[("RoleBinding", "shop", "meshdsl-reconciler-default-mesh")] == tenant
    assert bindings[("RoleBinding", "shop", "meshdsl-reconciler-default-impersonate")] == (
        reconciler)
    assert bindings[("RoleBinding", "meshdsl-system", "meshdsl-reconciler-default")] == (
        reconciler)
    impersonate = [d for d in docs if d["metadata"]["name"] ==  # type: ignore[index]
                   "meshdsl-reconciler-default-impersonate" and d["kind"] == "Role"]
    assert _rules(impersonate[0]) == [{"apiGroups": [""], "resources": ["serviceaccounts"],
                                       "resourceNames": ["shop-deployer"],
                                       "verbs": ["impersonate"]}]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]  # type: ignore[index]
    assert "system:serviceaccount:shop:shop-deployer" in args


def test_deployment_probes_and_secret() -> None:
    docs = _by_kind(manifests(InstallOptions(repo="https://git.example.com/mesh.git",
                                             name="prod")))
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "--leader-elect" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MESHDSL_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == (
        "meshdsl-webhook")
    service = docs["Service"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"  # type: ignore[index]


def test_install_print_is_deterministic() -> None:
    _register()
    runner = CliRunner()
    args = ["install", "--repo", "https://git.example.com/mesh.git", "--print"]
    first, second = runner.invoke(app, args), runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.output == second.output
    assert len(list(yaml.safe_load_all(first.output))) == 8  # no mesh namespace: no Role
    refused = runner.invoke(app, ["install", "--repo", "x"])
    assert refused.exit_code == 2

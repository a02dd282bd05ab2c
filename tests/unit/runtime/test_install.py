"""The in-cluster install manifests: least privilege, probes, deterministic output."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from reconciler.cli import _register, app
from reconciler.runtime.install import InstallOptions, manifests


def _by_kind(docs: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(d["kind"]): d for d in docs}


def test_rbac_is_least_privilege() -> None:
    docs = _by_kind(manifests(InstallOptions(repo="https://git.example.com/mesh.git")))
    cluster_rules = docs["ClusterRole"]["rules"]
    assert isinstance(cluster_rules, list)
    resources = {r for rule in cluster_rules for r in rule["resources"]}
    assert resources == {"namespaces", "services", "serviceaccounts", "deployments",
                         "virtualservices", "destinationrules", "gateways", "envoyfilters",
                         "peerauthentications", "authorizationpolicies", "httproutes",
                         "grpcroutes", "tcproutes", "referencegrants"}
    for rule in cluster_rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert "*" not in rule["apiGroups"]
    text = yaml.safe_dump_all(list(docs.values()))
    for forbidden in ("secrets", "pods", "roles", "clusterroles", "escalate", "bind",
                      "impersonate"):
        assert f"- {forbidden}\n" not in text
    role = docs["Role"]
    assert role["metadata"]["namespace"] == "meshdsl-system"  # type: ignore[index]
    lease_rules = [r for r in role["rules"] if r["resources"] == ["leases"]]  # type: ignore[attr-defined]
    assert {tuple(r["verbs"]) for r in lease_rules} == {("create",), ("get", "update")}


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
    assert len(list(yaml.safe_load_all(first.output))) == 8
    refused = runner.invoke(app, ["install", "--repo", "x"])
    assert refused.exit_code == 2

"""The offline CRD check in `meshctl validate`, `render` and `analyze` (real subprocesses)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.unit.cli.test_mesh_cli import meshctl, write

ZERO_TIMEOUT = ("mesh = Mesh('m')\n"
                "api = mesh.namespace('shop').service('api', port=8080, versions=['v1'])\n"
                "api.route(to=api.v1, timeout='0s')\n")


def test_validate_reports_a_cel_rule_at_the_program_line(tmp_path: Path) -> None:
    result = meshctl("validate", str(write(tmp_path, ZERO_TIMEOUT)), "-o", "json")
    assert result.returncode == 1, result.stderr
    [finding] = json.loads(result.stdout)["findings"]
    assert finding["code"] == "MD141" and finding["line"] == 4
    assert finding["path"] == "VirtualService shop/api spec.http[0].timeout"
    assert "must be a valid duration greater than 1ms" in finding["message"]


def test_render_refuses_what_a_cluster_rejects_unless_told(tmp_path: Path) -> None:
    path = write(tmp_path, ZERO_TIMEOUT)
    refused = meshctl("render", str(path))
    assert refused.returncode == 1 and refused.stdout == ""
    assert "mesh.py:4" in refused.stderr and "nothing rendered" in refused.stderr
    skipped = meshctl("render", str(path), "--no-crd-check")
    assert skipped.returncode == 0
    assert "timeout: 0s" in skipped.stdout


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"},
             "scope": "Namespaced", "versions": [{
                 "name": "v1", "served": True, "storage": True,
                 "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                     "spec": {"type": "object", "properties": {
                         "size": {"type": "integer"}},
                         "x-kubernetes-validations": [
                             {"rule": "self.size <= 10", "message": "at most 10"}]}}}}}]}}


def test_crds_from_a_directory_check_raw_objects(tmp_path: Path) -> None:
    crds = tmp_path / "crds"
    crds.mkdir()
    (crds / "widget.yaml").write_text(yaml.safe_dump(WIDGET_CRD))
    path = write(tmp_path, "mesh = Mesh('m')\nmesh.namespace('a')\n"
                           "mesh.raw({'apiVersion': 'example.com/v1', "
                           "'kind': 'Widget', 'metadata': {'name': 'w', 'namespace': 'a'}, "
                           "'spec': {'size': 11}})\n")
    assert meshctl("validate", str(path)).returncode == 0
    result = meshctl("validate", str(path), "--crds", str(crds))
    assert result.returncode == 1
    assert "Widget a/w spec" in result.stderr and "at most 10" in result.stderr


def test_unreadable_crds_exit_2_with_one_line(tmp_path: Path) -> None:
    result = meshctl("validate", str(write(tmp_path, ZERO_TIMEOUT)), "--crds",
                     str(tmp_path / "missing"))
    assert result.returncode == 2
    assert "--crds" in result.stderr and "Traceback" not in result.stderr


ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: shop
spec:
  parentRefs:
  - name: gw
  rules:
  - filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: https
    backendRefs:
    - name: web
      port: 80
"""


def test_analyze_reports_rules_at_the_yaml_line(tmp_path: Path) -> None:
    path = tmp_path / "route.yaml"
    path.write_text(ROUTE)
    result = meshctl("analyze", str(path), "-o", "json")
    assert result.returncode == 1, result.stderr
    rules = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "MD141"]
    assert [(f["line"], f["path"]) for f in rules] == [(10, "HTTPRoute shop/web spec.rules[0]")]
    assert "RequestRedirect filter must not be used together with backendRefs" in \
        rules[0]["message"]

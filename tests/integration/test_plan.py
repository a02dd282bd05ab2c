"""`meshctl plan` on real Git repositories: each revision compiled in the sandbox, compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.cli import _register, app
from reconciler.testing.gitops import BROKEN, GitServer

_register()
runner = CliRunner()

BASE = """from meshdsl import Mesh

mesh = Mesh("shop", namespace="shop")
mesh.namespace("shop")
web = mesh.service("web", versions=["v1", "v2"])
web.route(to={web.v1: 90, web.v2: 10})
"""


def meshctl(repo: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["plan", "--repo", str(repo), *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


@pytest.fixture
def server(tmp_path: Path) -> GitServer:
    server = GitServer(tmp_path / "git")
    server.commit({"mesh.py": BASE}, "base")
    return server


def plan_json(server: GitServer, head_files: dict[str, str], message: str
              ) -> tuple[int, dict]:
    server.commit(head_files, message)
    code, out = meshctl(server.work, "--base", "HEAD~1", "--head", "HEAD", "-o", "json")
    return code, json.loads(out)


def test_no_change_exits_0(server: GitServer) -> None:
    server.commit({"README.md": "docs only\n"}, "docs")
    code, out = meshctl(server.work, "--base", "HEAD~1", "--head", "HEAD")
    assert code == 0, out
    assert "no changes" in out


def test_weights_change_is_a_traffic_shift_and_a_field_diff(server: GitServer) -> None:
    code, data = plan_json(server, {"mesh.py": BASE.replace("90", "50").replace("10}", "50}")},
                           "shift")
    assert code == 1
    (shift,) = data["traffic"]
    assert shift["virtual_service"] == "VirtualService/shop/web"
    assert (shift["route"], shift["before"], shift["after"]) == (
        "http[0]", {"web/v1": 90, "web/v2": 10}, {"web/v1": 50, "web/v2": 50})
    (changed,) = data["objects"]
    assert changed["change"] == "changed" and changed["kind"] == "VirtualService"
    paths = {f["path"]: (f["before"], f["after"]) for f in changed["fields"]}
    assert paths == {".spec.http[0].route[0].weight": (90, 50),
                     ".spec.http[0].route[1].weight": (10, 50)}


def test_version_added_adds_a_subset(server: GitServer) -> None:
    head = BASE.replace('versions=["v1", "v2"]', 'versions=["v1", "v2", "v3"]')
    code, data = plan_json(server, {"mesh.py": head}, "v3")
    assert code == 1
    (changed,) = data["objects"]
    assert changed["kind"] == "DestinationRule"
    (field,) = changed["fields"]
    assert field["path"] == ".spec.subsets" or field["path"].startswith(".spec.subsets")
    assert {"labels": {"version": "v3"}, "name": "v3"} in field["after"]
    assert data["traffic"] == [] and data["canaries"] == []


def test_canary_started_then_restarted_by_a_new_target(server: GitServer) -> None:
    head = BASE.replace('["v1", "v2"]', '["v1", "v2", "v3"]') + (
        'web.canary(target="v2", stable="v1", steps=[10, 50, 100])\n')
    code, data = plan_json(server, {"mesh.py": head}, "canary")
    assert code == 1
    (canary,) = data["canaries"]
    assert canary["effect"] == "start" and canary["target"] == "v2"
    assert canary["steps"] == [10, 50, 100] and "100% v1" in canary["reason"]

    code, data = plan_json(server, {"mesh.py": head.replace('target="v2"', 'target="v3"')},
                           "retarget")
    assert code == 1
    (canary,) = data["canaries"]
    assert canary["effect"] == "restart" and "new target v3" in canary["reason"]


def test_raw_object_removed(server: GitServer) -> None:
    raw = BASE + ('mesh.raw({"apiVersion": "v1", "kind": "ConfigMap", '
                  '"metadata": {"name": "extra", "namespace": "shop"}, '
                  '"data": {"a": "b"}})\n')
    server.commit({"mesh.py": raw}, "raw")
    code, data = plan_json(server, {"mesh.py": BASE}, "drop raw")
    assert code == 1
    assert [(o["change"], o["kind"], o["name"]) for o in data["objects"]] == [
        ("removed", "ConfigMap", "extra")]


def test_markdown_is_a_pr_comment(server: GitServer) -> None:
    server.commit({"mesh.py": BASE.replace("90", "80").replace("10}", "20}")}, "shift")
    code, out = meshctl(server.work, "--base", "HEAD~1", "--head", "HEAD", "-o", "markdown")
    assert code == 1
    assert "#### Traffic" in out and "| `shop/web` http[0] |" in out
    assert "`web/v1` 90%<br>`web/v2` 10%" in out and "`web/v1` 80%<br>`web/v2` 20%" in out
    assert "- .spec.http[0].route[0].weight: 90" in out
    assert "+ .spec.http[0].route[0].weight: 80" in out


def test_invalid_head_exits_2_with_the_finding(server: GitServer) -> None:
    _kind, line, program = BROKEN["validation error"]
    server.commit({"mesh.py": program}, "broken")
    code, out = meshctl(server.work, "--base", "HEAD~1", "--head", "HEAD")
    assert code == 2, out
    assert f"mesh.py:{line}" in out and "MD103" in out
    assert "Traceback" not in out


def test_unknown_revision_exits_2(server: GitServer) -> None:
    code, out = meshctl(server.work, "--base", "HEAD", "--head", "no-such-branch")
    assert code == 2
    assert "'no-such-branch' is not a commit" in out

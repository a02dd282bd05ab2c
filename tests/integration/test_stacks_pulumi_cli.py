"""``pulumi preview`` of the real bookinfo project through the Automation API, against the
local kube-apiserver. Needs the Pulumi CLI and its kubernetes plugin, which are downloaded
from the internet: skipped (with the reason) where they are not installed."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.testing.apiserver import LocalApiServer
from stacks.testing import stack_config
from tests.unit.stacks.projects import BOOKINFO_PROJECT, stack_file

PULUMI = shutil.which("pulumi")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(PULUMI is None, reason=(
        "the Pulumi CLI is not on PATH; it is downloaded from get.pulumi.com (with its "
        "kubernetes plugin from GitHub), which this machine cannot reach. Install it "
        "(curl -fsSL https://get.pulumi.com | sh) to run `pulumi preview` of stacks/bookinfo "
        "through the Automation API")),
]


def kubernetes_plugin_installed() -> bool:
    listing = subprocess.run([str(PULUMI), "plugin", "ls", "--json"], capture_output=True,
                             text=True, timeout=60, check=False)
    try:
        plugins = json.loads(listing.stdout or "[]")
    except ValueError:
        return False
    return any(p.get("name") == "kubernetes" and p.get("kind") == "resource"
               for p in plugins or [])


@pytest.fixture
def preview_stack(tmp_path: Path, apiserver: LocalApiServer) -> Iterator[Any]:
    """A throwaway stack of the real project (its Pulumi.yaml and __main__.py) on a local
    file backend, with the dev stack's settings, bookinfo in a fresh namespace and the local
    API server as its cluster. Its ``Pulumi.test-*.yaml`` is removed afterwards."""
    if not kubernetes_plugin_installed():
        pytest.skip("the Pulumi kubernetes resource plugin is not installed (pulumi plugin "
                    "install resource kubernetes); it is downloaded from GitHub")
    from pulumi import automation as auto

    name = f"test-{uuid.uuid4().hex[:8]}"
    workspace = auto.LocalWorkspace(work_dir=str(BOOKINFO_PROJECT), env_vars={
        "PULUMI_BACKEND_URL": f"file://{tmp_path}",
        "PULUMI_CONFIG_PASSPHRASE": "",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    })
    stack = auto.Stack.create(name, workspace)
    try:
        config = {key: auto.ConfigValue(value=value)
                  for key, value in stack_config(stack_file("dev")).items()}
        config["meshdsl:namespaces"] = auto.ConfigValue(
            value=json.dumps({"bookinfo": f"bookinfo-{name}"}))
        config["kubernetes:kubeconfig"] = auto.ConfigValue(value=str(apiserver.kubeconfig))
        # Server-side apply of Services fails on a 1.20 server without `protocol` on their
        # ports (see test_stacks_dryrun.py); client-side apply previews them fine.
        config["kubernetes:enableServerSideApply"] = auto.ConfigValue(value="false")
        stack.set_all_config(config)
        yield stack
    finally:
        workspace.remove_stack(name, force=True)
        (BOOKINFO_PROJECT / f"Pulumi.{name}.yaml").unlink(missing_ok=True)


def test_preview_creates_every_object(preview_stack: Any) -> None:
    result = preview_stack.preview()
    creates = result.change_summary.get("create", 0)
    assert creates >= 22 + 1  # every compiled object and the MeshStack component
    assert "canary is off for this stack" in result.stdout


def test_preview_stops_at_a_wrong_key_with_its_message(preview_stack: Any) -> None:
    from pulumi import automation as auto

    preview_stack.set_config("meshdsl:replica", auto.ConfigValue(value="2"))
    with pytest.raises(auto.CommandError) as excinfo:
        preview_stack.preview()
    assert "meshdsl:replica is not a meshdsl setting (did you mean meshdsl:replicas?" in str(
        excinfo.value)

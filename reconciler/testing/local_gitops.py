"""A webhook-driven reconciler on the local Envoy mesh, for tests and benchmarks.

Git push → the bare repository's ``post-receive`` hook → the signed webhook → the
in-process :class:`~reconciler.runtime.loop.Reconciler` → :class:`LocalMesh`. In-process so
the caller can reach the mesh's addresses; polling and drift checks are off, so only pushes
reconcile.

    with LocalGitOps(tmp_path, name="local") as rig:
        sha = rig.git.push({"mesh.py": local_program("shop", "v1")}, "all to v1")
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Self

from reconciler.demo.apps import DEMO_APP
from reconciler.processes.lifecycle import Component
from reconciler.runtime.deploy import LocalDeployer
from reconciler.runtime.loop import Reconciler, Settings
from reconciler.runtime.sandbox import Limits, Sandbox
from reconciler.runtime.status import DiskStore
from reconciler.sources.git import GitSource
from reconciler.sources.webhook import WebhookServer
from reconciler.targets.envoy import LocalMesh
from reconciler.testing.gitops import GitServer

__all__ = ["LocalGitOps", "local_program"]

_SECRET = b"local-gitops-secret"


def local_program(mesh: str, version: str) -> str:
    """A client sidecar and a two-version ``reviews`` served by the demo app; all traffic
    to ``version``."""
    command = [sys.executable, str(DEMO_APP), "--name", "{service}", "--version",
               "{version}", "--port", "{port}"]
    return (
        "from meshdsl import Mesh\n\n"
        f"mesh = Mesh({mesh!r}, namespace='shop')\n"
        "mesh.service('client', port=8080).deploy('v1', image='none')\n"
        "reviews = mesh.service('reviews', port=9080, versions=['v1', 'v2'])\n"
        f"reviews.run_locally(command={command!r})\n"
        f"reviews.route(to=reviews.{version})\n")


class LocalGitOps(Component):
    """The local mesh, its disk store, a webhook server, a Git server whose hook calls it,
    and the reconciler between them, under ``root`` (``mesh``, ``state``, ``git``,
    ``cache``)."""

    def __init__(self, root: Path, *, name: str, program_timeout: float = 10.0) -> None:
        self.root, self.name = Path(root), name
        self._server: WebhookServer | None = None
        self._git: GitServer | None = None
        self._reconciler: Reconciler | None = None
        self.local = LocalMesh(workdir=self.root / "mesh")
        self.store = DiskStore(self.root / "state")
        self.sandbox = Sandbox(Limits(timeout=program_timeout))

    @property
    def git(self) -> GitServer:
        if self._git is None:
            raise RuntimeError("the local GitOps rig is not started")
        return self._git

    def start(self) -> Self:
        with self.stopping_on_error():
            server = self._server = WebhookServer(
                secret=_SECRET, on_push=lambda event: self._running().on_push(event)).start()
            self._git = GitServer(self.root / "git", webhook_url=f"{server.url}/webhook",
                                  secret=_SECRET)
            self._reconciler = Reconciler(
                Settings(name=self.name, poll_interval=None, drift_interval=None),
                source=GitSource(str(self._git.origin), cache_dir=self.root / "cache"),
                deployer=LocalDeployer(self.local), store=self.store, sandbox=self.sandbox)
            self.sandbox.prepare()
            self._reconciler.start()
        return self

    def _running(self) -> Reconciler:
        if self._reconciler is None:
            raise RuntimeError("a push arrived before the reconciler was built")
        return self._reconciler

    def applied(self, revision: str) -> bool:
        """Whether the status records ``revision`` as applied."""
        status = self.store.load_status()
        return status is not None and status.applied_revision == revision

    def stop(self) -> None:
        reconciler, self._reconciler = self._reconciler, None
        server, self._server = self._server, None
        if reconciler is not None:
            reconciler.stop()
        if server is not None:
            server.stop()
        self.sandbox.close()
        self.local.stop()

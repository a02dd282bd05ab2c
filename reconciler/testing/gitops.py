"""A real Git "server" for GitOps tests and benchmarks: a bare repository whose
``post-receive`` hook is ``scripts/post-receive``, and a work clone that commits and pushes.

    server = GitServer(tmp_path, webhook_url=f"{url}/webhook", secret=b"s3cret")
    sha = server.push({"mesh.py": mesh_program("shop", "shop", weights=(90, 10))}, "canary")

``push`` returns when ``git push`` returns — after the hook has notified the reconciler,
as on a real Git server. ``mesh_program`` writes small, valid (or deliberately broken)
mesh programs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from reconciler.testing.components import repo_root

__all__ = ["BROKEN", "GitServer", "hook_script", "mesh_program"]

_ENV = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}


def hook_script() -> Path:
    return repo_root() / "scripts" / "post-receive"


def _git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHDSL_WEBHOOK")}
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=60, env={**env, **_ENV}, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip() + result.stderr.strip()


class GitServer:
    """``origin`` (bare, hook installed when ``webhook_url`` is given) and ``work``."""

    def __init__(self, root: Path, *, webhook_url: str | None = None,
                 secret: bytes | None = None, branch: str = "main") -> None:
        self.root, self.branch = Path(root), branch
        self.origin, self.work = self.root / "origin.git", self.root / "work"
        self.root.mkdir(parents=True, exist_ok=True)
        _git(self.root, "init", "-q", "--bare", "-b", branch, str(self.origin))
        _git(self.root, "init", "-q", "-b", branch, str(self.work))
        _git(self.work, "remote", "add", "origin", str(self.origin))
        self.last_push_output = ""
        if webhook_url is not None:
            hook = self.origin / "hooks" / "post-receive"
            shutil.copy(hook_script(), hook)
            hook.chmod(0o755)
            self.configure(webhook_url, secret)

    def configure(self, webhook_url: str, secret: bytes | None) -> None:
        _git(self.origin, "config", "meshdsl.webhookUrl", webhook_url)
        _git(self.origin, "config", "meshdsl.webhookTimeout", "5")
        if secret is not None:
            _git(self.origin, "config", "meshdsl.webhookSecret", secret.decode())

    def commit(self, files: dict[str, str], message: str) -> str:
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        _git(self.work, "add", "-A")
        _git(self.work, "commit", "-q", "--allow-empty", "-m", message)
        return _git(self.work, "rev-parse", "HEAD")

    def push(self, files: dict[str, str], message: str) -> str:
        """Commit and ``git push``; returns the new commit id once the push returned."""
        sha = self.commit(files, message)
        self.last_push_output = _git(self.work, "push", "-q", "origin",
                                     f"HEAD:{self.branch}")
        return sha


def mesh_program(mesh: str, namespace: str, *, weights: tuple[int, int] = (90, 10),
                 services: int = 1) -> str:
    """A valid program: a namespace and ``services`` services ``web``, ``web-1``…, each
    with v1/v2 and a ``weights`` split."""
    lines = ["from meshdsl import Mesh", "",
             f"mesh = Mesh({mesh!r}, namespace={namespace!r})",
             f"mesh.namespace({namespace!r})"]
    for i in range(services):
        name = "web" if i == 0 else f"web-{i}"
        var = f"s{i}"
        lines += [f"{var} = mesh.service({name!r}, versions=['v1', 'v2'])",
                  f"{var}.route(to={{{var}.v1: {weights[0]}, {var}.v2: {weights[1]}}})"]
    return "\n".join(lines) + "\n"


# Broken programs: (kind the reconciler reports, the line it names, the program).
BROKEN: dict[str, tuple[str, int, str]] = {
    "syntax error": ("syntax", 3, "from meshdsl import Mesh\n\nmesh = Mesh('x'\n"),
    "exception": ("exception", 4, "from meshdsl import Mesh\n\n"
                  "def build():\n    raise RuntimeError('no mesh today')\n\nmesh = build()\n"),
    "infinite loop": ("timeout", 3, "from meshdsl import Mesh\n\nwhile True:\n"
                      "    pass\n"),
    "validation error": ("validation", 5, "from meshdsl import Mesh\n\nmesh = Mesh('x')\n"
                         "web = mesh.service('web', versions=['v1'])\n"
                         "web.route(to={web.v1: 50})\n"),
}

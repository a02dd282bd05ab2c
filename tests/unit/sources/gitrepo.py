"""A tiny real Git setup for tests: a bare "server" repository and a work clone."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_ENV = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=60, env={**os.environ, **GIT_ENV, **(env or {})},
                            check=False)
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


class Repo:
    """``origin`` (bare) and ``work`` (a clone that commits and pushes)."""

    def __init__(self, root: Path) -> None:
        self.origin, self.work = root / "origin.git", root / "work"
        git(root, "init", "-q", "--bare", "-b", "main", str(self.origin))
        git(root, "init", "-q", "-b", "main", str(self.work))
        git(self.work, "remote", "add", "origin", str(self.origin))
        git(self.work, "config", "commit.gpgsign", "false")

    def commit(self, files: dict[str, str], message: str, *, push: bool = True,
               sign: bool = False) -> str:
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", *(["-S"] if sign else []), "-m", message)
        sha = git(self.work, "rev-parse", "HEAD")
        if push:
            git(self.work, "push", "-q", "origin", "HEAD:main")
        return sha

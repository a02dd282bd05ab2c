"""A local directory as a source: the inner dev loop, without commits.

Each ``latest()`` copies the directory's files into a snapshot while hashing them, so the
revision id (``dir-<sha256 prefix>``) names exactly the bytes the program will run from —
an editor saving half-way through cannot make the two disagree. Version-control and cache
directories are skipped, and the size is bounded: a mesh program is small, so a huge tree
is almost certainly the wrong directory.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import tempfile
from pathlib import Path

from reconciler.ports import Revision, SourceError
from reconciler.sources.git import VerificationError, make_read_only, remove_tree

__all__ = ["IGNORED_DIRS", "DirectorySource"]

IGNORED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "node_modules",
                          ".mypy_cache", ".ruff_cache", ".pytest_cache", ".idea", ".vscode"})
MAX_FILES = 5000
MAX_BYTES = 64 * 2**20


class DirectorySource:
    """Snapshots of ``path`` under ``cache_dir/snapshots``, keeping the ``keep`` newest."""

    def __init__(self, path: Path, *, cache_dir: Path, keep: int = 3) -> None:
        self.path = Path(path).resolve()
        self.cache_dir = Path(cache_dir).expanduser().resolve()  # git runs in other dirs
        self.keep = keep
        self._snapshots = self.cache_dir / "snapshots"

    def describe(self) -> str:
        return f"directory {self.path}"

    @property
    def ref(self) -> str:
        """A directory has no refs: every push-style trigger concerns it."""
        return ""

    def between(self, since: str, until: str, *, limit: int = 20) -> list[Revision]:
        """No history between snapshots: nothing is ever passed over."""
        return []

    def ensure(self, revision: str) -> Revision:
        """A snapshot is known by its id only (no commit metadata)."""
        return Revision(id=revision)

    signed = False

    def verify(self, revision: str, *, allowed_signers: Path) -> str:
        """A snapshot has no signature to check."""
        raise VerificationError(f"{revision[:16]} is a directory snapshot: it carries no "
                                "signature; commit verification needs a Git source")

    def _files(self) -> list[Path]:
        if not self.path.is_dir():
            raise SourceError(f"{self.path} is not a directory")
        found: list[Path] = []
        for root, dirs, files in os.walk(self.path):
            dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS and not d.startswith("."))
            for name in sorted(files):
                if name.startswith(".") or name.endswith((".pyc", "~", ".swp")):
                    continue
                found.append(Path(root) / name)
                if len(found) > MAX_FILES:
                    raise SourceError(f"{self.path} holds more than {MAX_FILES} files; point "
                                      "--dir at the directory of the mesh program")
        return found

    def latest(self) -> Revision:
        self._snapshots.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".snap-", dir=self._snapshots))
        digest, total = hashlib.sha256(), 0
        try:
            for path in self._files():
                rel = path.relative_to(self.path)
                try:
                    data = path.read_bytes()
                except FileNotFoundError:   # deleted while we walked: not part of it
                    continue
                except OSError as exc:
                    raise SourceError(f"cannot read {path}: {exc}") from exc
                total += len(data)
                if total > MAX_BYTES:
                    raise SourceError(f"{self.path} holds more than {MAX_BYTES >> 20} MiB")
                digest.update(str(rel).encode() + b"\0" + len(data).to_bytes(8, "big") + data)
                out = tmp / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
            revision = f"dir-{digest.hexdigest()[:16]}"
            dest = self._snapshots / revision
            if dest.is_dir():
                remove_tree(tmp)
                os.utime(dest)
            else:
                make_read_only(tmp)
                os.rename(tmp, dest)
        except BaseException:
            remove_tree(tmp)
            raise
        self._prune(revision)
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        return Revision(id=revision, ref=str(self.path), summary="local directory snapshot",
                        committed_at=now)

    def checkout(self, revision: str) -> Path:
        dest = self._snapshots / revision
        if not dest.is_dir():
            raise SourceError(f"snapshot {revision} of {self.path} is no longer kept; the "
                              "directory source keeps only the latest few")
        return dest

    def _prune(self, current: str) -> None:
        entries = sorted((p for p in self._snapshots.iterdir()
                          if p.is_dir() and not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for path in entries[self.keep:]:
            if path.name != current:
                remove_tree(path)

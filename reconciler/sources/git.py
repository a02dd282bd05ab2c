"""A Git repository as a source of revisions, through gitpython.

The repository is cloned once, bare, into a cache directory; every ``latest()`` is a
shallow ``git fetch`` of the one tracked ref (a branch or a tag), and every ``checkout()``
writes exactly one commit's files into its own directory, read through gitpython's
persistent ``git cat-file`` (a push costs one ``git fetch`` process, nothing more). A checkout has
no ``.git`` and is made read-only, so the user's program cannot change the cache or a
later run's files, and two revisions never share a working tree. Old checkouts are
removed, keeping the few most recent.

``git`` never prompts (``GIT_TERMINAL_PROMPT=0``) and every command has a timeout, so a
dead remote is an error, not a hang. Errors are :class:`~reconciler.ports.SourceError`
with the URL stripped of any credentials.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import git

from reconciler.ports import Revision, SourceError
from reconciler.processes.lifecycle import Closeable

__all__ = ["GitSource", "VerificationError", "make_read_only", "redact", "remove_tree"]

_SHA = re.compile(r"^[0-9a-f]{40}$")
_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/true", "SSH_ASKPASS": "/bin/true",
        "LC_ALL": "C"}


class VerificationError(SourceError):
    """The commit's signature is missing or not made by an allowed signer."""

    transient = False   # a bad signature stays bad


def redact(url: str) -> str:
    """``url`` without a password or token (``https://user:tok@host`` → ``https://host``)."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


def _remote(url: str) -> str:
    """A local path as a ``file://`` URL: only then does git honour ``--depth``."""
    if "://" in url or re.match(r"^[\w.-]+@[\w.-]+:", url):
        return url
    return Path(url).expanduser().resolve().as_uri()


def _make_writable(path: Path) -> None:
    for root, dirs, _ in os.walk(path):
        os.chmod(root, 0o755)
        for d in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, d), 0o755)


def make_read_only(path: Path) -> None:
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                mode = os.stat(full).st_mode
                os.chmod(full, mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        for name in dirs:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                os.chmod(full, 0o555)
    os.chmod(path, 0o555)


_MAX_FILES = 20000


def _write_tree(tree: git.Tree, dest: Path) -> None:
    """Write a commit's files under ``dest`` from the object database (one persistent
    ``git cat-file`` process, no archive). Paths are checked to stay inside ``dest``;
    symlinks pointing outside it and submodules are left out."""
    root = dest.resolve()
    count = 0
    for item in tree.traverse():
        if not isinstance(item, git.Blob):
            continue            # trees are created on demand; submodules are skipped
        count += 1
        if count > _MAX_FILES:
            raise SourceError(f"the commit has more than {_MAX_FILES} files; is this the "
                              "mesh repository?")
        path = (dest / item.path)
        if ".." in Path(item.path).parts or not str(path.resolve()).startswith(
                str(root) + os.sep):
            raise SourceError(f"refusing the path {item.path!r}: outside the checkout")
        path.parent.mkdir(parents=True, exist_ok=True)
        data = item.data_stream.read()
        if item.mode == 0o120000:   # a symlink: kept only when it stays inside
            target = data.decode(errors="replace")
            if not os.path.isabs(target) and str((path.parent / target).resolve()
                                                 ).startswith(str(root) + os.sep):
                os.symlink(target, path)
            continue
        path.write_bytes(data)
        if item.mode & 0o111:
            path.chmod(0o755)


def remove_tree(path: Path) -> None:
    """Delete a (read-only) checkout."""
    if path.exists():
        _make_writable(path)
        shutil.rmtree(path, ignore_errors=True)


class GitSource(Closeable):
    """Track one branch (or tag) of a Git repository.

    ``url`` is anything ``git fetch`` accepts (a local path works too). ``cache_dir`` holds
    the bare clone (``repo.git``) and the checkouts (``checkouts/<sha>``).
    """

    def __init__(self, url: str, *, branch: str | None = "main", tag: str | None = None,
                 cache_dir: Path, shallow: bool = True, keep: int = 5,
                 timeout: float = 60.0) -> None:
        if (branch is None) == (tag is None):
            raise ValueError("track exactly one of a branch or a tag")
        self.url = url
        self.ref = f"refs/tags/{tag}" if tag else f"refs/heads/{branch}"
        self.shallow, self.keep, self.timeout = shallow, keep, timeout
        self.cache_dir = Path(cache_dir).expanduser().resolve()  # git runs in other dirs
        self._checkouts = self.cache_dir / "checkouts"
        self._repo: git.Repo | None = None

    signed = True   # commits carry signatures that verify() checks

    def describe(self) -> str:
        return f"{redact(self.url)} {self.ref}"

    # -- the cache ------------------------------------------------------------------------

    @property
    def repo(self) -> git.Repo:
        """The bare clone, created on first use."""
        if self._repo is None:
            path = self.cache_dir / "repo.git"
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                repo = git.Repo(path) if (path / "HEAD").exists() else git.Repo.init(
                    path, bare=True)
            except git.GitError as exc:
                raise SourceError(f"cannot open the Git cache at {path}: {exc}") from exc
            repo.git.update_environment(**_ENV)
            self._repo = repo
        return self._repo

    def _git(self, *args: str, what: str) -> str:
        try:
            out: str = self.repo.git.execute(
                ["git", *args], kill_after_timeout=self.timeout, with_extended_output=False,
                env=_ENV)
            return out
        except git.GitCommandError as exc:
            detail = (exc.stderr or exc.stdout or str(exc)).strip()
            detail = detail.replace(self.url, redact(self.url))
            detail = re.sub(r"\s+", " ", detail.removeprefix("stderr: ").strip("'"))[:400]
            raise SourceError(f"{what} failed ({redact(self.url)}): {detail}") from exc

    def _fetch(self, refspec: str, *, what: str) -> None:
        depth = ["--depth=1"] if self.shallow else []
        self._git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", *depth,
                  _remote(self.url), refspec, what=what)

    # -- the Source port --------------------------------------------------------------------

    def latest(self) -> Revision:
        """Fetch the tracked ref and return the commit it points to."""
        local = f"refs/meshdsl/{self.ref.removeprefix('refs/')}"
        self._fetch(f"+{self.ref}:{local}", what=f"git fetch {self.ref}")
        return self._describe(local)

    def between(self, since: str, until: str, *, limit: int = 20) -> list[Revision]:
        """The commits after ``since`` up to (not including) ``until`` on the first-parent
        line, newest first — those a burst of pushes passed over. Empty when ``since`` is
        not among ``until``'s ``limit`` nearest first-parent ancestors (a force push, a
        rollback). A shallow cache is deepened once, by ``limit``, when needed."""
        if not since or since == until or not _SHA.match(since):
            return []
        found: list[Revision] = []
        sha, deepened = until, False
        for _ in range(limit + 1):
            parents = self._commit(sha).parents
            if not parents:
                return []
            sha = parents[0].hexsha
            if sha == since:
                return found
            if not self.has(sha):
                if deepened:
                    return []
                local = f"refs/meshdsl/{self.ref.removeprefix('refs/')}"
                self._git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                          f"--deepen={limit}", _remote(self.url), f"+{self.ref}:{local}",
                          what="git fetch --deepen")
                deepened = True
                if not self.has(sha):
                    return []
            found.append(self._describe(sha))
        return []

    def _commit(self, rev: str) -> git.Commit:
        """A commit read through gitpython's persistent ``git cat-file`` (no process per
        call)."""
        try:
            commit = self.repo.commit(rev)
        except (git.BadName, ValueError, git.GitError) as exc:
            raise SourceError(f"{rev} is not a commit in {redact(self.url)}: {exc}") from exc
        return commit

    def _describe(self, rev: str) -> Revision:
        commit = self._commit(rev)
        stamp = datetime.datetime.fromtimestamp(commit.committed_date, datetime.UTC)
        message = commit.message if isinstance(commit.message, str) else (
            commit.message.decode(errors="replace"))
        return Revision(id=commit.hexsha, ref=self.ref,
                        summary=message.split("\n", 1)[0].strip(),
                        author=f"{commit.author.name} <{commit.author.email}>",
                        committed_at=stamp.isoformat(timespec="seconds"))

    def has(self, sha: str) -> bool:
        try:
            self._git("cat-file", "-e", f"{sha}^{{commit}}", what="cat-file")
        except SourceError:
            return False
        return True

    def ensure(self, revision: str) -> Revision:
        """Make sure the commit is in the cache (fetching it by id if needed)."""
        if not _SHA.match(revision):
            raise SourceError(f"{revision!r} is not a full commit id")
        if not self.has(revision):
            self._fetch(revision, what=f"git fetch {revision[:12]}")
        return self._describe(revision)

    def checkout(self, revision: str) -> Path:
        """A read-only directory holding exactly the files of commit ``revision``."""
        self.ensure(revision)
        dest = self._checkouts / revision
        if dest.is_dir():
            os.utime(dest)
            return dest
        self._checkouts.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=self._checkouts))
        try:
            try:
                _write_tree(self._commit(revision).tree, tmp)
            except (git.GitError, ValueError) as exc:
                raise SourceError(f"checking out {revision[:12]} failed: {exc}") from exc
            make_read_only(tmp)
            os.rename(tmp, dest)
        except BaseException:
            remove_tree(tmp)
            raise
        self._prune(keep={revision})
        return dest

    def _prune(self, keep: set[str]) -> None:
        entries = sorted((p for p in self._checkouts.iterdir() if p.is_dir()
                          and not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for path in entries[self.keep:]:
            if path.name not in keep:
                remove_tree(path)

    # -- verification -----------------------------------------------------------------------

    def verify(self, revision: str, *, allowed_signers: Path) -> str:
        """Check the commit signature with ``git verify-commit`` against an SSH
        allowed-signers file; returns git's description of the good signature.

        (A GnuPG-signed commit is checked against the keyring in ``$GNUPGHOME``.)
        """
        if not allowed_signers.is_file():
            raise VerificationError(f"allowed signers file {allowed_signers} does not exist")
        try:
            result: tuple[int, str, str] = self.repo.git.execute(
                ["git", "-c", f"gpg.ssh.allowedSignersFile={allowed_signers}",
                 "verify-commit", "--raw", revision],
                kill_after_timeout=self.timeout, with_extended_output=True,
                with_exceptions=False, env=_ENV)
        except git.GitError as exc:
            raise VerificationError(f"cannot verify {revision[:12]}: {exc}") from exc
        status, out, err = result
        text = (err or out or "").strip()
        if status != 0:
            reason = "it is not signed" if not text or "no signature" in text.lower() else (
                re.sub(r"\s+", " ", text)[:300])
            raise VerificationError(f"commit {revision[:12]} failed signature verification: "
                                    f"{reason}; only commits signed by a key in "
                                    f"{allowed_signers} are applied")
        return re.sub(r"\s+", " ", text)[:300]

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None

"""GitSource against real repositories: fetch, exact checkouts, tags, verification."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from reconciler.ports import SourceError
from reconciler.sources.git import GitSource, VerificationError, redact
from tests.unit.sources.gitrepo import Repo, git


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path)


def test_latest_and_checkout_are_exact_and_clean(repo: Repo, tmp_path: Path) -> None:
    first = repo.commit({"mesh.py": "one\n", "lib/helper.py": "x = 1\n"}, "first")
    source = GitSource(str(repo.origin), cache_dir=tmp_path / "cache")
    rev = source.latest()
    assert (rev.id, rev.summary, rev.ref) == (first, "first", "refs/heads/main")
    assert rev.author == "Dev <dev@example.com>"

    second = repo.commit({"mesh.py": "two\n"}, "second")
    assert source.latest().id == second
    new, old = source.checkout(second), source.checkout(first)
    assert (new / "mesh.py").read_text() == "two\n"
    assert (old / "mesh.py").read_text() == "one\n"
    assert not (new / ".git").exists()
    # read-only (the mode bits; root would still be allowed to write)
    assert (new / "mesh.py").stat().st_mode & 0o222 == 0
    assert new.stat().st_mode & 0o222 == 0
    # the cache is shallow: only the fetched commits are there
    assert (tmp_path / "cache" / "repo.git" / "shallow").exists()


def test_an_old_revision_is_fetched_by_id(repo: Repo, tmp_path: Path) -> None:
    first = repo.commit({"mesh.py": "one\n"}, "first")
    repo.commit({"mesh.py": "two\n"}, "second")
    source = GitSource(str(repo.origin), cache_dir=tmp_path / "cache")
    source.latest()
    assert not source.has(first)
    assert (source.checkout(first) / "mesh.py").read_text() == "one\n"


def test_tag_tracking(repo: Repo, tmp_path: Path) -> None:
    tagged = repo.commit({"mesh.py": "v1\n"}, "release")
    git(repo.work, "tag", "v1")
    git(repo.work, "push", "-q", "origin", "v1")
    repo.commit({"mesh.py": "later\n"}, "later")
    source = GitSource(str(repo.origin), branch=None, tag="v1", cache_dir=tmp_path / "cache")
    assert source.latest().id == tagged


def test_old_checkouts_are_pruned(repo: Repo, tmp_path: Path) -> None:
    source = GitSource(str(repo.origin), cache_dir=tmp_path / "cache", keep=2)
    shas = [repo.commit({"mesh.py": f"{i}\n"}, f"c{i}") for i in range(4)]
    for sha in shas:
        source.latest()
        source.checkout(sha)
    kept = sorted(p.name for p in (tmp_path / "cache" / "checkouts").iterdir())
    assert kept == sorted(shas[-2:])


def test_errors_are_one_line_without_credentials(tmp_path: Path) -> None:
    source = GitSource("https://user:tok3n@127.0.0.1:1/mesh.git", cache_dir=tmp_path / "c",
                       timeout=10)
    with pytest.raises(SourceError) as info:
        source.latest()
    assert "tok3n" not in str(info.value)
    assert "127.0.0.1:1" in str(info.value)
    missing = GitSource(str(tmp_path / "missing.git"), cache_dir=tmp_path / "c2")
    with pytest.raises(SourceError, match="does not appear to be a git repository"):
        missing.latest()


def test_missing_branch_is_an_error(repo: Repo, tmp_path: Path) -> None:
    repo.commit({"mesh.py": "x\n"}, "first")
    source = GitSource(str(repo.origin), branch="release", cache_dir=tmp_path / "cache")
    with pytest.raises(SourceError, match="refs/heads/release"):
        source.latest()


def test_redact() -> None:
    assert redact("https://user:pw@github.com/a/b.git") == "https://github.com/a/b.git"
    assert redact("git@github.com:a/b.git") == "git@github.com:a/b.git"
    assert redact("/srv/git/mesh.git") == "/srv/git/mesh.git"


def _ssh_key(tmp_path: Path, name: str) -> tuple[Path, str]:
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
                   check=True, timeout=30)
    return key, (tmp_path / f"{name}.pub").read_text().strip()


def test_commit_signatures_are_verified(repo: Repo, tmp_path: Path) -> None:
    trusted, trusted_pub = _ssh_key(tmp_path, "trusted")
    other, _ = _ssh_key(tmp_path, "other")
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"dev@example.com {trusted_pub}\n")
    git(repo.work, "config", "gpg.format", "ssh")

    git(repo.work, "config", "user.signingkey", str(trusted))
    good = repo.commit({"mesh.py": "signed\n"}, "signed", sign=True)
    git(repo.work, "config", "user.signingkey", str(other))
    forged = repo.commit({"mesh.py": "other key\n"}, "other key", sign=True)
    unsigned = repo.commit({"mesh.py": "unsigned\n"}, "unsigned")

    source = GitSource(str(repo.origin), cache_dir=tmp_path / "cache")
    for sha in (good, forged, unsigned):
        source.ensure(sha)
    assert "Good" in source.verify(good, allowed_signers=signers)
    with pytest.raises(VerificationError, match="failed signature verification"):
        source.verify(forged, allowed_signers=signers)
    with pytest.raises(VerificationError, match="not signed"):
        source.verify(unsigned, allowed_signers=signers)
    assert os.path.exists(signers)


def test_checkout_keeps_modes_and_only_inner_symlinks(repo: Repo, tmp_path: Path) -> None:
    (repo.work / "lib").mkdir(parents=True)
    (repo.work / "lib" / "helper.py").write_text("x = 1\n")
    (repo.work / "run.sh").write_text("#!/bin/sh\n")
    (repo.work / "run.sh").chmod(0o755)
    os.symlink("lib/helper.py", repo.work / "inner.py")
    os.symlink("/etc/passwd", repo.work / "outer")
    os.symlink("../../secret", repo.work / "escape")
    sha = repo.commit({"mesh.py": "x\n"}, "links")
    out = GitSource(str(repo.origin), cache_dir=tmp_path / "cache").checkout(sha)
    assert (out / "inner.py").is_symlink() and (out / "inner.py").read_text() == "x = 1\n"
    assert not (out / "outer").exists() and not (out / "escape").exists()
    assert (out / "run.sh").stat().st_mode & 0o111

"""Staging a checkout for a warm sandbox: a read-only copy without .git, within budget."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.runtime import isolation
from reconciler.runtime.isolation import CheckoutTooLarge, clear_staging, stage_checkout


def test_copy_is_read_only_without_git(tmp_path: Path) -> None:
    src = tmp_path / "repo"
    (src / ".git").mkdir(parents=True)
    (src / ".git" / "config").write_text("secret")
    (src / "pkg").mkdir()
    (src / "mesh.py").write_text("x = 1\n")
    (src / "pkg" / "helpers.py").write_text("y = 2\n")
    staging = tmp_path / "staging"
    assert stage_checkout(src, staging).path == isolation.CHECKOUT
    assert (staging / "pkg" / "helpers.py").read_text() == "y = 2\n"
    assert not (staging / ".git").exists()
    assert (staging / "mesh.py").stat().st_mode & 0o777 == 0o444
    assert os.stat(staging / "pkg").st_mode & 0o777 == 0o555
    (src / "mesh.py").unlink()
    (src / "other.py").write_text("z = 3\n")
    stage_checkout(src, staging)                        # the next revision replaces it
    assert sorted(p.name for p in staging.iterdir()) == ["other.py", "pkg"]
    clear_staging(staging)
    assert list(staging.iterdir()) == []


def test_over_budget_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "repo"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}.py").write_text("x")
    monkeypatch.setattr(isolation, "MAX_CHECKOUT_FILES", 3)
    with pytest.raises(CheckoutTooLarge, match="3 files"):
        stage_checkout(src, tmp_path / "staging")

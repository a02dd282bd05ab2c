"""The local-directory source (content-addressed snapshots) and its debounced watcher."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from reconciler.ports import SourceError
from reconciler.sources.directory import DirectorySource
from reconciler.sources.watch import DirectoryWatcher


def test_revision_is_the_content(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "mesh.py").write_text("a = 1\n")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ignored\n")
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "x.pyc").write_bytes(b"ignored")
    source = DirectorySource(src, cache_dir=tmp_path / "cache")
    first = source.latest()
    assert first.id.startswith("dir-")
    assert source.latest().id == first.id            # unchanged content, same revision
    snapshot = source.checkout(first.id)
    assert sorted(p.name for p in snapshot.iterdir()) == ["mesh.py"]

    (src / "mesh.py").write_text("a = 2\n")
    second = source.latest()
    assert second.id != first.id
    assert (source.checkout(second.id) / "mesh.py").read_text() == "a = 2\n"
    assert (source.checkout(first.id) / "mesh.py").read_text() == "a = 1\n"


def test_missing_directory_and_expired_snapshot(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a directory"):
        DirectorySource(tmp_path / "nope", cache_dir=tmp_path / "c").latest()
    with pytest.raises(SourceError, match="no longer kept"):
        DirectorySource(tmp_path, cache_dir=tmp_path / "c").checkout("dir-0000")


def test_watcher_debounces_a_burst_into_one_call(tmp_path: Path) -> None:
    calls: list[float] = []
    fired = threading.Event()

    def on_change() -> None:
        calls.append(time.monotonic())
        fired.set()

    watcher = DirectoryWatcher(tmp_path, on_change, debounce=0.3).start()
    try:
        time.sleep(0.2)
        for i in range(5):
            (tmp_path / "mesh.py").write_text(f"v = {i}\n")
            time.sleep(0.05)
        assert fired.wait(5)
        time.sleep(0.6)
        assert len(calls) == 1
        fired.clear()
        (tmp_path / ".hidden").write_text("x")
        (tmp_path / "__pycache__").mkdir()
        (tmp_path / "__pycache__" / "m.pyc").write_bytes(b"x")
        assert not fired.wait(0.8)                      # ignored paths do not trigger
        (tmp_path / "other.py").write_text("y = 1\n")
        assert fired.wait(5)
        assert len(calls) == 2
    finally:
        watcher.stop()

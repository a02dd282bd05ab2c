"""Watch a local directory (watchdog) and call back once per burst of changes.

Editors save in several steps (write a temp file, rename, touch), and ``git checkout``
touches many files: every event restarts a short timer, and the callback runs when the
directory has been quiet for ``debounce`` seconds — one reconcile per save.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Self

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from reconciler.processes.lifecycle import Component
from reconciler.sources.directory import IGNORED_DIRS

__all__ = ["DebouncedWatcher", "DirectoryWatcher"]


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: DebouncedWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if self._watcher.wants(event):
            self._watcher.poke()


class DebouncedWatcher(Component):
    """A watchdog observer on ``path`` whose ``on_change()`` runs on a timer thread once
    events that :meth:`wants` accepts have stopped for ``debounce`` seconds. Subclasses
    say which events matter and whether to watch recursively."""

    recursive = True

    def __init__(self, path: Path, on_change: Callable[[], None], *, debounce: float) -> None:
        self.path = Path(path).resolve()
        self._on_change = on_change
        self._debounce = debounce
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._observer: Observer | None = None  # type: ignore[valid-type]

    def wants(self, event: FileSystemEvent) -> bool:
        raise NotImplementedError

    def poke(self) -> None:
        """Something changed: (re)start the quiet-period timer."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self._debounce, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
        self._on_change()

    def start(self) -> Self:
        observer = Observer()
        observer.daemon = True
        observer.schedule(_Handler(self), str(self.path), recursive=self.recursive)
        observer.start()
        self._observer = observer
        return self

    def stop(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None


class DirectoryWatcher(DebouncedWatcher):
    """``start()`` watches ``path`` recursively; ``on_change()`` runs on a timer thread."""

    def __init__(self, path: Path, on_change: Callable[[], None], *,
                 debounce: float = 0.15) -> None:
        super().__init__(path, on_change, debounce=debounce)

    def ignored(self, path: str) -> bool:
        try:
            parts = Path(path).resolve().relative_to(self.path).parts
        except ValueError:
            return True
        return any(p in IGNORED_DIRS or p.startswith(".") for p in parts) or path.endswith(
            (".pyc", "~", ".swp"))

    def wants(self, event: FileSystemEvent) -> bool:
        if event.event_type in ("opened", "closed_no_write") or (
                event.is_directory and event.event_type == "modified"):
            return False  # reads, and a directory's mtime changing because a child did
        paths = [event.src_path, getattr(event, "dest_path", "") or ""]
        return not all(not p or self.ignored(str(p)) for p in paths)

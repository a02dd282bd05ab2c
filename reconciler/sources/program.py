"""Watch one mesh program file (watchdog) for ``meshctl up --watch``, debounced.

Unlike :mod:`.watch`, which follows a whole repository recursively, this watches only the
program's own directory, non-recursively, and only its ``.py`` files (the program and the
helper modules next to it): a ``mesh.py`` at the top of a project with a ``.venv`` must not
cost an inotify watch per installed package. Editors save in several steps (temp file,
rename, touch), so every event restarts a short timer and ``on_change`` runs once the
directory has been quiet for ``debounce`` seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

__all__ = ["ProgramWatcher"]


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: ProgramWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write") or event.is_directory:
            return
        paths = [str(event.src_path), str(getattr(event, "dest_path", "") or "")]
        if any(p and self._watcher.relevant(p) for p in paths):
            self._watcher.poke()


class ProgramWatcher:
    """``start()`` watches the directory of ``program``; ``on_change()`` runs on a timer
    thread (keep it short: set an event and let the main thread reload)."""

    def __init__(self, program: Path, on_change: Callable[[], None], *,
                 debounce: float = 0.2) -> None:
        self.program = Path(program).resolve()
        self.directory = self.program.parent
        self._on_change = on_change
        self._debounce = debounce
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._observer: Observer | None = None  # type: ignore[valid-type]

    def relevant(self, path: str) -> bool:
        """A Python file directly in the program's directory (not a hidden editor file)."""
        candidate = Path(path)
        return (candidate.suffix == ".py" and not candidate.name.startswith(".")
                and candidate.parent.resolve() == self.directory)

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

    def start(self) -> ProgramWatcher:
        observer = Observer()
        observer.daemon = True
        observer.schedule(_Handler(self), str(self.directory), recursive=False)
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

    def __enter__(self) -> ProgramWatcher:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

"""Watch one mesh program file (watchdog) for ``meshctl up --watch``, debounced.

Unlike :mod:`.watch`, which follows a whole repository recursively, this watches only the
program's own directory, non-recursively, and only its ``.py`` files (the program and the
helper modules next to it): a ``mesh.py`` at the top of a project with a ``.venv`` must not
cost an inotify watch per installed package. Editors save in several steps (temp file,
rename, touch), so every event restarts a short timer and ``on_change`` runs once the
directory has been quiet for ``debounce`` seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent

from reconciler.sources.watch import DebouncedWatcher

__all__ = ["ProgramWatcher"]


class ProgramWatcher(DebouncedWatcher):
    """``start()`` watches the directory of ``program``; ``on_change()`` runs on a timer
    thread (keep it short: set an event and let the main thread reload)."""

    recursive = False

    def __init__(self, program: Path, on_change: Callable[[], None], *,
                 debounce: float = 0.2) -> None:
        self.program = Path(program).resolve()
        super().__init__(self.program.parent, on_change, debounce=debounce)
        self.directory = self.path

    def relevant(self, path: str) -> bool:
        """A Python file directly in the program's directory (not a hidden editor file)."""
        candidate = Path(path)
        return (candidate.suffix == ".py" and not candidate.name.startswith(".")
                and candidate.parent.resolve() == self.directory)

    def wants(self, event: FileSystemEvent) -> bool:
        if event.event_type in ("opened", "closed_no_write") or event.is_directory:
            return False
        paths = [str(event.src_path), str(getattr(event, "dest_path", "") or "")]
        return any(p and self.relevant(p) for p in paths)

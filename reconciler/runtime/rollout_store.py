"""Rollout states on disk: one JSON file per (namespace, service), written atomically.

The canary machine is pure; this is where its state survives a killed reconciler. Each
file is ``<dir>/<namespace>/<service>.json`` (``<dir>`` is ``<state-dir>/rollouts`` for a
reconciler's state directory)::

    {"generation": 7, "state": {"schema": "meshdsl.dev/rollout/v1", ...}}

Writes go to a temporary file in the same directory, are fsynced, then renamed over the
old file, so a reader (or a crash) sees the old state or the new one, never half of each.
Every save is a compare-and-swap on ``generation`` under an exclusive ``flock``: the
reconcile loop and ``meshctl canary promote`` may both write, and whichever is second gets
:class:`~reconciler.ports.StaleRolloutError` and redoes its step on the fresh state instead
of silently undoing the other's change.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconciler.delivery.errors import StateFormatError
from reconciler.delivery.phases import RolloutState, StoredRollout
from reconciler.ports import RolloutStoreError, StaleRolloutError

__all__ = ["SUBDIRECTORY", "DiskRolloutStore"]

_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_LOCK = ".lock"
SUBDIRECTORY = "rollouts"


def _check_name(what: str, value: str) -> str:
    if not _NAME.fullmatch(value) or ".." in value:
        raise RolloutStoreError(f"{what} {value!r} is not a Kubernetes name (lower-case "
                                "letters, digits, '-', '.')")
    return value


class DiskRolloutStore:
    """The local mesh's :class:`~reconciler.ports.RolloutStore`."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    @classmethod
    def in_state_dir(cls, state_dir: Path | str) -> DiskRolloutStore:
        """The store inside a reconciler's state directory (``<state-dir>/rollouts``), where
        ``meshctl canary ... --state-dir`` and the reconcile loop both find it."""
        return cls(Path(state_dir) / SUBDIRECTORY)

    def describe(self) -> str:
        return f"rollout states in {self.directory}"

    def path(self, namespace: str, service: str) -> Path:
        return (self.directory / _check_name("namespace", namespace)
                / f"{_check_name('service', service)}.json")

    # --- reading ------------------------------------------------------------------------

    def load(self, namespace: str, service: str) -> StoredRollout | None:
        return self._read(self.path(namespace, service))

    def list_rollouts(self) -> list[StoredRollout]:
        """Every stored rollout, sorted by namespace and service."""
        if not self.directory.is_dir():
            return []
        found = (self._read(p) for p in sorted(self.directory.glob("*/*.json")))
        return [s for s in found if s is not None]

    def _read(self, path: Path) -> StoredRollout | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RolloutStoreError(f"cannot read rollout state {path}: {exc}") from exc
        try:
            data: Any = json.loads(text)
            generation = data["generation"]
            if not isinstance(generation, int):
                raise TypeError("generation is not an integer")
            return StoredRollout(RolloutState.from_json(data["state"]), generation)
        except (ValueError, KeyError, TypeError, StateFormatError) as exc:
            raise RolloutStoreError(f"rollout state {path} is unreadable ({exc}); fix or "
                                    "delete the file (the rollout restarts from its first "
                                    "stage)") from exc

    # --- writing ------------------------------------------------------------------------

    def save(self, state: RolloutState, *, expected_generation: int | None) -> int:
        path = self.path(state.namespace, state.service)
        with self._locked():
            current = self._read(path)
            found = None if current is None else current.generation
            if found != expected_generation:
                raise StaleRolloutError(
                    f"rollout {state.namespace}/{state.service} is at generation {found}, "
                    f"not {expected_generation}: someone else changed it; reload and retry")
            generation = (found or 0) + 1
            body = json.dumps({"generation": generation, "state": state.to_json()},
                              indent=2, sort_keys=True)
            self._write_atomic(path, body + "\n")
            return generation

    def delete(self, namespace: str, service: str) -> None:
        path = self.path(namespace, service)
        with self._locked():
            path.unlink(missing_ok=True)

    def export_stack_state(self, path: Path | str) -> None:
        """Write the rollouts in progress in the format ``stacks.rollout.JsonRolloutState``
        reads (``{"rollouts": {"ns/svc": {"weights": ..., "phase": ...}}}``), so a
        ``pulumi up`` keeps their weights instead of resetting them."""
        rollouts = {f"{s.state.namespace}/{s.state.service}":
                    {"weights": s.state.traffic.weights, "phase": s.state.phase.value}
                    for s in self.list_rollouts() if s.state.active}
        body = json.dumps({"rollouts": rollouts}, indent=2, sort_keys=True) + "\n"
        self._write_atomic(Path(path), body)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = open(self.directory / _LOCK, "a+b")  # noqa: SIM115 - held across yield
        except OSError as exc:
            raise RolloutStoreError(f"cannot lock {self.directory}: {exc}") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    @staticmethod
    def _write_atomic(path: Path, text: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                        suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(text)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        except OSError as exc:
            raise RolloutStoreError(f"cannot write {path}: {exc}") from exc

"""What a reconciler did and what it was asked to do: the status/history model and its stores.

Two records, each with one writer, so they never overwrite each other's changes:

- :class:`Status` — written only by the running reconciler: the applied revision, the last
  attempt (with the user's file:line when the program failed), whether an apply is in
  progress, drift, and a bounded history;
- :class:`Control` — written only by the CLI (``suspend``, ``resume``, ``rollback``): a
  generation counter and the request. The reconciler acts on a generation it has not
  seen yet and records it in ``Status.observed_control``.

Each applied revision's compiled output is kept as well, so a rollback re-applies exactly
what was applied then, without running any program again.

Stores: :class:`DiskStore` (JSON files replaced atomically, and ``flock`` so one
reconciler at a time uses a state directory) for the local target, and
:class:`ClusterStore` (ConfigMaps in ``meshdsl-system``) for the kube target, so a
reconciler restarted on another node knows the last applied revision.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import fcntl
import gzip
import json
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from reconciler.ports import Target
from reconciler.runtime import configmap_blob

__all__ = [
    "HISTORY_LIMIT",
    "RECONCILER_LABEL",
    "ROLE_LABEL",
    "STATE_NAMESPACE",
    "Attempt",
    "ClusterStore",
    "Control",
    "DiskStore",
    "DriftReport",
    "Failure",
    "Result",
    "StateLockedError",
    "Status",
    "StoreError",
    "ensure_namespace",
    "now_iso",
    "state_labels",
]

HISTORY_LIMIT = 50
OUTPUTS_KEPT = 10
STATE_NAMESPACE = "meshdsl-system"
_MESSAGE_LIMIT = 2000
_DETAILS_LIMIT = 30
_DETAILED = 5          # history entries that keep their failure's detail lines


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


class StoreError(Exception):
    """The state could not be read or written."""


class StateLockedError(StoreError):
    """Another reconciler is using this state directory."""


class Result(StrEnum):
    APPLIED = "applied"        # a new revision is live
    FAILED = "failed"          # nothing applied; the previous state stays
    HEALED = "healed"          # drift written back (same revision)
    ROLLED_BACK = "rolled-back"


@dataclass(frozen=True)
class Failure:
    kind: str                  # syntax, exception, timeout, memory, validation, source, …
    message: str
    location: str | None = None
    details: tuple[str, ...] = ()
    transient: bool = False    # retried with backoff (target unreachable, fetch failed)

    def describe(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


@dataclass(frozen=True)
class Attempt:
    """One reconcile that did something (or failed to): an entry of the history."""

    revision: str
    trigger: str
    started_at: str
    duration: float
    result: Result
    summary: str = ""                  # the commit's subject line
    mesh: str = ""
    changes: dict[str, int] = field(default_factory=dict)
    failure: Failure | None = None
    count: int = 1                     # identical consecutive failures are folded into one

    @property
    def short(self) -> str:
        return self.revision[:12]


@dataclass(frozen=True)
class DriftReport:
    checked_at: str
    objects: tuple[str, ...] = ()
    healed: bool = False


@dataclass(frozen=True)
class Status:
    name: str
    source: str = ""
    target: str = ""
    applied: Attempt | None = None       # what is live: the last successful apply
    last: Attempt | None = None          # the latest attempt, successful or not
    in_progress: str | None = None       # revision being applied (survives a crash)
    suspended: bool = False
    suspend_reason: str | None = None
    drift: DriftReport | None = None
    history: tuple[Attempt, ...] = ()    # newest first
    observed_control: int = 0
    updated_at: str = ""

    @property
    def applied_revision(self) -> str | None:
        return self.applied.revision if self.applied else None

    def record(self, attempt: Attempt, *, limit: int = HISTORY_LIMIT) -> Status:
        """This status after ``attempt``: history gains an entry (a failure identical to
        the newest entry is folded into it), and ``applied`` moves on success."""
        history = list(self.history)
        newest = history[0] if history else None
        if (attempt.failure is not None and newest is not None and newest.failure is not None
                and newest.revision == attempt.revision
                and newest.failure.kind == attempt.failure.kind
                and newest.failure.message == attempt.failure.message):
            history[0] = replace(attempt, count=newest.count + 1,
                                 started_at=newest.started_at)
        else:
            history.insert(0, attempt)
        moved = attempt.result in (Result.APPLIED, Result.ROLLED_BACK)
        applied = attempt if moved else self.applied
        # Older failures keep their message and location, not their traceback lines: the
        # status must stay far below a ConfigMap's 1 MiB.
        history = [replace(a, failure=replace(a.failure, details=()))
                   if i >= _DETAILED and a.failure is not None and a.failure.details else a
                   for i, a in enumerate(history[:limit])]
        return replace(self, applied=applied, last=history[0], history=tuple(history),
                       in_progress=None, updated_at=now_iso())

    def find(self, prefix: str) -> Attempt | None:
        """The newest applied entry whose revision starts with ``prefix``."""
        for attempt in self.history:
            if attempt.result is not Result.FAILED and attempt.revision.startswith(prefix):
                return attempt
        return None

    # -- JSON -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = _clean(dataclasses.asdict(self))
        return cleaned

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Status:
        def attempt(raw: Any) -> Attempt | None:
            if not isinstance(raw, dict):
                return None
            failure = raw.get("failure")
            return Attempt(
                revision=str(raw.get("revision", "")), trigger=str(raw.get("trigger", "")),
                started_at=str(raw.get("started_at", "")),
                duration=float(raw.get("duration") or 0.0),
                result=Result(raw.get("result", Result.FAILED.value)),
                summary=str(raw.get("summary", "")), mesh=str(raw.get("mesh", "")),
                changes={str(k): int(v) for k, v in (raw.get("changes") or {}).items()},
                failure=Failure(
                    kind=str(failure.get("kind", "")), message=str(failure.get("message", "")),
                    location=failure.get("location"),
                    details=tuple(str(d) for d in failure.get("details") or ()),
                    transient=bool(failure.get("transient")),
                ) if isinstance(failure, dict) else None,
                count=int(raw.get("count") or 1))

        drift = data.get("drift")
        return cls(
            name=str(data.get("name", "")), source=str(data.get("source", "")),
            target=str(data.get("target", "")), applied=attempt(data.get("applied")),
            last=attempt(data.get("last")), in_progress=data.get("in_progress"),
            suspended=bool(data.get("suspended")), suspend_reason=data.get("suspend_reason"),
            drift=DriftReport(checked_at=str(drift.get("checked_at", "")),
                              objects=tuple(drift.get("objects") or ()),
                              healed=bool(drift.get("healed")))
            if isinstance(drift, dict) else None,
            history=tuple(a for a in (attempt(h) for h in data.get("history") or ()) if a),
            observed_control=int(data.get("observed_control") or 0),
            updated_at=str(data.get("updated_at", "")))


@dataclass(frozen=True)
class Control:
    """A request from ``meshctl suspend/resume/rollback``; ``generation`` grows by one per
    request."""

    generation: int = 0
    suspended: bool = False
    reason: str | None = None
    rollback: str | None = None         # full revision to re-apply
    requested_at: str = ""
    requested_by: str = ""

    def request(self, **changes: Any) -> Control:
        return replace(self, generation=self.generation + 1, requested_at=now_iso(),
                       **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Control:
        return cls(generation=int(data.get("generation") or 0),
                   suspended=bool(data.get("suspended")), reason=data.get("reason"),
                   rollback=data.get("rollback"),
                   requested_at=str(data.get("requested_at", "")),
                   requested_by=str(data.get("requested_by", "")))


def _clean(value: Any) -> Any:
    """Bounded, JSON-ready: long messages and detail lists are cut."""
    if isinstance(value, dict):
        out = {k: _clean(v) for k, v in value.items()}
        if "message" in out and isinstance(out["message"], str):
            out["message"] = out["message"][:_MESSAGE_LIMIT]
        if "details" in out and isinstance(out["details"], list):
            out["details"] = [str(d)[:500] for d in out["details"][:_DETAILS_LIMIT]]
        return out
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    return value


def _encode_output(output: dict[str, Any], *, compress: bool = True) -> bytes:
    raw = json.dumps(output, sort_keys=True, separators=(",", ":")).encode()
    return gzip.compress(raw, mtime=0) if compress else raw


def _decode_output(data: bytes, *, compressed: bool = True) -> dict[str, Any]:
    value = json.loads(gzip.decompress(data) if compressed else data)
    if not isinstance(value, dict):
        raise StoreError("stored output is not an object")
    return value


def _safe_name(revision: str) -> str:
    name = re.sub(r"[^a-z0-9-]", "-", revision.lower())[:40].strip("-")
    return name or "none"


# --- on disk -----------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Write a temporary file next to ``path``, fsync it, rename it over ``path``: a
    reader (or a crash) sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class DiskStore:
    """``<dir>/status.json``, ``control.json``, ``outputs/<revision>.json.gz``, ``lock``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).expanduser()
        self._lock_file: IO[bytes] | None = None

    def describe(self) -> str:
        return f"disk {self.directory}"

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.directory / name).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {self.directory / name}: {exc}") from exc
        return data if isinstance(data, dict) else None

    def _write(self, name: str, data: dict[str, Any]) -> None:
        try:
            write_atomic(self.directory / name,
                         (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
        except OSError as exc:
            raise StoreError(f"cannot write {self.directory / name}: {exc}") from exc

    def load_status(self) -> Status | None:
        data = self._read("status.json")
        return Status.from_dict(data) if data is not None else None

    def save_status(self, status: Status) -> None:
        self._write("status.json", status.to_dict())

    def load_control(self) -> Control:
        data = self._read("control.json")
        return Control.from_dict(data) if data is not None else Control()

    def save_control(self, control: Control) -> None:
        self._write("control.json", control.to_dict())

    def save_output(self, revision: str, output: dict[str, Any]) -> None:
        try:
            write_atomic(self.directory / "outputs" / f"{_safe_name(revision)}.json.gz",
                         _encode_output(output))
        except OSError as exc:
            raise StoreError(f"cannot write the output of {revision[:12]}: {exc}") from exc

    def load_output(self, revision: str) -> dict[str, Any] | None:
        path = self.directory / "outputs" / f"{_safe_name(revision)}.json.gz"
        try:
            return _decode_output(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc

    def prune_outputs(self, keep: set[str]) -> None:
        names = {f"{_safe_name(r)}.json.gz" for r in keep}
        with contextlib.suppress(FileNotFoundError):
            for path in (self.directory / "outputs").iterdir():
                if path.name.endswith(".json.gz") and path.name not in names:
                    path.unlink(missing_ok=True)

    def lock(self) -> None:
        """Hold an exclusive ``flock`` on the directory until :meth:`unlock` (or exit)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = (self.directory / "lock").open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise StateLockedError(f"another reconciler is using {self.directory}") from exc
        self._lock_file = handle

    def unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


# --- in the cluster ----------------------------------------------------------------------

RECONCILER_LABEL = "meshdsl.io/reconciler"
ROLE_LABEL = "meshdsl.io/role"


def state_labels(reconciler: str, role: str) -> dict[str, str]:
    """The labels of a ConfigMap holding state of reconciler ``reconciler`` (``role``:
    status, control, output, rollout) — how its stores find their own among the others."""
    return {"app.kubernetes.io/managed-by": "meshdsl", RECONCILER_LABEL: reconciler,
            ROLE_LABEL: role}


def ensure_namespace(target: Target, namespace: str) -> None:
    """Create ``namespace`` unless it exists, so the first write of a state can land."""
    if target.get("v1", "Namespace", "", namespace) is None:
        target.apply({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": namespace,
                                   "labels": {"app.kubernetes.io/managed-by": "meshdsl"}}},
                     force=True)


class ClusterStore:
    """ConfigMaps ``meshdsl-status-<name>``, ``meshdsl-control-<name>`` and
    ``meshdsl-output-<name>-<revision>`` in ``namespace``, through a
    :class:`~reconciler.ports.Target` (server-side apply, field manager ``meshdsl``)."""

    def __init__(self, target: Target, name: str, *, namespace: str = STATE_NAMESPACE) -> None:
        self.target, self.name, self.namespace = target, name, namespace
        self._namespace_ready = False

    def describe(self) -> str:
        return f"cluster ConfigMaps {self.namespace}/meshdsl-*-{self.name}"

    def _ensure_namespace(self) -> None:
        if not self._namespace_ready:
            ensure_namespace(self.target, self.namespace)
            self._namespace_ready = True

    def _get(self, name: str) -> dict[str, Any] | None:
        return self.target.get("v1", "ConfigMap", self.namespace, name)

    def _put(self, name: str, role: str, *, data: dict[str, str] | None = None,
             binary: dict[str, bytes] | None = None) -> None:
        self._ensure_namespace()
        manifest: dict[str, Any] = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": self.namespace,
                         "labels": state_labels(self.name, role)}}
        if data is not None:
            manifest["data"] = data
        if binary is not None:
            manifest["binaryData"] = {k: base64.b64encode(v).decode() for k, v in
                                      binary.items()}
        self.target.apply(manifest, force=True)

    def _json(self, name: str, key: str) -> dict[str, Any] | None:
        obj = self._get(name)
        if obj is None:
            return None
        try:
            data = json.loads((obj.get("data") or {}).get(key) or "null")
        except ValueError as exc:
            raise StoreError(f"ConfigMap {self.namespace}/{name} holds invalid JSON") from exc
        return data if isinstance(data, dict) else None

    def load_status(self) -> Status | None:
        data = self._json(f"meshdsl-status-{self.name}", "status.json")
        return Status.from_dict(data) if data is not None else None

    def save_status(self, status: Status) -> None:
        self._put(f"meshdsl-status-{self.name}", "status",
                  data={"status.json": json.dumps(status.to_dict(), indent=1, sort_keys=True)})

    def load_control(self) -> Control:
        data = self._json(f"meshdsl-control-{self.name}", "control.json")
        return Control.from_dict(data) if data is not None else Control()

    def save_control(self, control: Control) -> None:
        self._put(f"meshdsl-control-{self.name}", "control",
                  data={"control.json": json.dumps(control.to_dict(), sort_keys=True)})

    def _output_name(self, revision: str) -> str:
        return f"meshdsl-output-{self.name}-{_safe_name(revision)}"[:253]

    def save_output(self, revision: str, output: dict[str, Any]) -> None:
        self._ensure_namespace()  # big outputs are chunked: reconciler.runtime.configmap_blob
        configmap_blob.write(self.target, namespace=self.namespace,
                             name=self._output_name(revision),
                             labels=state_labels(self.name, "output"), key="output.json.gz",
                             payload=_encode_output(output, compress=False),
                             data={"revision": revision})

    def load_output(self, revision: str) -> dict[str, Any] | None:
        try:
            raw = configmap_blob.read(self.target, namespace=self.namespace,
                                      name=self._output_name(revision), key="output.json.gz")
            return None if raw is None else _decode_output(raw, compressed=False)
        except (configmap_blob.BlobError, ValueError, OSError) as exc:
            raise StoreError(f"the stored output of {revision[:12]} is unreadable") from exc

    def prune_outputs(self, keep: set[str]) -> None:
        names = {self._output_name(r) for r in keep}
        for obj in self.target.list("v1", "ConfigMap", self.namespace):
            meta = obj.get("metadata") or {}
            labels = meta.get("labels") or {}
            if (labels.get(RECONCILER_LABEL) == self.name and labels.get(ROLE_LABEL) == "output"
                    and str(meta.get("name")).partition(".")[0] not in names):
                self.target.delete("v1", "ConfigMap", self.namespace, str(meta["name"]))


def outputs_to_keep(status: Status, *, limit: int = OUTPUTS_KEPT) -> set[str]:
    """The revisions whose output a rollback may still ask for: the newest applied ones
    (and whatever is live or in progress)."""
    keep: list[str] = []
    for attempt in status.history:
        if attempt.result is not Result.FAILED and attempt.revision not in keep:
            keep.append(attempt.revision)
    chosen = set(keep[:limit])
    if status.applied is not None:
        chosen.add(status.applied.revision)
    if status.in_progress:
        chosen.add(status.in_progress)
    return chosen

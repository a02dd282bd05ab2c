"""Where the status and control records live: :class:`DiskStore` and :class:`ClusterStore`.

The records themselves (:class:`Status`, :class:`Control`, …) are pure and live in
:mod:`reconciler.runtime.records`; they are re-exported here so existing imports keep
working. Each applied revision's compiled output is kept as well, so a rollback re-applies
exactly what was applied then, without running any program again.

Stores: :class:`DiskStore` (JSON files replaced atomically, and ``flock`` so one
reconciler at a time uses a state directory) for the local target, and
:class:`ClusterStore` (ConfigMaps in ``meshdsl-system``) for the kube target, so a
reconciler restarted on another node knows the last applied revision.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from meshdsl.compile.manifest import CONFIG_MAP, NAMESPACE, OWNER_LABEL, ROLE_LABEL
from reconciler.errors import ReconcilerError
from reconciler.ports import ObjectRejected, StateStore, Target
from reconciler.runtime import configmap_blob
from reconciler.runtime.records import (
    HISTORY_LIMIT,
    OUTPUTS_KEPT,
    Attempt,
    Control,
    DriftReport,
    Failure,
    FailureKind,
    Result,
    Status,
    now_iso,
    outputs_to_keep,
)

__all__ = [
    "HISTORY_LIMIT",
    "OUTPUTS_KEPT",
    "OWNER_LABEL",
    "ROLE_LABEL",
    "STATE_NAMESPACE",
    "Attempt",
    "ClusterStore",
    "Control",
    "CorruptRecordError",
    "DiskStore",
    "DriftReport",
    "Failure",
    "FailureKind",
    "Result",
    "StaleRecordError",
    "StateLockedError",
    "Status",
    "StoreError",
    "ensure_namespace",
    "now_iso",
    "outputs_to_keep",
    "request_control",
    "state_labels",
]

STATE_NAMESPACE = "meshdsl-system"


class StoreError(ReconcilerError):
    """The state could not be read or written."""

    transient = True


class StateLockedError(StoreError):
    """Another reconciler is using this state directory."""


class StaleRecordError(StoreError):
    """The record changed since it was read (compare-and-swap failed): read it again."""


class CorruptRecordError(StoreError):
    """A stored record is unreadable or not ours; the message says which and how to fix."""

    transient = False


def request_control(store: StateStore, *, attempts: int = 20, **changes: Any) -> Control:
    """Write the next control generation with ``changes``, compare-and-swap on the record's
    version: two requests at once both land, one after the other, never one over the
    other. A corrupt or foreign record is replaced, at a generation past the one the
    reconciler last observed (so it is not ignored)."""
    for _ in range(attempts):
        current = store.load_control()
        if current.problem:
            observed = 0
            with contextlib.suppress(StoreError):
                status = store.load_status()
                observed = status.observed_control if status is not None else 0
            current = replace(Control(generation=max(current.generation, observed)),
                              version=current.version)
        wanted = current.request(**changes)
        try:
            store.save_control(wanted, expected=current.version)
        except StaleRecordError:
            continue
        return wanted
    raise StoreError(f"the control record in {store.describe()} kept changing "
                     f"({attempts} attempts); try again")


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
        except ValueError as exc:
            raise CorruptRecordError(f"cannot read {self.directory / name}: not valid "
                                     f"JSON ({exc})") from exc
        except OSError as exc:
            raise StoreError(f"cannot read {self.directory / name}: {exc}") from exc
        if not isinstance(data, dict):
            raise CorruptRecordError(f"cannot read {self.directory / name}: not a JSON "
                                     "object")
        return data

    def _version(self, name: str) -> str:
        try:
            return hashlib.sha256((self.directory / name).read_bytes()).hexdigest()[:16]
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise StoreError(f"cannot read {self.directory / name}: {exc}") from exc

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
        version = self._version("control.json")
        try:
            data = self._read("control.json")
        except CorruptRecordError as exc:
            return Control(version=version, problem=f"the control record {exc}; "
                           "`meshctl resume` (or suspend/rollback) replaces it")
        control = Control.from_dict(data) if data is not None else Control()
        return replace(control, version=version)

    def save_control(self, control: Control, *, expected: str | None = None) -> None:
        """Write ``control``; with ``expected``, only if the stored record is still the one
        of that version ("": none), under a lock shared by every writer of the directory."""
        if expected is None:
            self._write("control.json", control.to_dict())
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "control.lock").open("ab") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            if self._version("control.json") != expected:
                raise StaleRecordError(f"{self.directory / 'control.json'} changed since "
                                       "it was read")
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


def state_labels(reconciler: str, role: str) -> dict[str, str]:
    """The labels of a ConfigMap holding state of reconciler ``reconciler`` (``role``:
    status, control, output, rollout) — how its stores find their own among the others."""
    return {"app.kubernetes.io/managed-by": "meshdsl", OWNER_LABEL: reconciler,
            ROLE_LABEL: role}


def ensure_namespace(target: Target, namespace: str) -> None:
    """Create ``namespace`` unless it exists, so the first write of a state can land."""
    if target.get(NAMESPACE.key("", namespace)) is None:
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
        return self.target.get(CONFIG_MAP.key(self.namespace, name))

    def _put(self, name: str, role: str, *, data: dict[str, str] | None = None,
             binary: dict[str, bytes] | None = None, version: str | None = None) -> None:
        self._ensure_namespace()
        manifest: dict[str, Any] = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": self.namespace,
                         "labels": state_labels(self.name, role)}}
        if version:   # a precondition: the server refuses the write (409) if it changed
            manifest["metadata"]["resourceVersion"] = version
        if data is not None:
            manifest["data"] = data
        if binary is not None:
            manifest["binaryData"] = {k: base64.b64encode(v).decode() for k, v in
                                      binary.items()}
        self.target.apply(manifest, force=True)

    def _json(self, name: str, key: str, role: str
              ) -> tuple[dict[str, Any] | None, str]:
        """The record's JSON object (``None`` when absent) and its resourceVersion; raises
        :class:`CorruptRecordError` for a record that is not ours or not valid."""
        obj = self._get(name)
        if obj is None:
            return None, ""
        meta = obj.get("metadata") or {}
        version = str(meta.get("resourceVersion") or "")
        labels = meta.get("labels") or {}
        where = f"ConfigMap {self.namespace}/{name}"
        if labels.get(OWNER_LABEL) != self.name or labels.get(ROLE_LABEL) != role:
            raise CorruptRecordError(f"{where} is not a meshdsl {role} record (labels "
                                     f"{OWNER_LABEL}={self.name}, {ROLE_LABEL}={role} "
                                     "missing)")
        raw = (obj.get("data") or {}).get(key)
        try:
            data = json.loads(raw or "null")
        except ValueError as exc:
            raise CorruptRecordError(f"{where} holds invalid JSON in {key}") from exc
        if raw is not None and not isinstance(data, dict):
            raise CorruptRecordError(f"{where} does not hold a JSON object in {key}")
        return data, version

    def load_status(self) -> Status | None:
        data, _ = self._json(f"meshdsl-status-{self.name}", "status.json", "status")
        return Status.from_dict(data) if data is not None else None

    def save_status(self, status: Status) -> None:
        self._put(f"meshdsl-status-{self.name}", "status",
                  data={"status.json": json.dumps(status.to_dict(), indent=1, sort_keys=True)})

    def load_control(self) -> Control:
        name = f"meshdsl-control-{self.name}"
        try:
            data, version = self._json(name, "control.json", "control")
        except CorruptRecordError as exc:
            found = self._get(name) or {}
            return Control(version=str((found.get("metadata") or {}).get("resourceVersion")
                                       or ""),
                           problem=f"{exc}; `meshctl resume` (or suspend/rollback) "
                                   "replaces it")
        control = Control.from_dict(data) if data is not None else Control()
        return replace(control, version=version)

    def save_control(self, control: Control, *, expected: str | None = None) -> None:
        """Write ``control``; with ``expected`` (a resourceVersion, "" for none), only if
        the stored record is still that one — the API server checks it (409 otherwise).

        Server-side apply cannot say "only if absent", so the first record is created
        (POST, 409 when it exists) rather than applied."""
        name = f"meshdsl-control-{self.name}"
        data = {"control.json": json.dumps(control.to_dict(), sort_keys=True)}
        try:
            if expected == "":
                self._ensure_namespace()
                self.target.create({"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": name, "namespace": self.namespace,
                                                 "labels": state_labels(self.name,
                                                                        "control")},
                                    "data": data})
            else:
                self._put(name, "control", version=expected, data=data)
        except ObjectRejected as exc:
            if exc.conflict:
                raise StaleRecordError(f"ConfigMap {self.namespace}/{name} changed since "
                                       "it was read") from exc
            raise

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
        for obj in self.target.list(CONFIG_MAP, self.namespace):
            meta = obj.get("metadata") or {}
            labels = meta.get("labels") or {}
            if (labels.get(OWNER_LABEL) == self.name and labels.get(ROLE_LABEL) == "output"
                    and str(meta.get("name")).partition(".")[0] not in names):
                self.target.delete(CONFIG_MAP.key(self.namespace, str(meta["name"])))

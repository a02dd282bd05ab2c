"""Where rollout states survive between steps: files for the local mesh, ConfigMaps for kube.

The canary machine is pure; this is where its state survives a killed reconciler. Both
stores hold the same JSON per (namespace, service)::

    {"generation": 7, "state": {"schema": "meshdsl.dev/rollout/v1", ...}}

and every save is a compare-and-swap on ``generation``: the reconcile loop and ``meshctl
canary promote`` may both write, and whichever is second gets
:class:`~reconciler.ports.StaleRolloutError` and redoes its step on the fresh state instead
of silently undoing the other's change.

:class:`DiskRolloutStore` keeps ``<dir>/<namespace>/<service>.json`` (``<dir>`` is
``<state-dir>/rollouts`` for a reconciler's state directory). Writes go to a temporary file
in the same directory, are fsynced, then renamed over the old file, so a reader (or a
crash) sees the old state or the new one, never half of each; the compare-and-swap holds an
exclusive ``flock``.

:class:`ClusterRolloutStore` keeps one ConfigMap per rollout in ``meshdsl-system``, so a
reconciler restarted on another node resumes each rollout at its step. There the
compare-and-swap is the API server's: the write carries the ``resourceVersion`` (and
``uid``) of the ConfigMap as read, so a concurrent writer between our read and our write
makes it fail with 409 Conflict.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from meshdsl.compile.manifest import CONFIG_MAP
from reconciler.delivery.errors import StateFormatError
from reconciler.delivery.phases import RolloutState, StoredRollout
from reconciler.ports import (
    ObjectRejected,
    RolloutStoreError,
    StaleRolloutError,
    Target,
    TargetError,
)
from reconciler.runtime.status import (
    OWNER_LABEL,
    ROLE_LABEL,
    STATE_NAMESPACE,
    ClusterStore,
    DiskStore,
    ensure_namespace,
    state_labels,
    write_atomic,
)

__all__ = ["CONFIG_MAP_PREFIX", "SUBDIRECTORY", "ClusterRolloutStore", "DiskRolloutStore",
           "beside"]

_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL = re.compile(_DNS_LABEL)
_DOTTED = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_LOCK = ".lock"
SUBDIRECTORY = "rollouts"
CONFIG_MAP_PREFIX = "meshdsl-rollout-"
_DATA_KEY = "rollout.json"
_ROLE = "rollout"
# No object ever has this resourceVersion (etcd revisions are signed 64-bit), so a write
# carrying it fails with 409 Conflict whenever the ConfigMap exists: a create-only write.
_NO_OBJECT_YET = str(2**64 - 1)


def _check_name(what: str, value: str) -> str:
    if not _NAME.fullmatch(value) or ".." in value:
        raise RolloutStoreError(f"{what} {value!r} is not a Kubernetes name (lower-case "
                                "letters, digits, '-', '.')")
    return value


def _encode(state: RolloutState, generation: int) -> str:
    return json.dumps({"generation": generation, "state": state.to_json()}, indent=2,
                      sort_keys=True) + "\n"


def _unreadable(where: str, fix: str, why: object) -> RolloutStoreError:
    return RolloutStoreError(f"rollout state {where} is unreadable ({why}); {fix} (the "
                             "rollout restarts from its first stage)")


def _decode(text: str, *, where: str, fix: str) -> StoredRollout:
    try:
        data: Any = json.loads(text)
        generation = data["generation"]
        if not isinstance(generation, int):
            raise TypeError("generation is not an integer")
        return StoredRollout(RolloutState.from_json(data["state"]), generation)
    except (ValueError, KeyError, TypeError, StateFormatError) as exc:
        raise _unreadable(where, fix, exc) from exc


def _check_generation(state: RolloutState, found: int | None, expected: int | None) -> int:
    """The generation to write, if the stored one is the one the writer read."""
    if found != expected:
        raise StaleRolloutError(
            f"rollout {state.namespace}/{state.service} is at generation {found}, not "
            f"{expected}: someone else changed it; reload and retry")
    return (found or 0) + 1


def _write_atomic(path: Path, text: str) -> None:
    try:
        write_atomic(path, text.encode())
    except OSError as exc:
        raise RolloutStoreError(f"cannot write {path}: {exc}") from exc


class _Exporting:
    """What both stores do the same way on top of :meth:`list_rollouts`."""

    def list_rollouts(self) -> list[StoredRollout]:
        raise NotImplementedError

    def list_readable(self) -> tuple[list[StoredRollout], list[str]]:
        """The rollouts that can be read, and one message per one that cannot (what a
        status view shows: a broken file does not hide the others)."""
        try:
            return self.list_rollouts(), []
        except RolloutStoreError as exc:
            return [], [str(exc)]

    def export_stack_state(self, path: Path | str) -> None:
        """Write the rollouts in progress in the format ``stacks.rollout.JsonRolloutState``
        reads (``{"rollouts": {"ns/svc": {"weights": ..., "phase": ...}}}``), so a
        ``pulumi up`` keeps their weights instead of resetting them."""
        rollouts = {f"{s.state.namespace}/{s.state.service}":
                    {"weights": s.state.traffic.weights, "phase": s.state.phase.value}
                    for s in self.list_rollouts() if s.state.active}
        _write_atomic(Path(path), json.dumps({"rollouts": rollouts}, indent=2,
                                             sort_keys=True) + "\n")


class DiskRolloutStore(_Exporting):
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

    def list_readable(self) -> tuple[list[StoredRollout], list[str]]:
        if not self.directory.is_dir():
            return [], []
        found, errors = [], []
        for path in sorted(self.directory.glob("*/*.json")):
            try:
                stored = self._read(path)
            except RolloutStoreError as exc:
                errors.append(str(exc))
                continue
            if stored is not None:
                found.append(stored)
        return found, errors

    def _read(self, path: Path) -> StoredRollout | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError as exc:
            raise _unreadable(str(path), "fix or delete the file",
                              f"not UTF-8 at byte {exc.start}") from exc
        except OSError as exc:
            raise RolloutStoreError(f"cannot read rollout state {path}: {exc}") from exc
        return _decode(text, where=str(path), fix="fix or delete the file")

    # --- writing ------------------------------------------------------------------------

    def save(self, state: RolloutState, *, expected_generation: int | None) -> int:
        path = self.path(state.namespace, state.service)
        with self._locked():
            current = self._read(path)
            generation = _check_generation(
                state, None if current is None else current.generation, expected_generation)
            _write_atomic(path, _encode(state, generation))
            return generation

    def delete(self, namespace: str, service: str) -> None:
        path = self.path(namespace, service)
        with self._locked():
            path.unlink(missing_ok=True)

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


def _check_label(what: str, value: str, *, dots: bool = False) -> str:
    """``value`` if it fits both the ConfigMap's name and a label value."""
    if len(value) > 63 or not (_DOTTED if dots else _LABEL).fullmatch(value):
        allowed = "'-' and '.'" if dots else "'-'"
        raise RolloutStoreError(f"{what} {value!r} cannot name a rollout ConfigMap (at most "
                                f"63 lower-case letters, digits, {allowed})")
    return value


class ClusterRolloutStore(_Exporting):
    """The kube target's :class:`~reconciler.ports.RolloutStore`: one ConfigMap per rollout.

    The ConfigMap of ``namespace/service`` for reconciler ``name`` is
    ``meshdsl-rollout-<name>.<namespace>.<service>`` in ``namespace`` (``meshdsl-system``):
    namespaces and Services are DNS labels, so the dots make the name unambiguous, and at
    most 16 + 3 * 63 + 2 = 207 characters, always a valid ConfigMap name (no hashing
    needed). It is labelled like the reconciler's other state (``meshdsl.io/reconciler:
    <name>``, ``meshdsl.io/role: rollout``) plus ``meshdsl.io/rollout-namespace`` and
    ``meshdsl.io/rollout-service``, and holds the disk store's JSON under ``rollout.json``.

    A save reads the ConfigMap, checks the generation, then applies the new state carrying
    the ``resourceVersion`` and ``uid`` it read: if anyone wrote or deleted the ConfigMap in
    between, the API server refuses with 409 Conflict, which becomes
    :class:`~reconciler.ports.StaleRolloutError`. A first save (nothing stored) carries a
    ``resourceVersion`` no object can have: the API server ignores ``resourceVersion`` when
    an apply creates a ConfigMap, and refuses the apply if someone else created it first
    (both checked against a real API server by the integration tests). A server that
    refused the ``resourceVersion`` on creation would fail the first save with a
    :class:`~reconciler.ports.RolloutStoreError` naming the ConfigMap, never overwrite.

    Errors of the target (unreachable, forbidden…) become ``RolloutStoreError`` naming the
    ConfigMap and the server (the target's ``server``, when it has one).
    """

    def __init__(self, target: Target, *, namespace: str = STATE_NAMESPACE,
                 name: str = "default") -> None:
        self.target, self.namespace, self.name = target, namespace, name
        self._namespace_ready = False

    def _server(self) -> str:
        return self.target.server

    def describe(self) -> str:
        server = self._server()
        return (f"rollout ConfigMaps {self.namespace}/{CONFIG_MAP_PREFIX}{self.name}.*"
                + (f" on {server}" if server else ""))

    def config_map_name(self, namespace: str, service: str) -> str:
        """The ConfigMap that holds the rollout of ``namespace/service``."""
        return (f"{CONFIG_MAP_PREFIX}{_check_label('reconciler name', self.name, dots=True)}."
                f"{_check_label('namespace', namespace)}.{_check_label('service', service)}")

    def _failed(self, doing: str, name: str, exc: TargetError) -> RolloutStoreError:
        server = self._server()
        on = f" on {server}" if server and server not in str(exc) else ""
        return RolloutStoreError(f"cannot {doing} ConfigMap {self.namespace}/{name}{on}: "
                                 f"{exc}")

    # --- reading ------------------------------------------------------------------------

    def _read(self, name: str) -> tuple[dict[str, Any], StoredRollout] | None:
        try:
            found = self.target.get(CONFIG_MAP.key(self.namespace, name))
        except TargetError as exc:
            raise self._failed("read rollout state", name, exc) from exc
        if found is None:
            return None
        server = self._server()
        where = f"ConfigMap {self.namespace}/{name}" + (f" on {server}" if server else "")
        fix = f"fix or delete it (kubectl -n {self.namespace} delete configmap {name})"
        text = (found.get("data") or {}).get(_DATA_KEY)
        if not isinstance(text, str):
            raise _unreadable(where, fix, f"no {_DATA_KEY!r} in its data")
        return found, _decode(text, where=where, fix=fix)

    def load(self, namespace: str, service: str) -> StoredRollout | None:
        found = self._read(self.config_map_name(namespace, service))
        return None if found is None else found[1]

    def list_rollouts(self) -> list[StoredRollout]:
        """This reconciler's rollouts (by label), sorted by namespace and service."""
        try:
            items = self.target.list(CONFIG_MAP, self.namespace, metadata_only=True)
        except TargetError as exc:
            raise self._failed("list rollout state", f"{CONFIG_MAP_PREFIX}{self.name}.*",
                               exc) from exc
        names = []
        for item in items:
            meta = item.get("metadata") or {}
            labels = meta.get("labels") or {}
            if labels.get(OWNER_LABEL) == self.name and labels.get(ROLE_LABEL) == _ROLE:
                names.append(str(meta.get("name")))
        found = [s[1] for s in (self._read(n) for n in sorted(names)) if s is not None]
        return sorted(found, key=lambda s: s.state.key)

    # --- writing ------------------------------------------------------------------------

    def save(self, state: RolloutState, *, expected_generation: int | None) -> int:
        name = self.config_map_name(state.namespace, state.service)
        current = self._read(name)
        generation = _check_generation(
            state, None if current is None else current[1].generation, expected_generation)
        meta: dict[str, Any] = {
            "name": name, "namespace": self.namespace,
            "labels": {**state_labels(self.name, _ROLE),
                       "meshdsl.io/rollout-namespace": state.namespace,
                       "meshdsl.io/rollout-service": state.service}}
        if current is None:
            meta["resourceVersion"] = _NO_OBJECT_YET
        else:
            read = current[0]["metadata"]
            meta["resourceVersion"], meta["uid"] = read["resourceVersion"], read["uid"]
        manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                    "data": {_DATA_KEY: _encode(state, generation)}}
        try:
            if current is None and not self._namespace_ready:
                ensure_namespace(self.target, self.namespace)
                self._namespace_ready = True
            # force: the fields are ours even if someone edited them (the resourceVersion
            # guards against that), so a 409 can only be the precondition
            self.target.apply(manifest, force=True)
        except ObjectRejected as exc:
            if not exc.conflict:
                raise self._failed("write rollout state", name, exc) from exc
            raise StaleRolloutError(
                f"rollout {state.namespace}/{state.service} changed in ConfigMap "
                f"{self.namespace}/{name} while generation {generation} was being written: "
                "someone else changed it; reload and retry") from exc
        except TargetError as exc:
            raise self._failed("write rollout state", name, exc) from exc
        return generation

    def delete(self, namespace: str, service: str) -> None:
        name = self.config_map_name(namespace, service)
        try:
            self.target.delete(CONFIG_MAP.key(self.namespace, name))
        except TargetError as exc:
            raise self._failed("delete rollout state", name, exc) from exc


def beside(store: object, name: str) -> DiskRolloutStore | ClusterRolloutStore | None:
    """The rollout store that lives with reconciler ``name``'s status store: its state
    directory's ``rollouts`` for a :class:`DiskStore`, ConfigMaps in the same namespace
    for a :class:`ClusterStore`; None for any other store."""
    if isinstance(store, ClusterStore):
        return ClusterRolloutStore(store.target, namespace=store.namespace, name=name)
    if isinstance(store, DiskStore):
        return DiskRolloutStore.in_state_dir(store.directory)
    return None

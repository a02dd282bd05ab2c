"""Which weights a ``pulumi up`` deploys for canaried services, so it never resets a
canary behind the reconciler's back.

During a rollout the reconciler owns the weights of the canaried service's route; it keeps
them in its rollout state. Pulumi reads that state (through :class:`RolloutStateReader`)
and deploys the *current* weights instead of the program's, and says so. With
``canary: false`` a service with no rollout in progress sends everything to its stable
version.

Adapters, one per form of ``meshdsl:rollout_state`` (:mod:`stacks.settings`):

* :class:`StoreRolloutState` reads the reconciler's own
  :class:`~reconciler.ports.RolloutStore`: a state directory
  (:class:`~reconciler.runtime.rollout_store.DiskRolloutStore`, :func:`state_dir_rollouts`)
  or, through :class:`ClusterRolloutState`, the ConfigMaps of a reconciler on the cluster
  (:class:`~reconciler.runtime.rollout_store.ClusterRolloutStore`). A rollout is in
  progress while its phase is neither idle nor finished (succeeded, failed); its weights
  are the ones the reconciler last asked for.
* :class:`JsonRolloutState` reads a JSON file, in the format a rollout store's
  ``export_stack_state`` writes (nothing writes it on its own)::

    {"rollouts": {"default/frontend": {"weights": {"v1": 90, "v2": 10},
                                       "phase": "progressing"}}}

  keyed ``<namespace>/<service>`` as deployed (after ``meshdsl:namespaces``); any other
  field of an entry is ignored. The file is only as fresh as whoever wrote it.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from meshdsl.compile.manifest import CONFIG_MAP
from meshdsl.model.spec import MeshSpec
from reconciler.delivery.routes import ServiceKey
from reconciler.ports import RolloutStore, RolloutStoreError, TargetError
from reconciler.runtime.rollout_store import (
    CONFIG_MAP_PREFIX,
    SUBDIRECTORY,
    ClusterRolloutStore,
    DiskRolloutStore,
)
from reconciler.runtime.status import OWNER_LABEL, STATE_NAMESPACE
from stacks.errors import RolloutStateError

if TYPE_CHECKING:
    from reconciler.targets.kube import KubeTarget

Split = dict[str, int]


class RolloutStateReader(Protocol):
    """Where a stack learns the weights of rollouts in progress."""

    def current_weights(self) -> Mapping[ServiceKey, Mapping[str, int]]:
        """Subset weights of every rollout in progress, by (namespace, service)."""
        ...


@dataclass(frozen=True)
class JsonRolloutState:
    """The rollout state as a JSON file (see the module docstring for the format).

    A missing file is an error, not "no rollouts": a mistyped path must not reset a canary.
    """

    path: Path

    def current_weights(self) -> Mapping[ServiceKey, Mapping[str, int]]:
        where = str(self.path)
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError as exc:
            raise RolloutStateError(
                f"rollout state {where} does not exist; point meshdsl:rollout_state at the "
                "reconciler's state directory (its --state-dir), a rollout state file, or "
                "cluster:<reconciler name>, or remove the setting if no reconciler runs "
                "rollouts for this stack") from exc
        except (OSError, ValueError) as exc:
            raise RolloutStateError(f"cannot read rollout state {where}: {exc}") from exc
        rollouts = data.get("rollouts", {}) if isinstance(data, dict) else None
        if not isinstance(rollouts, dict):
            raise RolloutStateError(f"{where}: expected {{\"rollouts\": {{\"<namespace>/"
                                    "<service>\": {\"weights\": {...}}}}}")
        out: dict[ServiceKey, Split] = {}
        for key, entry in rollouts.items():
            ns, sep, name = str(key).partition("/")
            weights = entry.get("weights") if isinstance(entry, dict) else None
            if not sep or not ns or not name:
                raise RolloutStateError(f"{where}: rollout {key!r} is not '<namespace>/"
                                        "<service>'")
            if not isinstance(weights, dict) or not all(
                    isinstance(w, int) and not isinstance(w, bool) for w in weights.values()):
                raise RolloutStateError(f"{where}: rollout {key!r} needs \"weights\": "
                                        "{subset: integer percent}")
            out[(ns, name)] = {str(subset): int(w) for subset, w in weights.items()}
        return out


@dataclass(frozen=True)
class StoreRolloutState:
    """The rollouts in progress in a reconciler's :class:`~reconciler.ports.RolloutStore`
    (disk or cluster); ``source`` says where, for errors."""

    store: RolloutStore
    source: str

    def current_weights(self) -> Mapping[ServiceKey, Mapping[str, int]]:
        try:
            stored = self.store.list_rollouts()
        except RolloutStoreError as exc:
            raise RolloutStateError(f"cannot read the rollouts in {self.source}: {exc}"
                                    ) from exc
        return {s.state.key: s.state.traffic.weights for s in stored if s.state.active}


def state_dir_rollouts(state_dir: Path) -> StoreRolloutState:
    """The rollouts of a reconciler's state directory (``<state_dir>/rollouts``). A
    missing directory is an error, like a missing file; a state directory without
    ``rollouts/`` has none yet. The rollouts directory itself is refused (read as a state
    directory it would have no rollouts, and the update would reset them)."""
    if not state_dir.is_dir():
        raise RolloutStateError(
            f"reconciler state directory {state_dir} does not exist; point "
            "meshdsl:rollout_state at the reconciler's state directory (its --state-dir), a "
            "rollout state file, or cluster:<reconciler name>, or remove the setting if no "
            "reconciler runs rollouts for this stack")
    store = DiskRolloutStore.in_state_dir(state_dir)
    if not store.directory.exists() and any(state_dir.glob("*/*.json")):
        raise RolloutStateError(
            f"{state_dir} holds rollout files but no {SUBDIRECTORY}/ directory: it looks like "
            f"the {SUBDIRECTORY}/ directory of a state directory; point "
            f"meshdsl:rollout_state at the state directory itself ({state_dir.parent})")
    return StoreRolloutState(store, store.describe())


@contextlib.contextmanager
def _kubeconfig_file(kubeconfig: str | None) -> Iterator[str | None]:
    """A path for ``kubeconfig``, which, like the provider's ``kubernetes:kubeconfig``,
    is a path or the kubeconfig itself (then written to a private temporary file for the
    time of the read)."""
    if kubeconfig is None or not _inline(kubeconfig):
        yield None if kubeconfig is None else str(Path(kubeconfig).expanduser())
        return
    with tempfile.TemporaryDirectory(prefix="meshdsl-kubeconfig-") as tmp:
        path = Path(tmp) / "kubeconfig"
        path.write_text(kubeconfig)
        path.chmod(0o600)
        yield str(path)


def _inline(kubeconfig: str) -> bool:
    return "\n" in kubeconfig or kubeconfig.lstrip().startswith("{")


@dataclass(frozen=True)
class ClusterRolloutState:
    """The rollouts reconciler ``name`` keeps in ConfigMaps in ``namespace``
    (:class:`~reconciler.runtime.rollout_store.ClusterRolloutStore`), read through a
    connection opened for the read, like the stack's provider (``kubeconfig``: a path or
    the kubeconfig itself; None: ``$KUBECONFIG``, ``~/.kube/config``).

    A namespace with no ConfigMap of that reconciler at all (none of its status, none of
    its rollouts) is an error, like a missing state directory: a mistyped name or
    namespace must not read as "no rollouts" and reset a canary."""

    name: str = "default"
    namespace: str = STATE_NAMESPACE
    kubeconfig: str | None = None
    context: str | None = None

    def describe(self) -> str:
        if self.kubeconfig is None:
            via = "the default kubeconfig"
        elif _inline(self.kubeconfig):
            via = "the kubeconfig in kubernetes:kubeconfig"
        else:
            via = f"kubeconfig {self.kubeconfig}"
        context = f", context {self.context}" if self.context else ""
        return (f"rollout ConfigMaps {self.namespace}/{CONFIG_MAP_PREFIX}{self.name}.* "
                f"(reconciler {self.name!r}, through {via}{context})")

    def current_weights(self) -> Mapping[ServiceKey, Mapping[str, int]]:
        from reconciler.targets.kube import KubeTarget

        with _kubeconfig_file(self.kubeconfig) as path:
            try:
                target = KubeTarget.from_kubeconfig(path, context=self.context)
            except TargetError as exc:
                raise RolloutStateError(f"cannot read {self.describe()}: {exc}") from exc
            with target:
                self._check_reconciler(target)
                store = ClusterRolloutStore(target, namespace=self.namespace, name=self.name)
                return StoreRolloutState(store, store.describe()).current_weights()

    def _check_reconciler(self, target: KubeTarget) -> None:
        try:
            items = target.list(CONFIG_MAP, self.namespace, metadata_only=True)
        except TargetError as exc:
            raise RolloutStateError(f"cannot read {self.describe()} on {target.server}: "
                                    f"{exc}") from exc
        if any(((item.get("metadata") or {}).get("labels") or {}).get(OWNER_LABEL)
               == self.name for item in items):
            return
        raise RolloutStateError(
            f"no reconciler named {self.name!r} keeps state in namespace {self.namespace} on "
            f"{target.server} (no ConfigMap labelled {OWNER_LABEL}={self.name}); give "
            "meshdsl:rollout_state cluster:<the name of meshctl reconcile --name> and "
            "meshdsl:system_namespace <its --system-namespace>, or remove "
            "meshdsl:rollout_state if no reconciler runs rollouts for this stack")


class Level(StrEnum):
    INFO = "info"
    WARNING = "warning"


@dataclass(frozen=True)
class Note:
    """Something ``pulumi up`` must tell the user about the weights it deploys."""

    level: Level
    message: str


@dataclass(frozen=True)
class WeightPlan:
    """Weights to pass to ``compile_mesh`` (empty: the program's own) and why."""

    weights: dict[ServiceKey, Split] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)


def _split(weights: Mapping[str, int]) -> str:
    return ", ".join(f"{subset}={weight}%" for subset, weight in weights.items())


def plan_weights(spec: MeshSpec, *, canary: bool,
                 rollouts: Mapping[ServiceKey, Mapping[str, int]] | None,
                 source: str = "the rollout state") -> WeightPlan:
    """Rollouts in progress keep their weights; with ``canary`` off, every other canaried
    service goes to its stable version. ``rollouts`` is None when no rollout state is
    configured (then a stack with canaries is warned that it cannot see one). Raises
    :class:`RolloutStateError` when the state does not fit the program (unknown subsets,
    weights not summing to 100)."""
    weights: dict[ServiceKey, Split] = {}
    notes: list[Note] = []
    if rollouts is None and canary and spec.canaries:
        canaried = ", ".join(f"{p.namespace}/{p.service}" for p in spec.canaries)
        notes.append(Note(Level.WARNING, (
            f"the program has canaries ({canaried}) but meshdsl:rollout_state is not set, so "
            "this update cannot see a rollout in progress: the program's weights are "
            "deployed. Should the reconciler be mid-rollout, the update stops at a "
            "server-side apply conflict on the route rather than reset it; set "
            "meshdsl:rollout_state to keep the rollout's weights")))
    for (ns, name), split in sorted((rollouts or {}).items()):
        svc = spec.service(ns, name)
        if svc is None:
            notes.append(Note(Level.WARNING, f"{source} has a rollout of {ns}/{name}, which "
                                             "this stack does not deploy; ignored"))
            continue
        unknown = sorted(set(split) - set(svc.version_names()))
        if unknown:
            raise RolloutStateError(
                f"{source}: the rollout of {ns}/{name} weights {', '.join(unknown)}, which "
                f"the program does not declare (versions: "
                f"{', '.join(svc.version_names()) or 'none'})")
        if sum(split.values()) != 100 or any(w < 0 for w in split.values()):
            raise RolloutStateError(f"{source}: the weights of {ns}/{name} ({_split(split)}) "
                                    "must be 0 or more and add up to 100")
        weights[(ns, name)] = dict(split)
        notes.append(Note(Level.INFO, (
            f"{ns}/{name} is mid-rollout: keeping the rollout's current weights "
            f"{_split(split)} from {source} instead of the program's; the reconciler owns "
            "them until the rollout ends")))
        if not canary:
            notes.append(Note(Level.WARNING, (
                f"canary is off for this stack, but {ns}/{name} has a rollout in progress; "
                "its weights are kept, not reset: finish or abort the rollout first")))
    if not canary:
        for plan in spec.canaries:
            key = (plan.namespace, plan.service)
            if key in weights:
                continue
            weights[key] = {plan.stable: 100}
            notes.append(Note(Level.INFO, f"canary is off for this stack: "
                                          f"{plan.namespace}/{plan.service} sends all "
                                          f"traffic to its stable version {plan.stable}"))
    return WeightPlan(weights=weights, notes=notes)

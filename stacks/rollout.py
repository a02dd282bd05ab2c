"""Which weights a ``pulumi up`` deploys for canaried services, so it never resets a
canary behind the reconciler's back.

During a rollout the reconciler owns the weights of the canaried service's route; it keeps
them in its rollout state. Pulumi reads that state (through :class:`RolloutStateReader`)
and deploys the *current* weights instead of the program's, and says so. With
``canary: false`` a service with no rollout in progress sends everything to its stable
version.

The local adapter reads a JSON file (``meshdsl:rollout_state``)::

    {"rollouts": {"default/frontend": {"weights": {"v1": 90, "v2": 10},
                                       "phase": "progressing"}}}

keyed ``<namespace>/<service>`` as deployed (after ``meshdsl:namespaces``); any other
field of an entry is ignored. The reconciler removes an entry when its rollout ends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from meshdsl.model.spec import MeshSpec
from stacks.errors import RolloutStateError

Split = dict[str, int]
ServiceKey = tuple[str, str]


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
                "file the reconciler keeps, or remove the setting if no reconciler runs "
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

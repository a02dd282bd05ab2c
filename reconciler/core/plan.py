"""What to do, in which order: the plan of one reconcile, computed from data alone.

Input: the desired manifests, the live objects (as read from the target) and the recorded
inventory. Output: ordered :class:`Step`\\ s of :class:`Action`\\ s. Actions inside one step
do not depend on each other (the runtime may run them in parallel); steps run in order:

1. *inventory*: record new objects **before** creating them, so a run that dies half-way
   leaves nothing the next run does not know to be ours;
2. creates and updates in :data:`~meshdsl.compile.manifest.KIND_ORDER` — Namespaces, then
   Services and Deployments, then DestinationRules *before* the VirtualServices that use
   their new subsets (make before break);
3. deletions in reverse order (VirtualServices before the DestinationRules and Services
   they route to); just before DestinationRules are deleted, the DestinationRule updates
   that *drop* subsets run — only now has every VirtualService stopped using them. A
   DestinationRule that both adds and drops subsets is written twice: first with both the
   new and the old subsets (a *bridge*, before the VirtualServices), then as declared;
4. *inventory*: the final record (without the pruned objects).

Only objects that differ are written (see :mod:`reconciler.core.diff`), so an unchanged
mesh plans zero writes. Before any step is planned, every desired object must be inside the
mesh's fence (:mod:`reconciler.core.tenancy`) and every one that exists must be ours or
explicitly adopted (:mod:`reconciler.core.ownership`) — otherwise the plan is refused as a
whole. Pruning deletes owned objects only (in the inventory *and* labelled ours) and
refuses to delete *everything* without ``allow_empty``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from meshdsl.compile.manifest import KIND_ORDER, MANAGED_BY, MANAGER, Manifest, ResourceKey
from reconciler.core import diff
from reconciler.core.errors import DuplicateObjectError, EmptyDesiredError
from reconciler.core.inventory import (
    INVENTORY_NAMESPACE,
    Inventory,
    Ownership,
    inventory_key,
    ownership,
)
from reconciler.core.ownership import (
    DEFAULT_OWNER,
    NotOwnedError,
    Refusal,
    adopts,
    describe_owner,
    with_owner,
)
from reconciler.core.proof import settled
from reconciler.core.tenancy import Policy
from reconciler.core.tenancy import check as check_tenancy

__all__ = ["Action", "Drift", "Plan", "Step", "Verb", "make_plan"]

FIELD_MANAGER = "meshdsl"
_DESTINATION_RULE = "DestinationRule"
_NAMESPACE = "Namespace"
_UNKNOWN_ORDER = 50


class Verb(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Action:
    """One write. ``manifest`` is what to apply (stamped with its hash); ``live`` is the
    object as read (``None`` for a create). ``force`` takes over conflicting fields —
    only for objects the inventory says are ours, or on explicit request."""

    verb: Verb
    key: ResourceKey
    manifest: Manifest | None = None
    live: Manifest | None = None
    force: bool = False
    reason: str = ""
    internal: bool = False     # inventory bookkeeping, not one of the mesh's objects
    bridge: bool = False       # an intermediate DestinationRule (old + new subsets)
    remove: tuple[diff.FieldPath, ...] = ()   # heal: fields others added, to delete

    def __str__(self) -> str:
        return f"{self.verb.value} {self.key}" + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True)
class Step:
    name: str
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class Drift:
    """A live object someone else changed. ``healed``: this plan writes it back."""

    key: ResourceKey
    mismatches: tuple[diff.Mismatch, ...]
    foreign: dict[str, list[diff.FieldPath]]
    healed: bool

    def describe(self) -> str:
        parts = [str(m) for m in self.mismatches]
        parts += [f"{', '.join(diff.dotted(p) for p in paths)} added by {who!r}"
                  for who, paths in self.foreign.items()]
        return "; ".join(parts)


@dataclass(frozen=True)
class Plan:
    mesh: str
    steps: tuple[Step, ...]
    unchanged: tuple[ResourceKey, ...] = ()
    drift: tuple[Drift, ...] = ()
    strays: tuple[ResourceKey, ...] = ()      # our labels, not in the inventory: left alone
    disowned: tuple[ResourceKey, ...] = ()    # in the inventory, our labels gone: left alone
    leftovers: tuple[ResourceKey, ...] = ()   # owned, no longer desired, not pruned
    notes: tuple[str, ...] = ()
    inventory: Inventory | None = None        # the record after this plan ran
    desired_count: int = 0

    @property
    def actions(self) -> list[Action]:
        return [a for step in self.steps for a in step.actions]

    @property
    def visible(self) -> list[Action]:
        """The mesh's own writes (no inventory bookkeeping)."""
        return [a for a in self.actions if not a.internal]

    def count(self, verb: Verb) -> int:
        """Objects (not requests) with this verb: a bridged DestinationRule is one update."""
        return len({a.key for a in self.visible if a.verb is verb})

    @property
    def has_changes(self) -> bool:
        """Would applying change anything the mesh declares (or is there drift to report)?"""
        return bool(self.visible) or bool(self.drift)


def _order(kind: str) -> int:
    return KIND_ORDER.get(kind, _UNKNOWN_ORDER)


def _subset_names(manifest: Mapping[str, Any] | None) -> list[str]:
    subsets = ((manifest or {}).get("spec") or {}).get("subsets") or []
    return [str(s.get("name")) for s in subsets if isinstance(s, Mapping)]


def _bridge(desired: Manifest, live: Manifest) -> Manifest | None:
    """The DestinationRule to write before VirtualServices move: the declared one plus the
    subsets it drops. ``None`` when no bridge is needed (nothing dropped, or nothing new)."""
    want, have = _subset_names(desired), _subset_names(live)
    dropped = [n for n in have if n not in want]
    if not dropped or not [n for n in want if n not in have]:
        return None
    keep = [s for s in (live.get("spec") or {}).get("subsets") or []
            if isinstance(s, Mapping) and s.get("name") in dropped]
    spec = dict(desired.get("spec") or {})
    spec["subsets"] = [*(spec.get("subsets") or []), *keep]
    return diff.stamped({**desired, "spec": spec})


def _drops_subsets(desired: Manifest, live: Manifest | None) -> bool:
    want = set(_subset_names(desired))
    return any(n not in want for n in _subset_names(live))


def _index(desired: Sequence[Manifest]) -> dict[ResourceKey, Manifest]:
    out: dict[ResourceKey, Manifest] = {}
    for manifest in desired:
        key = ResourceKey.of(manifest)
        if key in out:
            raise DuplicateObjectError(f"{key} is declared twice; names must be unique per "
                                       "kind and namespace")
        out[key] = manifest
    return out


@dataclass
class _Builder:
    mesh: str
    live: Mapping[ResourceKey, Manifest]
    owned: Ownership
    heal: bool
    adopt: frozenset[str]
    manager: str
    proven: Collection[ResourceKey]
    applies: list[Action] = field(default_factory=list)
    cleanups: list[Action] = field(default_factory=list)   # fields others added
    finals: list[Action] = field(default_factory=list)     # DR subset drops, after VSs
    deletes: list[Action] = field(default_factory=list)
    unchanged: list[ResourceKey] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)

    def desired(self, key: ResourceKey, manifest: Manifest) -> None:
        if key in self.proven:
            self.unchanged.append(key)
            return
        want = diff.stamped(manifest)
        live = self.live.get(key)
        if live is not None and settled(want, live, manager=self.manager):
            self.unchanged.append(key)
            return
        result = diff.compare(want, live, manager=self.manager)
        if live is None:
            self.applies.append(Action(Verb.CREATE, key, want, None, force=False,
                                       reason="recreate: deleted by someone else"
                                       if key in self.owned.gone else ""))
            return
        if key not in self.owned.owned:  # not ours by both tests: refused unless adopted
            if adopts(self.adopt, key):
                self._update(key, want, live, force=True,
                             reason="adopt: taken over as explicitly asked")
            else:
                self.refusals.append(Refusal(key, describe_owner(live),
                                             key in self.owned.unlabelled))
            return
        if result.mismatches or result.foreign:
            self.drift.append(Drift(key, result.mismatches, result.foreign, self.heal))
        written = False
        if result.state is diff.ObjectState.CHANGED or (self.heal and result.mismatches):
            reason = "" if result.state is diff.ObjectState.CHANGED else "drift"
            self._update(key, want, live, force=True, reason=reason)
            written = True
        if self.heal and result.foreign:
            paths = diff.outermost(p for ps in result.foreign.values() for p in ps)
            who = ", ".join(repr(name) for name in result.foreign)
            self.cleanups.append(Action(Verb.UPDATE, key, None, live, remove=tuple(paths),
                                        reason=f"drift: remove fields added by {who}"))
            written = True
        if not written:
            self.unchanged.append(key)

    def _update(self, key: ResourceKey, want: Manifest, live: Manifest, *,
                force: bool, reason: str) -> None:
        final = Action(Verb.UPDATE, key, want, live, force=force, reason=reason)
        if key.kind != _DESTINATION_RULE or not _drops_subsets(want, live):
            self.applies.append(final)
            return
        bridge = _bridge(want, live)
        if bridge is not None:
            self.applies.append(Action(Verb.UPDATE, key, bridge, live, force=force,
                                       reason="bridge: old and new subsets", bridge=True))
        self.finals.append(final)

    def prune(self, desired: Mapping[ResourceKey, Manifest],
              tenancy: Policy | None) -> list[ResourceKey]:
        """Delete owned objects no longer desired (inside the fence); returns the ones kept
        back."""
        doomed = {k for k in self.owned.owned if k not in desired}
        kept: list[ResourceKey] = []
        for key in sorted(doomed, key=lambda k: (-_order(k.kind), k)):
            outside = tenancy.why_not(key) if tenancy is not None else None
            if outside is not None:
                self.notes.append(f"kept {key}: it {outside}")
                kept.append(key)
                continue
            if key.kind == _NAMESPACE and not key.group:
                # deleting a Namespace deletes everything in it, whoever made it: never
                # pruned (and the install's RBAC grants no namespace delete)
                self.notes.append(f"kept {key}: namespaces are never pruned; delete it by "
                                  "hand once it is empty")
                kept.append(key)
                continue
            self.deletes.append(Action(Verb.DELETE, key, None, self.live[key],
                                       reason="prune"))
        return kept


def _group(actions: Sequence[Action], name: str, *, reverse: bool = False) -> list[Step]:
    kinds = sorted({a.key.kind for a in actions}, key=lambda k: (_order(k), k), reverse=reverse)
    return [Step(f"{name} {kind}", tuple(sorted((a for a in actions if a.key.kind == kind),
                                                key=lambda a: a.key)))
            for kind in kinds]


def _inventory_step(record: Inventory, namespace: str, *, namespace_exists: bool,
                    current: Manifest | None, exists: bool, name: str) -> list[Step]:
    """The record's write, after its Namespace (a step of its own: the actions of one step
    run in parallel, and the ConfigMap cannot be created before its Namespace)."""
    steps: list[Step] = []
    if not namespace_exists:
        ns = {"apiVersion": "v1", "kind": _NAMESPACE,
              "metadata": {"name": namespace, "labels": {MANAGED_BY: MANAGER}}}
        steps.append(Step(f"{name}: namespace", (Action(
            Verb.CREATE, ResourceKey("", _NAMESPACE, "", namespace), ns, internal=True,
            reason="holds the inventory"),)))
    steps.append(Step(name, (Action(Verb.UPDATE if exists else Verb.CREATE,
                                    inventory_key(record.mesh, namespace),
                                    record.to_manifest(namespace), current, force=True,
                                    internal=True, reason="inventory"),)))
    return steps


def make_plan(
    desired: Sequence[Manifest],
    live: Mapping[ResourceKey, Manifest],
    recorded: Inventory | None,
    *,
    mesh: str,
    prune: bool = False,
    allow_empty: bool = False,
    heal: bool = True,
    adopt: Collection[str] = (),
    manager: str = FIELD_MANAGER,
    inventory_namespace: str = INVENTORY_NAMESPACE,
    proven: Collection[ResourceKey] = (),
    owner: str = DEFAULT_OWNER,
    tenancy: Policy | None = None,
) -> Plan:
    """Plan one reconcile of ``mesh``.

    ``live`` holds the live objects of every kind and namespace that ``desired`` and
    ``recorded`` mention, plus every Namespace (keyed by :class:`ResourceKey`).
    ``recorded`` is the inventory as read from the cluster (``None``: there is none yet).
    ``heal`` writes drifted objects back. ``owner`` is the reconciler's name: every desired
    object is labelled for this mesh and owner. An existing object that is not ours raises
    :class:`~reconciler.core.ownership.NotOwnedError` unless ``adopt`` names it
    (``Kind/namespace/name``); ``tenancy`` (when given) raises
    :class:`~reconciler.core.tenancy.TenancyError` for any object outside the fence —
    both before a single step is planned.
    ``proven``: keys the caller already found :func:`~reconciler.core.proof.settled` for
    these very manifests; they are unchanged without a second look (their ``live`` entry
    may be metadata only).
    """
    wanted = _index([with_owner(m, mesh, owner) for m in desired])
    check_tenancy(mesh, list(wanted.values()), tenancy)
    inv_key = inventory_key(mesh, inventory_namespace)
    owned = ownership(recorded, {k: v for k, v in live.items() if k != inv_key}, mesh, owner)
    builder = _Builder(mesh, live, owned, heal, frozenset(adopt), manager, frozenset(proven))
    for key, manifest in wanted.items():
        builder.desired(key, manifest)
    if builder.refusals:
        raise NotOwnedError(mesh, builder.refusals)

    leftovers: list[ResourceKey] = []
    if prune:
        if owned.owned and not allow_empty and not owned.owned & wanted.keys():
            raise EmptyDesiredError(mesh, len(owned.owned))
        leftovers = builder.prune(wanted, tenancy)
    else:
        leftovers = sorted(k for k in owned.owned if k not in wanted)

    # The record: before any write, everything that is or will be ours; at the end, what
    # is left. An unchanged set is not rewritten.
    declared = Inventory.of(mesh, wanted.values())
    before = recorded if recorded is not None else Inventory(mesh, frozenset())
    staying = set(leftovers) | (set() if prune else owned.unlabelled)
    kept = Inventory(mesh, frozenset(e for e in before.entries if e.key in staying))
    final = kept.union(declared)
    pre = before.union(declared)
    ns_exists = ResourceKey("", _NAMESPACE, "", inventory_namespace) in live
    current = live.get(inv_key)
    steps: list[Step] = []
    recorded_now = current is not None
    if pre.entries != before.entries:
        steps.extend(_inventory_step(pre, inventory_namespace, namespace_exists=ns_exists,
                                     current=current, exists=recorded_now,
                                     name="record inventory"))
        before, ns_exists, recorded_now = pre, True, True
    steps += _group(builder.applies, "apply")
    if builder.cleanups:
        steps.append(Step("heal: remove fields added by others",
                          tuple(sorted(builder.cleanups, key=lambda a: a.key))))
    deletions = _group(builder.deletes, "prune", reverse=True)
    boundary = _order(_DESTINATION_RULE)
    steps += [s for s in deletions if _order(s.actions[0].key.kind) > boundary]
    if builder.finals:
        steps.append(Step("apply DestinationRule (drop subsets)",
                          tuple(sorted(builder.finals, key=lambda a: a.key))))
    steps += [s for s in deletions if _order(s.actions[0].key.kind) <= boundary]
    if final.entries != before.entries:
        steps.extend(_inventory_step(final, inventory_namespace, namespace_exists=ns_exists,
                                     current=current,
                                     exists=recorded_now,
                                     name="update inventory"))
    return Plan(
        mesh=mesh,
        steps=tuple(steps),
        unchanged=tuple(sorted(builder.unchanged)),
        drift=tuple(sorted(builder.drift, key=lambda d: d.key)),
        strays=tuple(sorted(owned.strays - wanted.keys())),
        disowned=tuple(sorted(owned.unlabelled - wanted.keys())),
        leftovers=tuple(leftovers),
        notes=tuple(builder.notes),
        inventory=final,
        desired_count=len(wanted),
    )

"""Drive a :class:`~reconciler.ports.Target` through one reconcile: observe, plan, dry run,
write — the I/O around the pure :mod:`reconciler.core`.

1. *observe*: read the inventory record, then LIST every kind in every namespace the desired
   set or the record mentions (plus all Namespaces) as *metadata only* — a few requests, not
   one per object. Metadata proves an unchanged object unchanged
   (:func:`reconciler.core.proof.settled`); only the others are read whole;
2. *plan*: :func:`reconciler.core.plan.make_plan` (pure);
3. *dry run*: every write of the plan goes to the server with ``dryRun=All`` first, so its
   validation (CRD schemas, immutable fields, RBAC, field conflicts) runs before anything
   is written; any rejected object fails the whole apply with one line per object;
4. *write*: step by step in the plan's order; the actions of one step run on a small
   thread pool.

The thread pool is one per process and per width (:func:`workers`), made on first use and
reused by every apply and diff: a reconciler applies every few seconds for months, and a
pool per call would start and end threads (and, with per-thread resources in a target,
leak them) at every pass.

Before each write, an optional *fence* (``Options.fence``) is asked whether writing is still
allowed; a leader that lost its Lease says no, and the apply stops at that write with
:class:`FencedError` (earlier steps stay done; the new leader finishes the plan).

An unchanged mesh costs the reads of step 1 and zero writes. A run that fails half-way
leaves the inventory recording everything it may have created, so the next run finishes it.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from meshdsl.compile.manifest import NAMESPACE, GroupKind, Manifest, ResourceKey
from reconciler.core import diff as core_diff
from reconciler.core.inventory import INVENTORY_NAMESPACE, Inventory, inventory_key
from reconciler.core.ownership import DEFAULT_OWNER, with_owner
from reconciler.core.plan import FIELD_MANAGER, Action, Plan, Verb, make_plan
from reconciler.core.proof import settled
from reconciler.core.tenancy import Policy
from reconciler.core.tenancy import check as check_tenancy
from reconciler.errors import ReconcilerError
from reconciler.ports import ObjectRejected, Target

__all__ = [
    "ApplyError",
    "ApplyResult",
    "FencedError",
    "ManifestError",
    "ObjectDiff",
    "Observed",
    "Options",
    "Outcome",
    "RejectedError",
    "apply",
    "diff",
    "dry_run",
    "execute",
    "observe",
    "plan",
    "workers",
]

T = TypeVar("T")
_SUBSTITUTE_NAMESPACE = "default"
_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_GUARD = threading.Lock()


def workers(width: int) -> ThreadPoolExecutor:
    """The process's thread pool of ``width`` threads (made once, shared by every apply).

    Calls share it safely: no task submits to the pool it runs on, so a busy pool only
    queues, it cannot deadlock."""
    width = max(1, width)
    with _POOLS_GUARD:
        pool = _POOLS.get(width)
        if pool is None:
            pool = _POOLS[width] = ThreadPoolExecutor(
                max_workers=width, thread_name_prefix=f"meshdsl-apply{width}")
        return pool


class ApplyError(ReconcilerError):
    """Root of the errors of this module (the target's own errors pass through)."""


class ManifestError(ApplyError):
    """A desired manifest cannot be applied as written (e.g. no namespace)."""


class FencedError(ApplyError):
    """The fence refused a write (leadership lost): the apply stopped before it."""


class RejectedError(ApplyError):
    """The dry run rejected one or more objects; nothing was written."""

    def __init__(self, rejected: Sequence[tuple[Action, ObjectRejected]], mesh: str) -> None:
        self.rejected = list(rejected)
        self.lines = [_rejection_line(action, err, mesh) for action, err in self.rejected]
        super().__init__(f"{len(self.lines)} object(s) rejected by the server; nothing was "
                         "written:\n" + "\n".join(self.lines))


def _rejection_line(action: Action, err: ObjectRejected, mesh: str) -> str:
    line = err.about(str(action.key))
    return line


@dataclass(frozen=True)
class Options:
    prune: bool = False
    allow_empty: bool = False
    heal: bool = True
    adopt: frozenset[str] = frozenset()     # Kind/namespace/name: existing objects to take over
    dry_run: bool = False
    workers: int = 8
    inventory_namespace: str = INVENTORY_NAMESPACE
    fence: Callable[[], bool] | None = None   # False: stop before the next write
    owner: str = DEFAULT_OWNER               # the reconciler's name, on every object's labels
    tenancy: Policy | None = None            # the fence; None: not checked (library use)


@dataclass(frozen=True)
class Observed:
    live: dict[ResourceKey, Manifest]
    recorded: Inventory | None
    proven: frozenset[ResourceKey] = frozenset()   # settled: unchanged, seen from metadata

    @property
    def namespaces(self) -> set[str]:
        return {k.name for k in self.live if k.kind == "Namespace" and not k.group}


@dataclass(frozen=True)
class Outcome:
    action: Action
    result: str                      # created / updated / pruned / recorded (+ "would …")
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObjectDiff:
    action: Action
    lines: list[str]


@dataclass
class ApplyResult:
    plan: Plan
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)
    write_calls: int = 0

    @property
    def warnings(self) -> list[str]:
        return [w for o in self.outcomes for w in o.warnings]

    def summary(self) -> dict[str, int]:
        return {
            "created": self.plan.count(Verb.CREATE),
            "updated": self.plan.count(Verb.UPDATE),
            "unchanged": len(self.plan.unchanged),
            "pruned": self.plan.count(Verb.DELETE),
            "drifted": len(self.plan.drift),
        }


def _parallel(pool: ThreadPoolExecutor, fn: Callable[[T], Any], items: Iterable[T],
              on_done: Callable[[T, Any], None] | None = None) -> list[Any]:
    """Run ``fn`` over ``items`` on ``pool``; the first error cancels what has not started
    and is re-raised once the running calls finished. Results keep the input order;
    ``on_done`` runs on the calling thread as each call completes."""
    items = list(items)
    futures: list[Future[Any]] = [pool.submit(fn, item) for item in items]
    index = {f: i for i, f in enumerate(futures)}
    try:
        for future in as_completed(futures):
            error = future.exception()
            if error is not None:
                raise error
            if on_done is not None:
                on_done(items[index[future]], future.result())
    except BaseException:
        for future in futures:
            future.cancel()
        wait(futures)
        raise
    return [f.result() for f in futures]


# --- 1. observe -------------------------------------------------------------------------------


def observe(target: Target, desired: Sequence[Manifest], *, mesh: str,
            inventory_namespace: str = INVENTORY_NAMESPACE,
            pool: ThreadPoolExecutor) -> Observed:
    """Read the inventory and every live object the plan needs to see.

    Objects are listed as metadata only, from the API server's cache; those whose metadata
    does not prove them unchanged (:func:`reconciler.core.proof.settled`) are then read
    whole from the store — for an unchanged mesh, none. So every write is decided on a
    fresh read, and a stale cache can cost a read, never a write."""
    record = target.get(inventory_key(mesh, inventory_namespace))
    recorded = Inventory.from_manifest(record, mesh) if record is not None else None

    namespaces: dict[GroupKind, set[str]] = {NAMESPACE: {""}}
    for key in [*map(ResourceKey.of, desired), *(recorded.keys if recorded else ())]:
        namespaces.setdefault(key.group_kind, set()).add(key.namespace)

    scopes: list[tuple[GroupKind, str | None]] = []
    for kind, seen in sorted(namespaces.items()):
        if not target.namespaced(kind):
            scopes.append((kind, None))
            continue
        if "" in seen:
            raise ManifestError(f"a {kind.kind} has no metadata.namespace; {kind.kind} is "
                                "namespaced, so every one needs a namespace")
        scopes += [(kind, ns) for ns in sorted(seen)]

    def read(scope: tuple[GroupKind, str | None]) -> list[Manifest]:
        return target.list(*scope, metadata_only=True, cached=True)

    live: dict[ResourceKey, Manifest] = {}
    for items in _parallel(pool, read, scopes):
        for item in items:
            live[ResourceKey.of(item)] = item

    # The cached metadata proves most objects unchanged. Every object a write may be
    # decided on is read again, whole and fresh: ours that are missing or not proven,
    # existing ones we would adopt, and those we would prune.
    wanted = {ResourceKey.of(m): m for m in desired}
    ours = recorded.keys if recorded is not None else frozenset()
    proven = frozenset(k for k, m in wanted.items() if k in live and settled(
        core_diff.stamped(m), live[k], manager=FIELD_MANAGER))
    suspects = [k for k in wanted if (k in ours or k in live) and k not in proven]
    suspects += [k for k in ours if k in live and k not in wanted]

    for key, obj in zip(suspects, _parallel(pool, target.get, suspects), strict=True):
        if obj is None:
            live.pop(key, None)  # gone (the cache was behind)
        else:
            live[key] = obj
    if record is not None:
        live[ResourceKey.of(record)] = record
    return Observed(live, recorded, proven)


# --- 2. plan ----------------------------------------------------------------------------------


def plan(target: Target, desired: Sequence[Manifest], *, mesh: str, options: Options,
         pool: ThreadPoolExecutor) -> tuple[Plan, Observed]:
    desired = [with_owner(m, mesh, options.owner) for m in desired]
    check_tenancy(mesh, desired, options.tenancy)  # before a read outside the fence
    observed = observe(target, desired, mesh=mesh,
                       inventory_namespace=options.inventory_namespace, pool=pool)
    result = make_plan(desired, observed.live, observed.recorded, mesh=mesh,
                       prune=options.prune, allow_empty=options.allow_empty,
                       heal=options.heal, adopt=options.adopt,
                       inventory_namespace=options.inventory_namespace,
                       proven=observed.proven, owner=options.owner,
                       tenancy=options.tenancy)
    return result, observed


# --- 3. dry run -------------------------------------------------------------------------------


def _with_namespace(manifest: Manifest, namespace: str) -> Manifest:
    out = dict(manifest)
    out["metadata"] = {**(manifest.get("metadata") or {}), "namespace": namespace}
    return out


def dry_run(target: Target, the_plan: Plan, observed: Observed, *,
            pool: ThreadPoolExecutor) -> list[Manifest | None]:
    """Send every write of the plan with ``dryRun=All``; returns what the server would store
    (``None`` for deletions), aligned with ``the_plan.actions``.

    An object whose namespace does not exist yet (it is created by this same plan) is
    validated in ``default`` instead: schemas do not depend on the namespace, and nothing
    may be written before the whole set passed.
    """
    existing = observed.namespaces
    stand_in = _SUBSTITUTE_NAMESPACE if _SUBSTITUTE_NAMESPACE in existing else (
        min(existing) if existing else None)
    rejected: list[tuple[Action, ObjectRejected]] = []

    def check(action: Action) -> Manifest | None:
        try:
            if action.verb is Verb.DELETE:
                uid = ((action.live or {}).get("metadata") or {}).get("uid")
                target.delete(action.key, uid=uid, dry_run=True)
                return None
            if action.remove:
                return _remove(target, action, dry_run=True)
            assert action.manifest is not None
            namespace = action.key.namespace
            if namespace and namespace not in existing and stand_in is not None:
                result = target.apply(_with_namespace(action.manifest, stand_in), force=True,
                                      dry_run=True)
                return _with_namespace(result, namespace)
            return target.apply(action.manifest, force=action.force, dry_run=True)
        except ObjectRejected as err:
            rejected.append((action, err))
            return None

    results: list[Manifest | None] = _parallel(pool, check, the_plan.actions)
    if rejected:
        order = {id(a): i for i, a in enumerate(the_plan.actions)}
        rejected.sort(key=lambda pair: order[id(pair[0])])
        raise RejectedError(rejected, the_plan.mesh)
    return results


# --- 4. write ---------------------------------------------------------------------------------

_DONE = {Verb.CREATE: "created", Verb.UPDATE: "updated", Verb.DELETE: "pruned"}


def _dropped_fields(action: Action, stored: Manifest) -> tuple[str, ...]:
    """Fields we sent that the server did not keep (unknown fields are pruned silently)."""
    if action.manifest is None or action.internal:
        return ()
    lost = core_diff.mismatches(action.manifest, stored)
    if not lost:
        return ()
    paths = ", ".join(m.path for m in lost[:5]) + (" …" if len(lost) > 5 else "")
    return (f"{action.key}: the server did not keep {paths} as sent (unknown or normalised "
            "field?); it will show as drift until the program matches the schema",)


def _remove(target: Target, action: Action, *, dry_run: bool = False) -> Manifest:
    live = action.live or {}
    fields = [(path, core_diff.value_at(live, path)) for path in action.remove]
    return target.remove_fields(action.key, fields, dry_run=dry_run)


def execute(target: Target, the_plan: Plan, *, pool: ThreadPoolExecutor,
            on_done: Callable[[Outcome], None] | None = None,
            fence: Callable[[], bool] | None = None) -> list[Outcome]:
    """Carry out the plan step by step; raises the first error of a step after the other
    writes of that step finished (earlier steps stay done; the next run continues).
    ``fence`` is asked before every write; ``False`` stops the apply there
    (:class:`FencedError`)."""
    outcomes: list[Outcome] = []

    def run(action: Action) -> Outcome:
        if fence is not None and not fence():
            raise FencedError(f"stopped before writing {action.key}: this replica is no "
                              "longer allowed to write (leadership lost)")
        if action.verb is Verb.DELETE:
            uid = ((action.live or {}).get("metadata") or {}).get("uid")
            target.delete(action.key, uid=uid)
            return Outcome(action, _DONE[action.verb])
        if action.remove:
            _remove(target, action)
            return Outcome(action, "healed")
        assert action.manifest is not None
        stored = target.apply(action.manifest, force=action.force)
        result = "recorded" if action.internal else (
            "bridged" if action.bridge else _DONE[action.verb])
        return Outcome(action, result, () if action.bridge else _dropped_fields(action, stored))

    def done(_: Action, outcome: Outcome) -> None:
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)

    for step in the_plan.steps:
        _parallel(pool, run, step.actions, done)
    return outcomes


# --- the whole apply, and diff ----------------------------------------------------------------


def apply(target: Target, desired: Sequence[Manifest], *, mesh: str,
          options: Options = Options(),
          on_plan: Callable[[Plan], None] | None = None,
          on_done: Callable[[Outcome], None] | None = None) -> ApplyResult:
    """Reconcile ``mesh`` on ``target`` to ``desired``: the whole flow of this module."""
    start = target.write_calls
    pool = workers(options.workers)
    the_plan, observed = plan(target, desired, mesh=mesh, options=options, pool=pool)
    if on_plan is not None:
        on_plan(the_plan)
    result = ApplyResult(the_plan, options.dry_run)
    if the_plan.actions:
        dry_run(target, the_plan, observed, pool=pool)
    if options.dry_run:
        for action in the_plan.actions:
            if action.internal or action.bridge:
                continue
            outcome = Outcome(action, f"would {action.verb.value}")
            result.outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)
    else:
        result.outcomes = execute(target, the_plan, pool=pool, on_done=on_done,
                                  fence=options.fence)
    result.write_calls = target.write_calls - start
    return result


def diff(target: Target, desired: Sequence[Manifest], *, mesh: str,
         options: Options = Options()) -> tuple[Plan, list[ObjectDiff]]:
    """What ``apply`` with these options would change, as ``kubectl diff``-style text per
    object: the live object against the server's dry-run result (defaults included)."""
    pool = workers(options.workers)
    the_plan, observed = plan(target, desired, mesh=mesh, options=options, pool=pool)
    results = dry_run(target, the_plan, observed, pool=pool) if the_plan.actions else []
    diffs: list[ObjectDiff] = []
    for action, after in zip(the_plan.actions, results, strict=True):
        if action.internal or action.bridge:
            continue
        before = copy.deepcopy(action.live) if action.live is not None else None
        if before is not None and after is not None:
            # read in the version the target prefers: the same object, shown as applied
            before["apiVersion"] = after.get("apiVersion", before.get("apiVersion"))
        lines = core_diff.unified(before, after, name=str(action.key))
        diffs.append(ObjectDiff(action, lines))
    return the_plan, diffs


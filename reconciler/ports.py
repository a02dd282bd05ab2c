"""The ports: small ``typing.Protocol`` interfaces between the pure core and the I/O edges.

Each port has a real implementation (and an integration test against the real component)
under ``reconciler/targets``, ``reconciler/metrics`` or ``reconciler/sources``. The runtime
only ever talks to these Protocols, so a section per concern below is the whole contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from meshdsl.compile.manifest import GroupKind, Manifest, ResourceKey
from reconciler.core.diff import FieldPath
from reconciler.errors import ReconcilerError

__all__ = ["ObjectRejected", "Target", "TargetError"]


# --- Target: where desired manifests are applied (reconciler.targets.kube) ----------------


class TargetError(ReconcilerError):
    """Root of the errors a :class:`Target` raises."""


class ObjectRejected(TargetError):
    """The target refused one object (invalid, or a field conflict) — the object's fault,
    not the connection's. The runtime collects these over a whole dry run."""

    conflict: bool = False

    def about(self, subject: str) -> str:
        """The one-line message, naming ``subject`` (the object as the program declares
        it — a dry run may have sent it under a stand-in namespace)."""
        return str(self)


@runtime_checkable
class Target(Protocol):
    """A store of Kubernetes-style objects that supports server-side apply.

    Objects are plain dicts (``apiVersion``/``kind``/``metadata``…). One object is named by
    its :class:`~meshdsl.compile.manifest.ResourceKey`, a kind by its
    :class:`~meshdsl.compile.manifest.GroupKind`: which version to read them in is the
    target's business (the kube target: the served, preferred one, as kubectl does), and
    every object it returns carries its ``apiVersion``. Writes of a whole object
    (:meth:`apply`, :meth:`create`) go in the version the manifest says.

    Every method may be called from several threads at once. ``write_calls`` counts the
    requests that changed (or could have changed) stored state — never reads or dry runs —
    so "a no-op reconcile makes zero writes" is checkable.
    """

    @property
    def write_calls(self) -> int: ...

    @property
    def server(self) -> str:
        """Where the objects live (the API server's URL), for status and logs."""
        ...

    def namespaced(self, kind: GroupKind) -> bool:
        """Is the kind namespaced? (Raises when the target does not serve it.)"""
        ...

    def get(self, key: ResourceKey) -> Manifest | None:
        """One object, or ``None`` when it does not exist."""
        ...

    def apply(self, manifest: Manifest, *, force: bool, dry_run: bool = False) -> Manifest:
        """Server-side apply under the target's one field manager; returns the object as
        stored (or as it would be, with ``dry_run``). ``force`` takes over fields another
        manager owns; without it such a field is a conflict."""
        ...

    def create(self, manifest: Manifest) -> Manifest:
        """Create the object only if it does not exist yet; an existing one is an
        :class:`ObjectRejected` with ``conflict`` set (compare-and-swap from nothing)."""
        ...

    def remove_fields(self, key: ResourceKey, fields: Sequence[tuple[FieldPath, object]], *,
                      dry_run: bool = False) -> Manifest:
        """Delete fields (path, expected current value) that another manager added —
        atomically, and only while each still has the expected value."""
        ...

    def delete(self, key: ResourceKey, *, uid: str | None = None, dry_run: bool = False
               ) -> None:
        """Delete one object (only the one with ``uid`` when given); absent is success."""
        ...

    def list(self, kind: GroupKind, namespace: str | None = None, *,
             metadata_only: bool = False, cached: bool = False) -> list[Manifest]:
        """Every object of a kind in a namespace (``None``: all namespaces, or the
        cluster-scoped kind). Items carry ``apiVersion`` and ``kind``. ``metadata_only``
        may leave out everything but ``metadata``; ``cached`` may answer from a cache a
        moment behind the store — decide nothing on it without a :meth:`get`."""
        ...


# --- The reconcile loop's ports: time, sources of revisions, state stores, deployers -------
# reconciler.runtime.loop talks only to these.

from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from reconciler.runtime.records import Control, Status

__all__ += ["Clock", "DeployError", "Deployed", "Deployer", "Revision", "Source",
            "SourceError", "StateStore"]


@runtime_checkable
class Clock(Protocol):
    """Time, for the loop (``reconciler.runtime.clock.SystemClock``; tests pass a fake)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: timers and durations."""
        ...

    def now_iso(self) -> str:
        """The wall-clock time as ISO 8601 (UTC, milliseconds): recorded timestamps."""
        ...


class SourceError(ReconcilerError):
    """A :class:`Source` could not fetch or check out a revision (network, auth, missing
    ref…). Worth retrying later; says what and where."""

    transient = True


@dataclass(frozen=True)
class Revision:
    """One exact state of the user's repository (a commit, or a snapshot of a directory)."""

    id: str                 # full commit sha, or ``dir-<content hash>``
    ref: str = ""           # what was tracked to find it: refs/heads/main, refs/tags/v1…
    summary: str = ""       # first line of the commit message
    author: str = ""
    committed_at: str = ""  # ISO 8601

    @property
    def short(self) -> str:
        return self.id[:12]


@runtime_checkable
class Source(Protocol):
    """Where mesh programs come from: Git (``reconciler.sources.git``) or a local directory
    (``reconciler.sources.directory``). Used from one thread at a time."""

    def describe(self) -> str:
        """Where it reads from, without credentials (for status and logs)."""
        ...

    def latest(self) -> Revision:
        """Fetch and resolve the tracked ref (raises :class:`SourceError`)."""
        ...

    def checkout(self, revision: str) -> Path:
        """A clean, complete directory holding exactly ``revision`` (fetched if needed)."""
        ...

    @property
    def ref(self) -> str:
        """The tracked ref (``refs/heads/main``); empty when the source has none."""
        ...

    @property
    def signed(self) -> bool:
        """Do revisions carry signatures :meth:`verify` can check (Git: yes)?"""
        ...

    def verify(self, revision: str, *, allowed_signers: Path) -> str:
        """Check ``revision``'s signature against an allowed-signers file; returns the
        good signature's description, else raises a :class:`SourceError` (not transient
        when the signature is missing or wrong)."""
        ...

    def ensure(self, revision: str) -> Revision:
        """``revision`` described (fetched if needed), e.g. for a rollback to it."""
        ...

    def between(self, since: str, until: str, *, limit: int = 20) -> list[Revision]:
        """Revisions after ``since`` and before ``until``, newest first (at most
        ``limit``; empty when unknown) — what a burst of pushes passed over."""
        ...


@dataclass(frozen=True)
class Deployed:
    """What one deploy did: counts per action, writes made, drifted objects found."""

    changes: dict[str, int]
    write_calls: int = 0
    drift: tuple[str, ...] = ()
    healed: bool = False
    warnings: tuple[str, ...] = ()


class DeployError(ReconcilerError):
    """A deploy failed. ``transient``: the target was unreachable or busy — retry with
    backoff; otherwise the output itself was refused and retrying the same output waits for
    a new revision or the next drift check."""

    def __init__(self, message: str, *, kind: str, transient: bool) -> None:
        super().__init__(message)
        self.kind, self.transient = kind, transient


@runtime_checkable
class Deployer(Protocol):
    """A target of reconciliation: makes the target match one compiled output."""

    @property
    def identity(self) -> str:
        """Names the target (``kube https://…``); one reconcile at a time per identity."""
        ...

    @property
    def needs_spec(self) -> bool:
        """Does ``deploy`` read the program's spec (the local mesh) rather than compiled
        manifests (kube)? The loop asks the sandbox for it then."""
        ...

    def stop(self) -> None:
        """Stop what the deployer runs itself (the local mesh's Envoys); kube: nothing."""
        ...

    def deploy(self, output: dict[str, Any], *, mesh: str, heal: bool,
               dry_run: bool = False, fence: Callable[[], bool] | None = None) -> Deployed:
        """Apply ``output`` (``{"manifests": [...], "spec": {...}}`` from the sandbox) for
        ``mesh``; ``heal`` writes back objects someone else changed; ``dry_run`` only
        reports what would change (and the drift). ``fence`` is asked before every write
        (false: leadership lost — stop there, a transient ``DeployError`` of kind
        ``fenced``). Raises :class:`DeployError`."""
        ...


@runtime_checkable
class StateStore(Protocol):
    """Where a reconciler keeps its status, its control requests and the outputs of the
    revisions it applied (disk for the local target, ConfigMaps for kube), so that a
    restart knows what is applied and a rollback can re-apply an earlier output."""

    def describe(self) -> str: ...

    def load_status(self) -> Status | None: ...

    def save_status(self, status: Status) -> None: ...

    def load_control(self) -> Control: ...

    def save_control(self, control: Control, *, expected: str | None = None) -> None:
        """Store ``control``; with ``expected`` only if the stored record's version is
        still ``expected`` ("": absent) — compare-and-swap; raises a ``StoreError``
        (``StaleRecordError``) otherwise."""
        ...

    def save_output(self, revision: str, output: dict[str, Any]) -> None: ...

    def load_output(self, revision: str) -> dict[str, Any] | None: ...

    def prune_outputs(self, keep: set[str]) -> None: ...


# --- Progressive delivery: metrics, webhooks, rollout state (issue #6) ---------------------
# Implementations: reconciler.metrics.prometheus.PrometheusSource,
# reconciler.metrics.envoy_stats.EnvoyStatsSource,
# reconciler.targets.webhooks.HttpWebhookCaller,
# reconciler.runtime.rollout_store.DiskRolloutStore and .ClusterRolloutStore. The pure side is
# reconciler.delivery.

if TYPE_CHECKING:
    from reconciler.delivery.actions import WebhookCall
    from reconciler.delivery.phases import RolloutState, StoredRollout
    from reconciler.delivery.queries import MetricQuery

__all__ += ["MetricsError", "MetricsSource", "RolloutStore", "RolloutStoreError",
            "StaleRolloutError", "WebhookCaller"]


class MetricsError(ReconcilerError):
    """A metrics source could not answer (unreachable, bad query, ambiguous result).

    Distinct from *no data* (``None``): the runtime records the error and hands the
    machine no data for that query, which halts the rollout — never a pass."""


@runtime_checkable
class MetricsSource(Protocol):
    """Answers the analysis' metric queries: Prometheus by PromQL, Envoy's own stats by
    computing the builtin checks."""

    def measure(self, query: MetricQuery) -> float | None:
        """The value of ``query`` now; ``None`` when there is no data. Raises
        :class:`MetricsError` when the source cannot answer at all."""
        ...

    def sample(self) -> object:
        """Take a snapshot now: a source that computes rates from its own snapshots (Envoy's
        stats read directly) needs one every tick so an analysis finds a baseline one
        interval back; one that keeps its own history (Prometheus) does nothing."""
        ...


@runtime_checkable
class WebhookCaller(Protocol):
    """Delivers a rollout webhook (HTTP POST of the rollout state)."""

    def call(self, call: WebhookCall) -> bool:
        """True when the webhook answered 2xx within its timeout and retries."""
        ...


class RolloutStoreError(ReconcilerError):
    """Root of the errors a :class:`RolloutStore` raises (unreadable, unwritable)."""

    transient = True


class StaleRolloutError(RolloutStoreError):
    """The stored rollout changed since it was read (another writer: a ``meshctl
    canary`` command or another reconciler); read it again and redo the step."""


@runtime_checkable
class RolloutStore(Protocol):
    """Where rollout states persist between steps (disk for local, the cluster for kube).

    Writes are compare-and-swap on a generation, so a manual command and the reconcile
    loop never silently undo each other."""

    def describe(self) -> str: ...

    def load(self, namespace: str, service: str) -> StoredRollout | None: ...

    def list_rollouts(self) -> list[StoredRollout]: ...

    def save(self, state: RolloutState, *, expected_generation: int | None) -> int:
        """Store ``state`` if the stored generation is ``expected_generation`` (``None``:
        nothing stored yet); returns the new generation, else raises
        :class:`StaleRolloutError`."""
        ...

    def delete(self, namespace: str, service: str) -> None: ...

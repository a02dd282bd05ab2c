"""Deployers: one compiled output made live on a target, with errors sorted for the loop.

The loop (:mod:`.loop`) only needs to know whether a failure is *transient* (the target
is unreachable or busy: retry with backoff) or not (the output was refused: wait for a
new revision). Each deployer here wraps one target's apply and makes that call.

- :class:`KubeDeployer` — :func:`reconciler.runtime.apply.apply` on a
  :class:`~reconciler.ports.Target` (the kube target), with pruning by inventory;
- :class:`LocalDeployer` — the local Envoy mesh (:class:`~reconciler.targets.envoy.LocalMesh`),
  which needs the program's spec rather than Istio manifests; a report-only check compares
  the config version each Envoy runs with the one last pushed, writing nothing. Every
  deploy it makes is logged (``local-deploy``, with the rollout weights laid over the
  program), so what the Envoys were told and when can be read back from the log alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from reconciler.core.errors import CoreError
from reconciler.core.inventory import INVENTORY_NAMESPACE
from reconciler.core.ownership import DEFAULT_OWNER
from reconciler.core.tenancy import Policy
from reconciler.ports import Deployed, DeployError, Target, TargetError
from reconciler.runtime.apply import ApplyError, FencedError, Options, RejectedError
from reconciler.runtime.apply import apply as run_apply
from reconciler.runtime.records import FailureKind
from reconciler.runtime.telemetry import event
from reconciler.targets.kube import Forbidden, KubeError, Unauthorized, Unreachable

if TYPE_CHECKING:
    from reconciler.targets.envoy import LocalMesh

__all__ = ["KubeDeployer", "LocalDeployer"]

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def _kube_failure(exc: BaseException) -> DeployError:
    """Sort an apply failure: unreachable/busy is transient; everything else is not."""
    message = str(exc)
    if isinstance(exc, RejectedError):
        return DeployError(message, kind=FailureKind.REJECTED, transient=False)
    if isinstance(exc, FencedError):   # the new leader finishes; this replica stands by
        return DeployError(message, kind=FailureKind.FENCED, transient=True)
    if isinstance(exc, Unreachable):
        return DeployError(message, kind=FailureKind.UNREACHABLE, transient=True)
    if isinstance(exc, (Unauthorized, Forbidden)):
        # RBAC or credentials: an administrator has to act, but then it should just work —
        # retried with (long) backoff, like an unreachable server.
        return DeployError(message, kind=FailureKind.FORBIDDEN, transient=True)
    if isinstance(exc, KubeError):
        transient = exc.status is None or exc.status in _TRANSIENT_STATUS
        return DeployError(message, kind=FailureKind.UNREACHABLE if transient else FailureKind.APPLY,
                           transient=transient)
    if isinstance(exc, (CoreError, ApplyError)):
        return DeployError(message, kind=FailureKind.APPLY, transient=False)
    return DeployError(f"{type(exc).__name__}: {message}", kind=FailureKind.APPLY, transient=True)


class KubeDeployer:
    """Server-side apply of the output's manifests through ``target``."""

    needs_spec = False

    def __init__(self, target: Target, *, server: str = "", prune: bool = True,
                 workers: int = 8, inventory_namespace: str | None = None,
                 owner: str = DEFAULT_OWNER, allow_namespaces: Iterable[str] = (),
                 adopt: Iterable[str] = ()) -> None:
        self.target = target
        self._server = server or target.server or "kubernetes"
        self.prune, self.workers = prune, workers
        self._options: dict[str, Any] = {"prune": prune, "workers": workers, "owner": owner}
        if inventory_namespace is not None:
            self._options["inventory_namespace"] = inventory_namespace
        self._system = inventory_namespace or INVENTORY_NAMESPACE
        self._allow, self._adopt = tuple(allow_namespaces), frozenset(adopt)

    def _fence(self, output: dict[str, Any], manifests: list[dict[str, Any]]
               ) -> dict[str, Any]:
        """The program's declared fence under this reconciler's flags. An output stored
        before fences were recorded gets the namespaces its manifests name (the reserved
        ones still need the flag)."""
        declared = output.get("tenancy")
        if not isinstance(declared, dict):
            declared = {"namespaces": sorted(
                {str((m.get("metadata") or {}).get("namespace") or "") for m in manifests}
                - {""})}
        return {"adopt": self._adopt | {str(r) for r in declared.get("adopt") or ()},
                "tenancy": Policy.of(declared, system_namespace=self._system,
                                     allow=self._allow)}

    @property
    def identity(self) -> str:
        return f"kube {self._server}"

    def stop(self) -> None:
        """Nothing runs here: the target's connections belong to whoever made it."""

    def deploy(self, output: dict[str, Any], *, mesh: str, heal: bool,
               dry_run: bool = False, fence: Callable[[], bool] | None = None) -> Deployed:
        manifests = list(output.get("manifests") or [])
        options = Options(heal=heal, dry_run=dry_run, fence=fence, **self._options,
                          **self._fence(output, manifests))
        try:
            result = run_apply(self.target, manifests, mesh=mesh, options=options)
        except (TargetError, CoreError, ApplyError) as exc:
            raise _kube_failure(exc) from exc
        plan = result.plan
        recreated = [str(a.key) for a in plan.visible if a.reason.startswith("recreate")]
        return Deployed(
            changes={k: v for k, v in result.summary().items() if k != "drifted"},
            write_calls=result.write_calls,
            drift=tuple([str(d.key) for d in plan.drift] + recreated),
            healed=not dry_run and (any(d.healed for d in plan.drift) or bool(recreated)),
            warnings=tuple(result.warnings))


class LocalDeployer:
    """The GitOps loop's view of a :class:`~reconciler.targets.envoy.LocalMesh`."""

    needs_spec = True

    def __init__(self, mesh: LocalMesh) -> None:
        self.mesh = mesh

    @property
    def identity(self) -> str:
        return str(self.mesh.identity)

    def deploy(self, output: dict[str, Any], *, mesh: str, heal: bool,
               dry_run: bool = False, fence: Callable[[], bool] | None = None) -> Deployed:
        if dry_run or not heal:
            return self._check()
        if fence is not None and not fence():
            raise DeployError("stopped before writing: this replica is no longer the "
                              "leader", kind=FailureKind.FENCED, transient=True)
        deployed: Deployed = self.mesh.deploy(output, mesh=mesh, heal=heal)
        event("local-deploy", mesh=mesh, weights=output.get("weights") or {},
              changes=deployed.changes)
        return deployed

    def _check(self) -> Deployed:
        """Drift without writing: proxies not running what was last pushed to them."""
        if not self.mesh.proxies():
            return Deployed(changes={})
        pushed, live = self.mesh.pushed_versions(), self.mesh.versions()
        drift = tuple(sorted(pid for pid, version in pushed.items()
                             if live.get(pid) != version))
        return Deployed(changes={}, drift=drift)

    def stop(self) -> None:
        self.mesh.stop()

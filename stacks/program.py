"""The body of every stack's ``__main__.py``: program + stack settings → ``MeshStack``.

``deploy("…/mesh.py")`` loads the mesh program exactly as the reconciler does
(:func:`reconciler.runtime.loader.load`), applies this stack's settings, decides the
canary weights (the rollout state wins over the program; ``canary: false`` pins the stable
version), logs what it kept, and creates the component. ``rollout_state: cluster`` reads
the cluster the stack's Kubernetes provider deploys to (``kubernetes:kubeconfig``,
``kubernetes:context``). A bad program, setting or rollout state stops ``pulumi up`` with
one clear message (a ``pulumi.RunError``, no traceback).
"""

from __future__ import annotations

from pathlib import Path

import pulumi

from meshdsl.model.spec import MeshSpec
from reconciler.runtime.loader import load
from reconciler.runtime.records import ProgramError
from reconciler.runtime.status import STATE_NAMESPACE
from stacks.component import MeshStack
from stacks.errors import StackError
from stacks.rollout import (
    ClusterRolloutState,
    JsonRolloutState,
    Level,
    RolloutStateReader,
    WeightPlan,
    plan_weights,
    state_dir_rollouts,
)
from stacks.settings import (
    InCluster,
    KubeAccess,
    StackSettings,
    apply_settings,
    kube_access_from_pulumi,
    settings_from_pulumi,
)


def rollout_reader(settings: StackSettings, *, base: Path,
                   kube: KubeAccess | None = None) -> RolloutStateReader | None:
    """Where ``meshdsl:rollout_state`` points, or None when it is not set: a reconciler
    state directory or a JSON file (relative paths start at ``base``), or a reconciler's
    ConfigMaps on the cluster ``kube`` reaches (None: the default kubeconfig)."""
    location = settings.rollout_location
    if location is None:
        return None
    if isinstance(location, InCluster):
        kube = kube or KubeAccess()
        return ClusterRolloutState(
            name=location.name, namespace=settings.system_namespace or STATE_NAMESPACE,
            kubeconfig=kube.kubeconfig, context=kube.context)
    path = base / Path(location.path).expanduser()
    if path.is_dir():
        return state_dir_rollouts(path)
    return JsonRolloutState(path)  # a missing path is its error: "does not exist"


def desired(spec: MeshSpec, settings: StackSettings,
            reader: RolloutStateReader | None) -> tuple[MeshSpec, WeightPlan]:
    """What the stack deploys: the program's mesh for this environment and its weights.
    Pure apart from ``reader``; shared by :func:`deploy` and the tests."""
    spec = apply_settings(spec, settings)
    source = settings.rollout_state or "the rollout state"
    rollouts = None if reader is None else reader.current_weights()
    return spec, plan_weights(spec, canary=settings.canary, rollouts=rollouts, source=source)


def deploy(program: str | Path, *, name: str | None = None,
           settings: StackSettings | None = None,
           reader: RolloutStateReader | None = None) -> MeshStack:
    """Create the stack's ``MeshStack`` (named after the mesh unless ``name``) and export
    ``resources`` and ``weights``."""
    try:
        settings = settings or settings_from_pulumi()
        loaded = load(str(program))
        reader = reader or rollout_reader(settings, base=Path.cwd(),
                                          kube=kube_access_from_pulumi())
        spec, plan = desired(loaded.spec, settings, reader)
        stack = MeshStack(name or spec.name, spec, weights=plan.weights or None)
    except ProgramError as exc:
        raise pulumi.RunError(exc.report()) from exc
    except StackError as exc:
        raise pulumi.RunError(str(exc)) from exc
    for note in plan.notes:
        log = pulumi.log.warn if note.level is Level.WARNING else pulumi.log.info
        log(note.message, resource=stack)
    pulumi.export("resources", stack.resource_names)
    pulumi.export("weights", {f"{ns}/{svc}": split
                              for (ns, svc), split in sorted(plan.weights.items())})
    return stack

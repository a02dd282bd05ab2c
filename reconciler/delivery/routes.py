"""Rollout state → the routes that go out. The single writer of a canaried service's routes.

The routes applied for a service under a canary are always computed from
(Git revision, rollout state): the program's mesh, with the rollout's traffic laid over the
route the canary owns. Nothing else ever writes those weights, so drift detection compares
against the same computed routes and never fights the rollout — no ignore rules needed.

The route a canary owns is the one ``meshdsl.compile.canary_route`` names (the last
catch-all route of any VirtualService whose destinations are all the service, gateway
routes included). Its split comes from ``compile_mesh(..., weights=...)``; the pre-weight
stages are model edits made here, before compiling, so the Istio and the local Envoy
compilers both see them:

- header stage: a copy of that route, matching the plan's header match and sending
  everything to the target, inserted just before it (first match wins);
- mirror stage: that route mirrors ``mirror_percent`` of its requests to the target.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

from meshdsl.compile import Manifest, Weights, canary_route, compile_mesh
from meshdsl.model.canary import CanaryPlan
from meshdsl.model.routing import Destination, HttpRoute, VirtualService
from meshdsl.model.spec import MeshSpec
from reconciler.delivery.phases import Phase, RolloutState

__all__ = ["ServiceKey", "apply_stages", "compile_with_rollouts", "rollout_view",
           "target_digest", "traffic_weights"]

ServiceKey = tuple[str, str]   # (namespace, service): whose route a rollout owns


def _plans(spec: MeshSpec) -> dict[ServiceKey, CanaryPlan]:
    return {(p.namespace, p.service): p for p in spec.canaries}


def _in_force(spec: MeshSpec, states: Iterable[RolloutState]) -> dict[ServiceKey, RolloutState]:
    """The states that apply to this program: a plan exists for the service and names the
    same target and stable (otherwise the machine restarts the rollout on its next step,
    and until then the program's own routes are the truth)."""
    plans = _plans(spec)
    out: dict[ServiceKey, RolloutState] = {}
    for state in states:
        plan = plans.get(state.key)
        if (plan is not None and state.phase is not Phase.IDLE
                and (plan.target, plan.stable) == (state.target, state.stable)):
            out[state.key] = state
    return out


def traffic_weights(states: Iterable[RolloutState]) -> dict[ServiceKey, dict[str, int]]:
    """The ``weights`` argument of ``compile_mesh`` for these rollouts."""
    return {s.key: s.traffic.weights for s in states if s.phase is not Phase.IDLE}


def _staged(vs: VirtualService, spec: MeshSpec, states: Mapping[ServiceKey, RolloutState],
            plans: Mapping[ServiceKey, CanaryPlan]) -> VirtualService:
    found = canary_route(vs, spec)
    if found is None or found[1] not in states:
        return vs
    index, key = found
    state, plan = states[key], plans[key]
    route = vs.http[index]
    template = route.to[0]
    canary = Destination(host=template.host, subset=state.target, port=template.port)
    routes: list[HttpRoute] = list(vs.http)
    if state.traffic.mirror_percent is not None:
        routes[index] = route.model_copy(update={
            "mirror": canary, "mirror_percent": state.traffic.mirror_percent})
    if state.traffic.header_route and plan.header_stage is not None:
        header = route.model_copy(update={
            "name": f"{state.service}-canary", "match": [plan.header_stage.match],
            "to": [canary], "mirror": None, "mirror_percent": None})
        routes.insert(index, header)
    return vs if routes == list(vs.http) else vs.model_copy(update={"http": routes})


def apply_stages(spec: MeshSpec, states: Iterable[RolloutState]) -> MeshSpec:
    """The program's mesh with each rollout's header route and mirror in place (weights
    are left to ``compile_mesh``; see :func:`rollout_view`)."""
    active = _in_force(spec, states)
    if not active:
        return spec
    plans = _plans(spec)
    return spec.model_copy(update={"virtual_services": [
        _staged(vs, spec, active, plans) for vs in spec.virtual_services]})


def rollout_view(spec: MeshSpec, states: Iterable[RolloutState]
                 ) -> tuple[MeshSpec, Weights]:
    """What to compile — for Istio (``compile_mesh``) or the local mesh
    (``compile_local``) alike: the staged spec and the rollouts' weights."""
    active = list(_in_force(spec, states).values())
    return apply_stages(spec, active), traffic_weights(active)


def compile_with_rollouts(spec: MeshSpec, states: Iterable[RolloutState]) -> list[Manifest]:
    """Every manifest of the program, routes as the rollouts have them right now."""
    staged, weights = rollout_view(spec, states)
    return compile_mesh(staged, weights=weights or None)


def target_digest(spec: MeshSpec, plan: CanaryPlan) -> str:
    """A fingerprint of what the target version *is* in this program: its workloads
    (image, env, ports; not replicas), how it runs locally and its subset definition.

    Passed as ``Observations.target_digest``: a revision that changes the target this way
    restarts the rollout, one that touches anything else does not."""
    svc = spec.service(plan.namespace, plan.service)
    if svc is None:
        return ""
    workloads = [w.model_dump(mode="json", exclude={"replicas"})
                 for w in svc.workloads if w.version == plan.target]
    versions = [v.model_dump(mode="json") for v in svc.versions if v.name == plan.target]
    local = svc.local.get(plan.target)
    text = json.dumps({"workloads": workloads, "versions": versions,
                       "local": None if local is None else local.model_dump(mode="json")},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]

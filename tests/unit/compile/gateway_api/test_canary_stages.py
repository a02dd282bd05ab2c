"""A canary in an ambient namespace: every stage of the rollout on HTTPRoute backendRefs
(the same plans and machine as for sidecars; only the compiled objects differ)."""

from __future__ import annotations

from typing import Any

from meshdsl import Header, Mesh, MirrorStage, SuccessRate, Uri
from meshdsl.model.canary import HeaderStage
from meshdsl.model.spec import MeshSpec
from reconciler.delivery import machine
from reconciler.delivery.queries import metric_queries
from reconciler.delivery.routes import compile_with_rollouts
from tests.unit.delivery.scenario import obs


def shop() -> MeshSpec:
    mesh = Mesh("shop", namespace="shop", mode="ambient")
    mesh.namespace("shop", mode="ambient")
    reviews = mesh.service("reviews", port=9080, versions=["v1", "v2"])
    reviews.route(match=Uri(prefix="/admin"), to=reviews.v1)
    reviews.route(to=reviews.v1, timeout="3s")
    reviews.canary(target="v2", stable="v1", steps=[20, 100], checks=[SuccessRate()],
                   header_stage=HeaderStage(match=Header("x-canary", exact="1")),
                   mirror_stage=MirrorStage(percent=25))
    return mesh.build()


def rules(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert not [m for m in manifests if m["kind"] == "VirtualService"]
    (route,) = [m for m in manifests if m["kind"] == "HTTPRoute"]
    found: list[dict[str, Any]] = route["spec"]["rules"]
    return found


def backends(rule: dict[str, Any]) -> list[tuple[str, int | None]]:
    return [(b["name"], b.get("weight")) for b in rule["backendRefs"]]


def test_every_stage_lands_on_the_httproute() -> None:
    spec = shop()
    plan = spec.canaries[0]
    assert plan.reporter == "waypoint"
    assert all('reporter="waypoint"' in q.promql for q in metric_queries(plan))
    state, _ = machine.start(plan, "r", 0.0)
    seen = [state]
    for _ in range(4):
        state, _ = machine.step(state, plan, obs(), state.next_analysis_at or 0.0)
        seen.append(state)
    init, mirror, header, twenty, hundred = seen

    assert [backends(r) for r in rules(compile_with_rollouts(spec, [init]))] == [
        [("reviews-v1", None)], [("reviews-v1", 100), ("reviews-v2", 0)]]
    mirrored = rules(compile_with_rollouts(spec, [mirror]))[1]
    assert mirrored["filters"] == [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": "reviews-v2", "port": 9080}, "percent": 25}}]
    staged = rules(compile_with_rollouts(spec, [header]))
    assert [r.get("name") for r in staged] == [None, "reviews-canary", None]
    assert staged[1]["matches"] == [{"headers": [{"name": "x-canary", "value": "1"}]}]
    assert backends(staged[1]) == [("reviews-v2", None)]
    assert staged[1]["timeouts"] == {"request": "3s"}
    assert [backends(r) for r in rules(compile_with_rollouts(spec, [twenty]))][1] == [
        ("reviews-v1", 80), ("reviews-v2", 20)]
    assert backends(rules(compile_with_rollouts(spec, [hundred]))[1]) == [
        ("reviews-v1", 0), ("reviews-v2", 100)]

"""Rollout state -> compiled routes: weights, header route, mirror; one writer."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from meshdsl import Header, Mesh, MirrorStage, SuccessRate, Uri
from meshdsl.compile import compile_mesh
from meshdsl.model.canary import HeaderStage
from meshdsl.model.spec import MeshSpec
from reconciler.delivery import machine
from reconciler.delivery.phases import Phase, Traffic
from reconciler.delivery.routes import (
    apply_stages,
    compile_with_rollouts,
    rollout_view,
    target_digest,
)
from tests.unit.delivery.scenario import obs


def shop(image: str = "reviews:2", replicas: int = 1) -> MeshSpec:
    mesh = Mesh("shop", namespace="shop")
    reviews = mesh.service("reviews", port=9080, versions=["v1", "v2"])
    reviews.deploy("v1", image="reviews:1")
    reviews.deploy("v2", image=image, replicas=replicas)
    reviews.route(match=Uri(prefix="/admin"), to=reviews.v1)
    reviews.route(to=reviews.v1, timeout="3s")
    gateway = mesh.gateway("edge")
    gateway.http("shop.example.com")
    gateway.routes("edge").route(to=reviews)
    reviews.canary(target="v2", stable="v1", steps=[20, 100], checks=[SuccessRate()],
                   header_stage=HeaderStage(match=Header("x-canary", exact="1")),
                   mirror_stage=MirrorStage(percent=25))
    return mesh.build()


def http_of(manifests: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    (vs,) = [m for m in manifests if m["kind"] == "VirtualService"
             and m["metadata"]["name"] == name]
    routes: list[dict[str, Any]] = vs["spec"]["http"]
    return routes


def split(route: dict[str, Any]) -> list[tuple[str, int | None]]:
    return [(d["destination"]["subset"], d.get("weight")) for d in route["route"]]


def states(spec: MeshSpec, count: int) -> list[Any]:
    plan = spec.canaries[0]
    state, _ = machine.start(plan, "r", 0.0)
    out = [state]
    for _ in range(count):
        state, _ = machine.step(state, plan, obs(), state.next_analysis_at or 0.0)
        out.append(state)
    return out


def test_each_stage_compiles_to_its_routes() -> None:
    spec = shop()
    init, mirror, header, twenty, hundred = states(spec, 4)[:5]

    routes = http_of(compile_with_rollouts(spec, [init]), "reviews")
    assert [split(r) for r in routes] == [[("v1", None)], [("v1", 100), ("v2", 0)]]

    routes = http_of(compile_with_rollouts(spec, [mirror]), "reviews")
    assert routes[1]["mirror"] == {"host": "reviews", "subset": "v2"}
    assert routes[1]["mirrorPercentage"] == {"value": 25.0}
    assert "mirror" not in routes[0]

    routes = http_of(compile_with_rollouts(spec, [header]), "reviews")
    assert [r.get("name") for r in routes] == [None, "reviews-canary", None]
    assert routes[1]["match"] == [{"headers": {"x-canary": {"exact": "1"}}}]
    assert split(routes[1]) == [("v2", None)] and routes[1]["timeout"] == "3s"
    assert split(routes[2]) == [("v1", 100), ("v2", 0)] and "mirror" not in routes[2]

    routes = http_of(compile_with_rollouts(spec, [twenty]), "reviews")
    assert [split(r) for r in routes] == [[("v1", None)], [("v1", 80), ("v2", 20)]]
    assert split(http_of(compile_with_rollouts(spec, [hundred]), "reviews")[1]) == [
        ("v1", 0), ("v2", 100)]


def test_gateway_routes_to_the_service_follow_the_rollout_too() -> None:
    spec = shop()
    header = states(spec, 2)[2]
    routes = http_of(compile_with_rollouts(spec, [header]), "edge")
    assert [split(r) for r in routes] == [[("v2", None)], [("v1", 100), ("v2", 0)]]


def test_no_rollout_means_the_program_routes() -> None:
    spec = shop()
    assert compile_with_rollouts(spec, []) == compile_mesh(spec)
    assert apply_stages(spec, []) is spec


def test_states_that_do_not_fit_the_program_are_ignored() -> None:
    spec = shop()
    twenty = states(spec, 3)[3]
    stale = replace(twenty, target="v9", traffic=Traffic("v1", "v9", 20))
    idle = replace(twenty, phase=Phase.IDLE)
    other = replace(twenty, service="ratings")
    for state in (stale, idle, other):
        assert compile_with_rollouts(spec, [state]) == compile_mesh(spec)


def test_rollout_view_feeds_any_compiler() -> None:
    spec = shop()
    twenty = states(spec, 3)[3]
    staged, weights = rollout_view(spec, [twenty])
    assert weights == {("shop", "reviews"): {"v1": 80, "v2": 20}}
    assert compile_mesh(staged, weights=weights) == compile_with_rollouts(spec, [twenty])


def test_target_digest_changes_with_the_target_workload_only() -> None:
    plan = shop().canaries[0]
    base = target_digest(shop(), plan)
    assert target_digest(shop(replicas=5), plan) == base
    assert target_digest(shop(image="reviews:3"), plan) != base
    assert target_digest(shop(), plan.model_copy(update={"service": "nope"})) == ""

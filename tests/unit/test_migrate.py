"""Planning a move to ambient: what changes, what blocks it (pure, no cluster)."""

from __future__ import annotations

import pytest

from meshdsl import Abort, Fault, Mesh
from meshdsl.compile import compile_mesh
from meshdsl.migrate import MigrationError, label, plan, sidecar_namespaces, to_ambient
from meshdsl.model.spec import MeshSpec


def _shop(*, fault: bool = False) -> MeshSpec:
    mesh = Mesh("t")
    shop = mesh.namespace("shop")
    r = shop.service("r", port=80, versions=["v1", "v2"])
    r.deploy("v1", image="r:1")
    r.route(to={r.v1: 90, r.v2: 10}, fault=Fault(abort=Abort(status=500)) if fault else None)
    mesh.namespace("other").service("o", port=80)
    return mesh.build()


def test_a_clean_namespace_moves_with_its_routes_rewritten() -> None:
    migration = plan(_shop(), ["shop"])
    assert migration.ready and migration.namespaces == ("shop",)
    assert [label(k) for k in migration.removed] == [
        "DestinationRule/shop/r (networking.istio.io)",
        "VirtualService/shop/r (networking.istio.io)"]
    assert [label(k) for k in migration.added] == [
        "Service/shop/r-v1", "Service/shop/r-v2", "Gateway/shop/waypoint (gateway.networking.k8s.io)",
        "HTTPRoute/shop/r (gateway.networking.k8s.io)"]
    assert [label(k) for k in migration.changed] == ["Namespace/shop", "Service/shop/r"]


def test_what_has_no_ambient_form_blocks_the_move() -> None:
    migration = plan(_shop(fault=True), ["shop"])
    assert not migration.ready
    (blocker,) = migration.blockers
    assert blocker.code == "MD130" and "fault injection" in blocker.message
    assert blocker.source is not None and blocker.source.file == __file__


def test_the_program_itself_is_untouched_and_other_namespaces_stay() -> None:
    spec = _shop()
    moved = to_ambient(spec, ["shop"])
    assert not spec.data_plane.any_ambient
    assert moved.data_plane.mode_of("shop") == "ambient"
    assert moved.data_plane.mode_of("other") == "sidecar"
    assert sidecar_namespaces(moved) == ["other"]
    others = [m for m in compile_mesh(moved) if m["metadata"].get("namespace") == "other"]
    assert others == [m for m in compile_mesh(spec) if m["metadata"].get("namespace") == "other"]


def test_unknown_or_ambient_namespaces_are_refused() -> None:
    with pytest.raises(MigrationError, match="'nope' is not in this mesh; sidecar namespaces: "
                       "other, shop"):
        plan(_shop(), ["nope"])
    with pytest.raises(MigrationError, match="already ambient"):
        plan(to_ambient(_shop(), ["shop"]), ["shop"])

"""Two compiled revisions compared: objects, field paths, traffic shifts."""

from __future__ import annotations

from meshdsl import Mesh
from meshdsl.compile import compile_mesh
from meshdsl.compile.manifest import ResourceKey
from reconciler.core.changes import Change, compare_outputs, field_changes, route_weights
from reconciler.core.diff import MISSING


def manifests(weights: tuple[int, int], *, versions: tuple[str, ...] = ("v1", "v2")) -> list:
    mesh = Mesh("m", namespace="shop")
    mesh.namespace("shop")
    web = mesh.service("web", versions=list(versions))
    web.route(to={web.v1: weights[0], web.v2: weights[1]})
    return compile_mesh(mesh.build())


def test_same_program_no_changes() -> None:
    assert compare_outputs(manifests((90, 10)), manifests((90, 10))) == ([], [])


def test_weights_are_two_field_changes_and_one_shift() -> None:
    objects, shifts = compare_outputs(manifests((90, 10)), manifests((0, 100)))
    (changed,) = objects
    assert changed.change is Change.CHANGED and changed.key.kind == "VirtualService"
    assert [str(f) for f in changed.fields] == [
        ".spec.http[0].route[0].weight: 90 -> 0", ".spec.http[0].route[1].weight: 10 -> 100"]
    (shift,) = shifts
    assert (dict(shift.before), dict(shift.after)) == ({"web/v1": 90, "web/v2": 10},
                                                       {"web/v1": 0, "web/v2": 100})


def test_added_and_removed_objects_in_apply_order() -> None:
    base = manifests((90, 10))
    head = base[:-1]
    objects, _ = compare_outputs(base, head)
    assert [(o.change, o.key) for o in objects] == [(Change.REMOVED,
                                                     ResourceKey.of(base[-1]))]
    objects, _ = compare_outputs(head, base)
    assert objects[0].change is Change.ADDED


def test_absent_fields_and_type_changes() -> None:
    fields = field_changes({"spec": {"a": 1, "b": [1, 2]}}, {"spec": {"b": [1], "c": True}})
    shown = {f.path: (f.before, f.after) for f in fields}
    assert shown == {".spec.a": (1, MISSING), ".spec.b": ([1, 2], [1]),
                     ".spec.c": (MISSING, True)}
    assert field_changes({"x": 1}, {"x": True})   # 1 == True, but not the same field


def test_single_destination_is_100_percent() -> None:
    vs = {"spec": {"http": [{"name": "main", "route": [
        {"destination": {"host": "web.shop.svc.cluster.local", "subset": "v1"}}]}]}}
    assert route_weights(vs) == {"main": {"web/v1": 100}}

"""Plan: only what differs, in a make-before-break order, pruning only what we own, and
never everything by accident."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshdsl.compile.manifest import ResourceKey
from reconciler.core.diff import stamped
from reconciler.core.errors import DuplicateObjectError, EmptyDesiredError
from reconciler.core.inventory import Inventory, inventory_key
from reconciler.core.ownership import NotOwnedError, owner_labels
from reconciler.core.plan import Plan, Verb, make_plan
from reconciler.core.tenancy import Policy, TenancyError

MESH = "shop"
LABELS = owner_labels(MESH, "default")
NET = "networking.istio.io/v1"


def meta(name: str, ns: str | None = "shop") -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "labels": dict(LABELS)}
    if ns:
        m["namespace"] = ns
    return m


def namespace(name: str = "shop") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(name, None)}


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name),
            "spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"app": name}}}


def deployment(name: str, version: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(f"{name}-{version}"),
            "spec": {"replicas": 1}}


def dr(name: str, subsets: list[str]) -> dict[str, Any]:
    return {"apiVersion": NET, "kind": "DestinationRule", "metadata": meta(name),
            "spec": {"host": name, "subsets": [{"name": s, "labels": {"version": s}}
                                               for s in subsets]}}


def vs(name: str, weights: dict[str, int]) -> dict[str, Any]:
    return {"apiVersion": NET, "kind": "VirtualService", "metadata": meta(name),
            "spec": {"hosts": [name], "http": [{"route": [
                {"destination": {"host": name, "subset": s}, "weight": w}
                for s, w in weights.items()]}]}}


def world(desired: list[dict[str, Any]], *, mesh: str = MESH
          ) -> tuple[dict[ResourceKey, dict[str, Any]], Inventory]:
    """The cluster after a successful apply of ``desired``: live objects and inventory."""
    live: dict[ResourceKey, dict[str, Any]] = {}
    for i, m in enumerate(desired):
        obj = copy.deepcopy(stamped(m))
        obj["metadata"].update({"resourceVersion": str(i + 1), "uid": f"uid-{i}"})
        live[ResourceKey.of(m)] = obj
    inv = Inventory.of(mesh, desired)
    cm = inv.to_manifest()
    live[inventory_key(mesh)] = cm
    for name in ("meshdsl-system", "default"):  # not the mesh's own
        live.setdefault(ResourceKey("", "Namespace", "", name),
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return live, inv


def shop(weights: dict[str, int], subsets: list[str]) -> list[dict[str, Any]]:
    return [namespace(), service("reviews"),
            *[deployment("reviews", s) for s in subsets],
            dr("reviews", subsets), vs("reviews", weights)]


def order(plan: Plan) -> list[str]:
    """The visible writes in order, as 'verb Kind/name' (bridge writes marked)."""
    return [f"{a.verb.value}{'(bridge)' if a.bridge else ''} {a.key.kind}/{a.key.name}"
            for a in plan.actions if not a.internal]


def test_first_apply_records_inventory_first_then_creates_in_kind_order() -> None:
    live = {ResourceKey("", "Namespace", "", "default"): namespace("default")}
    plan = make_plan(shop({"v1": 100}, ["v1"]), live, None, mesh=MESH)
    assert [s.name for s in plan.steps[:2]] == ["record inventory: namespace",
                                                 "record inventory"]
    assert [a.key.kind for s in plan.steps[:2] for a in s.actions] == ["Namespace",
                                                                       "ConfigMap"]
    assert order(plan) == ["create Namespace/shop", "create Service/reviews",
                           "create Deployment/reviews-v1", "create DestinationRule/reviews",
                           "create VirtualService/reviews"]
    assert all(not a.force for a in plan.actions if not a.internal)
    assert plan.count(Verb.CREATE) == 5 and plan.has_changes
    assert plan.inventory == Inventory.of(MESH, shop({"v1": 100}, ["v1"]))


def test_unchanged_mesh_plans_nothing_at_all() -> None:
    desired = shop({"v1": 90, "v2": 10}, ["v1", "v2"])
    live, inv = world(desired)
    plan = make_plan(desired, live, inv, mesh=MESH, prune=True)
    assert plan.steps == () and not plan.has_changes
    assert len(plan.unchanged) == len(desired)


def test_one_weight_is_one_update() -> None:
    live, inv = world(shop({"v1": 90, "v2": 10}, ["v1", "v2"]))
    plan = make_plan(shop({"v1": 50, "v2": 50}, ["v1", "v2"]), live, inv, mesh=MESH)
    assert order(plan) == ["update VirtualService/reviews"]
    assert [s.name for s in plan.steps] == ["apply VirtualService"]
    assert plan.actions[0].force  # ours (in the inventory): our fields are ours to take back


# (case, before, after, expected order of writes)
ORDERING = [
    ("new version: DestinationRule before the VirtualService that uses it",
     ({"v1": 100}, ["v1"]), ({"v1": 90, "v2": 10}, ["v1", "v2"]),
     ["create Deployment/reviews-v2", "update DestinationRule/reviews",
      "update VirtualService/reviews"]),
    ("removed version: VirtualService stops routing before the subset goes",
     ({"v1": 50, "v2": 50}, ["v1", "v2"]), ({"v1": 100}, ["v1"]),
     ["update VirtualService/reviews", "update DestinationRule/reviews",
      "delete Deployment/reviews-v2"]),
    ("swap v1 for v2: bridge with both subsets, move traffic, then drop v1",
     ({"v1": 100}, ["v1"]), ({"v2": 100}, ["v2"]),
     ["create Deployment/reviews-v2", "update(bridge) DestinationRule/reviews",
      "update VirtualService/reviews", "update DestinationRule/reviews",
      "delete Deployment/reviews-v1"]),
]


@pytest.mark.parametrize(("case", "before", "after", "expected"), ORDERING,
                         ids=[c[0] for c in ORDERING])
def test_make_before_break(case: str, before: tuple[dict[str, int], list[str]],
                           after: tuple[dict[str, int], list[str]], expected: list[str]) -> None:
    live, inv = world(shop(*before))
    plan = make_plan(shop(*after), live, inv, mesh=MESH, prune=True)
    assert order(plan) == expected, case


def test_bridge_keeps_old_subsets_and_is_not_the_final_state() -> None:
    live, inv = world(shop({"v1": 100}, ["v1"]))
    plan = make_plan(shop({"v2": 100}, ["v2"]), live, inv, mesh=MESH, prune=True)
    bridge, final = [a for a in plan.actions if a.key.kind == "DestinationRule"]
    assert bridge.bridge and not final.bridge
    assert bridge.manifest is not None and final.manifest is not None
    assert [s["name"] for s in bridge.manifest["spec"]["subsets"]] == ["v2", "v1"]
    assert [s["name"] for s in final.manifest["spec"]["subsets"]] == ["v2"]
    # a run that dies after the bridge is finished by the next run (hash differs)
    ann = "meshdsl.io/desired-hash"
    assert bridge.manifest["metadata"]["annotations"][ann] != (
        final.manifest["metadata"]["annotations"][ann])
    assert plan.count(Verb.UPDATE) == 2  # DR (final) and VS; the bridge is not counted


def test_deleting_a_service_deletes_routes_first_and_never_a_namespace() -> None:
    desired = [*shop({"v1": 100}, ["v1"]), namespace("other"), service("x"), vs("x", {"a": 1})]
    live, inv = world(desired)
    plan = make_plan([namespace("shop")], live, inv, mesh=MESH, prune=True)
    kinds = [a.key.kind for a in plan.actions if not a.internal]
    assert kinds == ["VirtualService", "VirtualService", "DestinationRule", "Deployment",
                     "Service", "Service"]
    assert plan.steps[-1].name == "update inventory"
    assert [str(k) for k in plan.leftovers] == ["Namespace/other"]  # kept, still recorded
    assert plan.inventory == Inventory.of(MESH, [namespace("shop"), namespace("other")])


def test_prune_only_what_the_inventory_records() -> None:
    desired = shop({"v1": 100}, ["v1"])
    live, inv = world([*desired, vs("gone", {"v1": 1}), vs("unlabelled", {"v1": 1})])
    # a hand-made copy with our labels, and an owned object someone stripped of its labels
    stray = stamped(vs("copy", {"v1": 1}))
    live[ResourceKey.of(stray)] = stray
    unlabelled_key = ResourceKey("networking.istio.io", "VirtualService", "shop", "unlabelled")
    live[unlabelled_key]["metadata"]["labels"] = {}
    plan = make_plan(desired, live, inv, mesh=MESH, prune=True)
    deleted = {a.key.name: a for a in plan.actions if a.verb is Verb.DELETE}
    # ours by both tests only: the unlabelled one is reported, never deleted
    assert set(deleted) == {"gone"}
    assert deleted["gone"].live is not None  # carries the uid precondition
    assert [k.name for k in plan.strays] == ["copy"]
    assert [k.name for k in plan.disowned] == ["unlabelled"]
    assert plan.inventory is not None and unlabelled_key not in plan.inventory  # forgotten


def test_without_prune_leftovers_stay_recorded() -> None:
    desired = shop({"v1": 100}, ["v1"])
    live, inv = world([*desired, vs("old", {"v1": 1})])
    plan = make_plan(desired, live, inv, mesh=MESH, prune=False)
    assert plan.steps == ()
    assert [k.name for k in plan.leftovers] == ["old"]
    assert plan.inventory is not None and len(plan.inventory) == len(desired) + 1


@pytest.mark.parametrize(("desired", "deleted"), [([], 4), ([vs("brand-new", {"v1": 1})], 4)],
                         ids=["empty program", "every owned object replaced"])
def test_pruning_everything_needs_allow_empty(desired: list[dict[str, Any]],
                                              deleted: int) -> None:
    live, inv = world(shop({"v1": 100}, ["v1"]))
    with pytest.raises(EmptyDesiredError, match="--allow-empty"):
        make_plan(desired, live, inv, mesh=MESH, prune=True)
    plan = make_plan(desired, live, inv, mesh=MESH, prune=True, allow_empty=True)
    assert plan.count(Verb.DELETE) == deleted  # the namespace stays when it holds new work
    # without --prune an empty program is harmless
    assert make_plan(desired, live, inv, mesh=MESH).count(Verb.DELETE) == 0


def test_a_namespace_holding_objects_we_keep_is_not_pruned() -> None:
    live, inv = world([namespace("shop"), vs("mine", {"v1": 1})])
    foreign = vs("theirs", {"v1": 1})
    foreign["metadata"]["labels"] = {}
    live[ResourceKey.of(foreign)] = foreign
    plan = make_plan([namespace("other")], live, inv, mesh=MESH, prune=True, allow_empty=True)
    assert order(plan) == ["create Namespace/other", "delete VirtualService/mine"]
    assert [k.name for k in plan.leftovers] == ["shop"]
    assert plan.notes == ("kept Namespace/shop: namespaces are never pruned; delete it by hand "
                          "once it is empty",)


def test_drift_is_healed_or_reported() -> None:
    desired = shop({"v1": 100}, ["v1"])
    live, inv = world(desired)
    key = ResourceKey("networking.istio.io", "VirtualService", "shop", "reviews")
    live[key]["spec"]["http"][0]["route"][0]["weight"] = 1
    healed = make_plan(desired, live, inv, mesh=MESH)
    assert order(healed) == ["update VirtualService/reviews"]
    assert healed.actions[0].reason == "drift" and healed.actions[0].force
    assert [str(m) for m in healed.drift[0].mismatches] == [
        ".spec.http[0].route[0].weight: want 100, live 1"]
    reported = make_plan(desired, live, inv, mesh=MESH, heal=False)
    assert reported.steps == () and reported.has_changes
    assert not reported.drift[0].healed and key in reported.unchanged


def test_fields_added_by_others_are_removed_when_healing() -> None:
    desired = shop({"v1": 100}, ["v1"])
    live, inv = world(desired)
    key = ResourceKey("networking.istio.io", "DestinationRule", "shop", "reviews")
    live[key]["spec"]["exportTo"] = ["."]
    live[key]["metadata"]["managedFields"] = [
        {"manager": "kubectl-edit", "fieldsV1": {"f:spec": {"f:exportTo": {}}}}]
    healed = make_plan(desired, live, inv, mesh=MESH)
    (action,) = healed.actions
    assert action.remove == (("spec", "exportTo"),) and action.manifest is None
    assert healed.steps[0].name == "heal: remove fields added by others"
    assert healed.drift[0].describe() == ".spec.exportTo added by 'kubectl-edit'"
    assert healed.count(Verb.UPDATE) == 1
    reported = make_plan(desired, live, inv, mesh=MESH, heal=False)
    assert reported.steps == () and not reported.drift[0].healed


def _theirs(name: str, labels: dict[str, str]) -> dict[str, Any]:
    obj = vs(name, {"v1": 1})
    obj["metadata"]["labels"] = labels
    obj["metadata"]["managedFields"] = [{"manager": "kubectl-client-side-apply"}]
    return obj


@pytest.mark.parametrize(("case", "labels", "recorded"), [
    ("created by someone else", {"team": "payments"}, False),
    ("a copy with our labels, not in the inventory", LABELS, False),
    ("in the inventory, labels stripped", {}, True),
    ("in the inventory, another reconciler's labels", owner_labels(MESH, "other"), True),
])
def test_an_existing_object_that_is_not_ours_is_refused_before_any_write(
        case: str, labels: dict[str, str], recorded: bool) -> None:
    theirs = _theirs("reviews", labels)
    live, inv = world([namespace("shop"), *([theirs] if recorded else [])])
    live[ResourceKey.of(theirs)] = theirs
    desired = [namespace("shop"), vs("reviews", {"v1": 100}), vs("new", {"v1": 100})]
    with pytest.raises(NotOwnedError) as caught:
        make_plan(desired, live, inv, mesh=MESH)
    (line,) = caught.value.lines
    assert line.startswith("VirtualService/shop/reviews "), case
    assert "kubectl-client-side-apply" in line and "--adopt VirtualService/shop/reviews" in line


def test_adoption_is_explicit_and_per_object() -> None:
    live, inv = world([namespace("shop")])
    for name in ("reviews", "ratings"):
        theirs = _theirs(name, {"team": "payments"})
        live[ResourceKey.of(theirs)] = theirs
    desired = [namespace("shop"), vs("reviews", {"v1": 100}), vs("ratings", {"v1": 100})]
    with pytest.raises(NotOwnedError, match="ratings"):
        make_plan(desired, live, inv, mesh=MESH, adopt={"VirtualService/shop/reviews"})
    plan = make_plan(desired, live, inv, mesh=MESH,
                     adopt={"VirtualService/shop/reviews", "VirtualService/shop/ratings"})
    actions = [a for a in plan.actions if not a.internal]
    assert {a.key.name for a in actions} == {"reviews", "ratings"}
    assert all(a.verb is Verb.UPDATE and a.force and a.reason.startswith("adopt")
               for a in actions)
    assert all(a.manifest is not None and a.manifest["metadata"]["labels"] == LABELS
               for a in actions)  # labelled ours from now on
    assert plan.steps[0].name == "record inventory"  # recorded before it is written


def test_objects_outside_the_fence_are_refused_and_never_pruned() -> None:
    policy = Policy.of({"namespaces": ["shop"]})
    kube_dns = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kube-dns", "namespace": "kube-system"}}
    control = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "meshdsl-control-default", "namespace": "meshdsl-system"}}
    payments = namespace("payments")
    live, inv = world([namespace("shop")])
    with pytest.raises(TenancyError) as caught:
        make_plan([namespace("shop"), kube_dns, control, payments], live, inv, mesh=MESH,
                  tenancy=policy)
    text = "\n".join(caught.value.lines)
    assert "Service/kube-system/kube-dns is in reserved namespace 'kube-system'" in text
    assert "ConfigMap/meshdsl-system/meshdsl-control-default is named like" in text
    assert "Namespace/payments is in namespace 'payments', outside" in text
    # an owned object outside a narrowed fence is kept, not deleted
    live, inv = world([namespace("shop"), vs("old", {"v1": 1}) | {
        "metadata": {**meta("old", "legacy")}}])
    plan = make_plan([namespace("shop")], live, inv, mesh=MESH, prune=True, tenancy=policy)
    assert not [a for a in plan.actions if a.verb is Verb.DELETE]
    assert any("kept VirtualService/legacy/old" in n for n in plan.notes)


def test_duplicates_are_rejected() -> None:
    with pytest.raises(DuplicateObjectError, match="declared twice"):
        make_plan([vs("a", {}), vs("a", {"v1": 1})], {}, None, mesh=MESH)


# --- properties -------------------------------------------------------------------------------

versions = st.lists(st.sampled_from(["v1", "v2", "v3", "v4"]), min_size=1, max_size=4,
                    unique=True)


def _mesh(services: dict[str, list[str]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [namespace()]
    for name, subsets in services.items():
        share = 100 // len(subsets)
        out += [service(name), *[deployment(name, s) for s in subsets], dr(name, subsets),
                vs(name, {s: share for s in subsets})]
    return out


meshes = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), versions, max_size=4)


def _routing_is_sound(state: dict[ResourceKey, Any]) -> list[str]:
    """Every subset a live VirtualService routes to exists in its live DestinationRule."""
    problems = []
    for key, obj in state.items():
        if key.kind != "VirtualService":
            continue
        rule = state.get(ResourceKey(key.group, "DestinationRule", key.namespace, key.name))
        have = {s["name"] for s in (rule or {}).get("spec", {}).get("subsets", [])}
        for route in obj["spec"]["http"]:
            for dest in route["route"]:
                if dest["destination"]["subset"] not in have:
                    problems.append(f"{key} routes to {dest['destination']['subset']}, "
                                    f"{key.name}'s DestinationRule has {sorted(have)}")
    return problems


@settings(max_examples=200, deadline=None)
@given(before=meshes, after=meshes)
def test_every_intermediate_state_routes_only_to_existing_subsets(
        before: dict[str, list[str]], after: dict[str, list[str]]) -> None:
    old, new = _mesh(before), _mesh(after)
    live, inv = world(old)
    plan = make_plan(new, live, inv, mesh=MESH, prune=True, allow_empty=True)
    state = dict(live)
    assert _routing_is_sound(state) == []
    for step in plan.steps:
        for action in step.actions:  # any order within a step
            if action.verb is Verb.DELETE:
                state.pop(action.key, None)
            else:
                assert action.manifest is not None
                state[action.key] = copy.deepcopy(action.manifest)
        assert _routing_is_sound(state) == [], (step.name, order(plan))
    deletes = [i for i, a in enumerate(plan.actions) if a.verb is Verb.DELETE]
    applies = [i for i, a in enumerate(plan.actions) if a.verb is not Verb.DELETE
               and not a.internal and a.key.kind != "DestinationRule"]
    assert not deletes or not applies or max(applies) < min(deletes)
    # and after running it, planning again finds nothing to do
    again = make_plan(new, state, plan.inventory, mesh=MESH, prune=True, allow_empty=True)
    assert again.steps == (), order(again)


def test_objects_proven_by_metadata_need_no_spec() -> None:
    desired = shop({"v1": 100}, ["v1"])
    live, inv = world(desired)
    for key, m in zip([*live], live.values(), strict=True):
        if key.kind in ("VirtualService", "Service"):  # metadata only, as a metadata list
            meta = m["metadata"]
            fields = {"f:metadata": {"f:annotations": {"f:meshdsl.io/desired-hash": {}},
                                     "f:labels": {f"f:{k}": {} for k in meta["labels"]}},
                      "f:spec": {f"f:{k}": {} for k in m["spec"]}}
            live[key] = {"metadata": {**meta, "managedFields": [
                {"manager": "meshdsl", "operation": "Apply", "fieldsV1": fields}]}}
    plan = make_plan(desired, live, inv, mesh=MESH)
    assert plan.steps == () and len(plan.unchanged) == len(desired)

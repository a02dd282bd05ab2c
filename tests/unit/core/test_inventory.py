"""Inventory: the record format round-trips, and ownership is membership *and* labels."""

from __future__ import annotations

from typing import Any

import pytest

from meshdsl.compile.manifest import ResourceKey, ownership_labels
from reconciler.core.errors import InventoryError
from reconciler.core.inventory import (
    FORMAT,
    Entry,
    Inventory,
    inventory_key,
    is_labelled,
    ownership,
)
from reconciler.core.ownership import owner_labels


def obj(kind: str, name: str, ns: str = "shop", api: str = "networking.istio.io/v1",
        labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    if ns:
        meta["namespace"] = ns
    return {"apiVersion": api, "kind": kind, "metadata": meta}


OURS = owner_labels("shop", "default")


def test_record_round_trips_and_is_deterministic() -> None:
    manifests = [obj("VirtualService", "b"), obj("VirtualService", "a"),
                 obj("Namespace", "shop", ns="", api="v1"),
                 obj("Deployment", "a-v1", api="apps/v1")]
    inv = Inventory.of("shop", manifests)
    cm = inv.to_manifest()
    assert cm["metadata"] == {"name": "meshdsl-inventory-shop", "namespace": "meshdsl-system",
                              "labels": ownership_labels("shop")}
    assert cm["data"]["format"] == FORMAT
    assert cm["data"]["entries"].splitlines() == [
        "_shop__Namespace v1",
        "shop_a-v1_apps_Deployment v1",
        "shop_a_networking.istio.io_VirtualService v1",
        "shop_b_networking.istio.io_VirtualService v1",
    ]
    assert Inventory.of("shop", reversed(manifests)).to_manifest() == cm
    back = Inventory.from_manifest(cm, "shop")
    assert back == inv
    assert back.api_versions()[ResourceKey("apps", "Deployment", "shop", "a-v1")] == "apps/v1"
    assert inventory_key("shop") == ResourceKey("", "ConfigMap", "meshdsl-system",
                                                "meshdsl-inventory-shop")


@pytest.mark.parametrize(("data", "message"), [
    ({"format": "other", "mesh": "shop", "entries": ""}, "not a meshdsl inventory"),
    ({"format": FORMAT, "mesh": "other", "entries": ""}, "records mesh 'other'"),
    ({"format": FORMAT, "mesh": "shop", "entries": "garbage\n"}, "malformed inventory line"),
    ({"format": FORMAT, "mesh": "shop", "entries": "a_b_c v1\n"}, "malformed inventory line"),
])
def test_unreadable_records_are_errors(data: dict[str, str], message: str) -> None:
    cm = {"metadata": {"name": "meshdsl-inventory-shop"}, "data": data}
    with pytest.raises(InventoryError, match=message):
        Inventory.from_manifest(cm, "shop")


def test_union_keeps_the_newer_api_version() -> None:
    old = Inventory.of("shop", [obj("EnvoyFilter", "f", api="networking.istio.io/v1alpha3")])
    new = Inventory.of("shop", [obj("EnvoyFilter", "f", api="networking.istio.io/v1")])
    assert {e.version for e in old.union(new).entries} == {"v1"}
    assert len(old.union(new)) == 1


def key(name: str) -> ResourceKey:
    return ResourceKey("networking.istio.io", "VirtualService", "shop", name)


# (case, recorded names or None, live objects: name -> labels) -> expected ownership sets
CASES: list[tuple[str, list[str] | None, dict[str, dict[str, str]], dict[str, set[str]]]] = [
    ("recorded and labelled: owned", ["a"], {"a": OURS},
     {"owned": {"a"}, "unlabelled": set(), "gone": set(), "strays": set()}),
    ("recorded, labels stripped: no longer ours", ["a"], {"a": {}},
     {"owned": set(), "unlabelled": {"a"}, "gone": set(), "strays": set()}),
    ("recorded, another reconciler's labels: not ours", ["a"],
     {"a": owner_labels("shop", "other")},
     {"owned": set(), "unlabelled": {"a"}, "gone": set(), "strays": set()}),
    ("mesh labels without the reconciler's: not ours", ["a"], {"a": ownership_labels("shop")},
     {"owned": set(), "unlabelled": {"a"}, "gone": set(), "strays": set()}),
    ("labelled copy, not recorded: a stray", ["a"], {"a": OURS, "copy": OURS},
     {"owned": {"a"}, "unlabelled": set(), "gone": set(), "strays": {"copy"}}),
    ("labels of another mesh: nothing", ["a"], {"a": OURS, "x": owner_labels("other", "default")},
     {"owned": {"a"}, "unlabelled": set(), "gone": set(), "strays": set()}),
    ("recorded but deleted by someone: gone", ["a", "b"], {"a": OURS},
     {"owned": {"a"}, "unlabelled": set(), "gone": {"b"}, "strays": set()}),
    ("no inventory: labels alone own nothing", None, {"a": OURS},
     {"owned": set(), "unlabelled": set(), "gone": set(), "strays": {"a"}}),
]


@pytest.mark.parametrize(("case", "recorded", "live", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_ownership_rules(case: str, recorded: list[str] | None,
                         live: dict[str, dict[str, str]], expected: dict[str, set[str]]) -> None:
    inv = (Inventory("shop", frozenset(Entry(key(n), "v1") for n in recorded))
           if recorded is not None else None)
    objects = {key(n): obj("VirtualService", n, labels=labels) for n, labels in live.items()}
    got = ownership(inv, objects, "shop")
    for field, names in expected.items():
        assert getattr(got, field) == {key(n) for n in names}, (case, field)


def test_is_labelled_needs_both_labels() -> None:
    assert is_labelled(obj("X", "a", labels=OURS), "shop")
    assert not is_labelled(obj("X", "a", labels={"meshdsl.io/mesh": "shop"}), "shop")
    assert not is_labelled({"metadata": {}}, "shop")

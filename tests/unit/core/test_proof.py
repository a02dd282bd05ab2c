"""The proof from metadata: unchanged objects need no full read, changed ones always do."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler.core.diff import stamped
from reconciler.core.proof import settled
from tests.unit.core.test_diff import DESIRED, live_of

SVC_FIELDS: dict[str, Any] = {
    "f:metadata": {"f:annotations": {"f:meshdsl.io/desired-hash": {}},
                   "f:labels": {"f:app": {}}},
    "f:spec": {"f:ports": {'k:{"port":9080,"protocol":"TCP"}': {
        ".": {}, "f:name": {}, "f:port": {}, "f:protocol": {}}},
        "f:selector": {"f:app": {}}},
}


def with_managers(obj: dict[str, Any], *entries: tuple[str, str, dict[str, Any]]
                  ) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"]["managedFields"] = [
        {"manager": m, "operation": op, "fieldsV1": f} for m, op, f in entries]
    return out


def without(fields: dict[str, Any], *path: str) -> dict[str, Any]:
    out = copy.deepcopy(fields)
    node = out
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return out


SETTLED = [
    ("our Apply entry owns everything", [("meshdsl", "Apply", SVC_FIELDS)], True),
    ("status written by a controller", [("meshdsl", "Apply", SVC_FIELDS),
                                        ("ctrl", "Update", {"f:status": {"f:x": {}}})], True),
    ("an annotation we do not set", [("meshdsl", "Apply", SVC_FIELDS), (
        "kubectl-annotate", "Update",
        {"f:metadata": {"f:annotations": {"f:note": {}}}})], True),
    ("a label we set, taken over", [("meshdsl", "Apply", without(
        SVC_FIELDS, "f:metadata", "f:labels", "f:app")), (
        "kubectl-label", "Update", {"f:metadata": {"f:labels": {"f:app": {}}}})], False),
    ("a label we set, removed (no other entry)", [("meshdsl", "Apply", without(
        SVC_FIELDS, "f:metadata", "f:labels", "f:app"))], False),
    ("a spec field of another manager", [("meshdsl", "Apply", SVC_FIELDS), (
        "kubectl-edit", "Update", {"f:spec": {"f:type": {}}})], False),
    ("a list's only element removed", [("meshdsl", "Apply", without(
        SVC_FIELDS, "f:spec", "f:ports"))], False),
    ("a list element replaced", [("meshdsl", "Apply", {**SVC_FIELDS, "f:spec": {
        **SVC_FIELDS["f:spec"], "f:ports": {'k:{"port":1,"protocol":"TCP"}': {".": {}}}}})],
     False),
    ("no managed fields at all", [], False),
    ("only an Update entry of ours", [("meshdsl", "Update", SVC_FIELDS)], False),
]


@pytest.mark.parametrize(("case", "entries", "expected"), SETTLED, ids=[c[0] for c in SETTLED])
def test_metadata_proves_an_object_unchanged_or_asks_for_a_full_read(
        case: str, entries: list[tuple[str, str, dict[str, Any]]], expected: bool) -> None:
    want = stamped(DESIRED)
    live = with_managers(live_of(want), *entries)
    assert settled(want, live, manager="meshdsl") is expected, case
    other = stamped({**DESIRED, "spec": {"ports": []}})
    assert not settled(other, live, manager="meshdsl")  # a changed program never is


def test_atomic_maps_and_lists_are_owned_whole() -> None:
    want = stamped({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                    "spec": {"selector": {"matchLabels": {"app": "d"}},
                             "template": {"spec": {"containers": [{"name": "d"}]}}}})
    fields = {"f:metadata": {"f:annotations": {"f:meshdsl.io/desired-hash": {}}},
              "f:spec": {"f:selector": {}, "f:template": {"f:spec": {"f:containers": {
                  'k:{"name":"d"}': {".": {}, "f:name": {}}}}}}}
    live = with_managers(want, ("meshdsl", "Apply", fields))
    assert settled(want, live, manager="meshdsl")
    fields["f:spec"]["f:template"]["f:spec"]["f:containers"] = {
        'k:{"name":"other"}': {".": {}, "f:name": {}}}
    assert not settled(want, with_managers(want, ("meshdsl", "Apply", fields)),
                       manager="meshdsl")

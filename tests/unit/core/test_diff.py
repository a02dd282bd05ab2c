"""Diff: server-owned fields and defaults are no change; our fields, removals and other
managers' additions are."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler.core.diff import (
    DESIRED_HASH,
    MISSING,
    ObjectState,
    compare,
    desired_hash,
    dotted,
    foreign_fields,
    mismatches,
    normalize,
    outermost,
    pointer,
    stamped,
    unified,
)

DESIRED: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "reviews", "namespace": "shop", "labels": {"app": "reviews"}},
    "spec": {"ports": [{"port": 9080, "name": "http"}], "selector": {"app": "reviews"}},
}


def live_of(desired: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """What the server returns for ``desired``: its fields plus the server's own."""
    live = copy.deepcopy(desired)
    live["metadata"].update({
        "resourceVersion": "123", "uid": "u-1", "creationTimestamp": "2024-01-01T00:00:00Z",
        "generation": 3,
        "managedFields": [{"manager": "meshdsl", "operation": "Apply", "fieldsV1": {}}],
    })
    live["spec"]["ports"][0].update({"protocol": "TCP", "targetPort": 9080})
    live["spec"].update({"clusterIP": "10.96.0.7", "type": "ClusterIP",
                         "sessionAffinity": "None"})
    live["status"] = {"loadBalancer": {}}
    for path, value in changes.items():
        node = live
        parts = path.split("__")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is MISSING:
            del node[parts[-1]]
        else:
            node[parts[-1]] = value
    return live


def test_server_fields_and_defaults_are_not_differences() -> None:
    want = stamped(DESIRED)
    assert mismatches(want, live_of(want)) == []
    assert compare(want, live_of(want), manager="meshdsl").state is ObjectState.SAME


@pytest.mark.parametrize(("change", "value", "path"), [
    ("spec__ports", [{"port": 9080, "name": "http"}, {"port": 1, "name": "x"}], ".spec.ports"),
    ("spec__selector", {"app": "ratings"}, ".spec.selector.app"),
    ("spec__selector", MISSING, ".spec.selector"),
    ("metadata__labels", {}, ".metadata.labels.app"),
    ("spec", {"ports": []}, ".spec.ports"),
])
def test_changes_to_our_fields_are_drift(change: str, value: Any, path: str) -> None:
    want = stamped(DESIRED)
    live = live_of(want, **{change: value})
    result = compare(want, live, manager="meshdsl")
    assert result.state is ObjectState.DRIFTED
    assert result.mismatches[0].path == path


def test_the_version_an_object_is_read_in_is_no_difference() -> None:
    """Paired by group and kind, read in the version the target prefers."""
    want = stamped({**DESIRED, "apiVersion": "example.com/v1beta1"})
    live = live_of(want, apiVersion="example.com/v1")
    assert mismatches(want, live) == []
    assert compare(want, live, manager="meshdsl").state is ObjectState.SAME
    drifted = compare(want, live_of(want, apiVersion="example.com/v1",
                                    spec__selector={"app": "x"}), manager="meshdsl")
    assert [m.path for m in drifted.mismatches] == [".spec.selector.app"]


def test_a_changed_program_is_a_change_even_when_only_a_field_is_removed() -> None:
    applied = stamped(DESIRED)
    live = live_of(applied)
    now = copy.deepcopy(DESIRED)
    del now["metadata"]["labels"]  # a subset check alone would call this "same"
    assert mismatches(now, live) == []
    assert compare(stamped(now), live, manager="meshdsl").state is ObjectState.CHANGED


def test_missing_object_is_new() -> None:
    assert compare(stamped(DESIRED), None, manager="meshdsl").state is ObjectState.NEW


@pytest.mark.parametrize(("want", "got", "differs"), [
    (1, 1.0, False),          # JSON numbers
    (True, 1, True),          # but a bool is not a number
    ("1", 1, True),
    ({}, None, False),        # the server drops empty maps
    ([], None, False),
    (None, "x", True),        # null means "absent"
])
def test_scalar_and_empty_rules(want: Any, got: Any, differs: bool) -> None:
    live: dict[str, Any] = {} if got is None else {"f": got}
    assert bool(mismatches({"f": want}, live)) is differs


def test_hash_ignores_its_own_annotation_and_key_order() -> None:
    a = {"kind": "X", "metadata": {"name": "a"}, "spec": {"x": 1, "y": 2}}
    b = {"spec": {"y": 2, "x": 1}, "metadata": {"name": "a"}, "kind": "X"}
    assert desired_hash(a) == desired_hash(b) == desired_hash(stamped(a))
    assert stamped(a)["metadata"]["annotations"] == {DESIRED_HASH: desired_hash(a)}
    assert desired_hash(a) != desired_hash({**a, "spec": {"x": 1}})
    assert "annotations" not in a["metadata"]  # no mutation


VS: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
    "metadata": {"name": "r", "namespace": "shop"},
    "spec": {"hosts": ["r"], "http": [{"route": [{"destination": {"host": "r"}}]}]},
}


def test_fields_added_by_another_manager_are_reported() -> None:
    want = stamped(VS)
    live = copy.deepcopy(want)
    live["spec"]["exportTo"] = ["."]
    live["metadata"]["managedFields"] = [
        {"manager": "meshdsl", "operation": "Apply",
         "fieldsV1": {"f:spec": {"f:hosts": {}, "f:http": {}}}},
        {"manager": "kubectl-edit", "operation": "Update",
         "fieldsV1": {"f:spec": {"f:exportTo": {}}}},
        {"manager": "status-writer", "operation": "Update",
         "fieldsV1": {"f:status": {"f:ok": {}}}},
        {"manager": "kubectl", "operation": "Apply",    # shares a field we set: fine
         "fieldsV1": {"f:spec": {".": {}, "f:hosts": {}}}},
    ]
    assert foreign_fields(live, want, manager="meshdsl") == {"kubectl-edit": [("spec", "exportTo")]}
    result = compare(want, live, manager="meshdsl")
    assert result.state is ObjectState.DRIFTED and not result.mismatches
    # a changed program still reports them (they survive a server-side apply)
    assert compare(stamped({**VS, "spec": {"hosts": ["x"]}}), live,
                   manager="meshdsl").foreign == {"kubectl-edit": [("spec", "exportTo")]}


def test_list_elements_of_associative_lists_end_a_path() -> None:
    live = {"metadata": {"managedFields": [{"manager": "x", "fieldsV1": {"f:spec": {
        "f:ports": {'k:{"port":1,"protocol":"TCP"}': {".": {}, "f:port": {}}}}}}]}}
    live["spec"] = {"ports": [{"port": 1}]}
    assert foreign_fields(live, {"spec": {"ports": []}}, manager="meshdsl") == {}
    assert foreign_fields(live, {"spec": {}}, manager="meshdsl") == {"x": [("spec", "ports")]}


@pytest.mark.parametrize(("path", "text", "ptr"), [
    (("spec", "exportTo"), ".spec.exportTo", "/spec/exportTo"),
    (("spec", "selector", "app.kubernetes.io/name"), '.spec.selector["app.kubernetes.io/name"]',
     "/spec/selector/app.kubernetes.io~1name"),
    (("spec", "a~b"), '.spec["a~b"]', "/spec/a~0b"),
])
def test_field_paths_for_people_and_for_json_patch(path: tuple[str, ...], text: str,
                                                   ptr: str) -> None:
    assert dotted(path) == text and pointer(path) == ptr


def test_outermost_paths_only() -> None:
    assert outermost([("spec", "tls", "mode"), ("spec", "tls"), ("spec", "a")]) == [
        ("spec", "a"), ("spec", "tls")]


def test_normalize_drops_server_fields_for_people() -> None:
    live = live_of(stamped(DESIRED))
    shown = normalize(live)
    assert set(shown["metadata"]) == {"name", "namespace", "labels"}
    assert "status" not in shown
    assert live["metadata"]["uid"] == "u-1"  # a copy


def test_unified_diff_reads_like_kubectl_diff() -> None:
    before = live_of(stamped(DESIRED))
    after = copy.deepcopy(before)
    after["spec"]["selector"] = {"app": "ratings"}
    lines = unified(before, after, name="Service/shop/reviews")
    assert lines[:2] == ["--- live/Service/shop/reviews", "+++ desired/Service/shop/reviews"]
    assert "-    app: reviews" in lines and "+    app: ratings" in lines
    assert not any("resourceVersion" in line or DESIRED_HASH in line for line in lines)
    assert unified(before, copy.deepcopy(before), name="x") == []
    created = unified(None, after, name="x")
    assert created[2].startswith("@@ -0,0") and all(
        line.startswith("+") for line in created[3:])


def test_what_the_server_stores_otherwise_is_no_mismatch() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "stringData": {"password": "s3cret"}, "data": {"kept": "eWVz"}}
    live = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"kept": "eWVz", "password": "czNjcmV0"}}
    assert mismatches(secret, live) == []
    live["data"]["password"] = "b3RoZXI="   # someone changed it
    assert [m.path for m in mismatches(secret, live)] == ['.data.password']
    deploy = {"kind": "Deployment", "spec": {"serviceAccountName": "", "replicas": 1}}
    assert mismatches(deploy, {"kind": "Deployment", "spec": {"replicas": 1}}) == []
    assert mismatches(deploy, {"kind": "Deployment",
                               "spec": {"replicas": 1, "serviceAccountName": "x"}}) != []

"""The apply engine against a real kube-apiserver 1.20.2 with Istio's CRDs.

Each test works in its own namespaces and mesh name (the server is shared by the session
and has no namespace controller). Writes are checked twice: by the target's own counter
and by the objects' resourceVersions on the server.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from meshdsl import Mesh
from meshdsl.compile import compile_mesh
from meshdsl.compile.manifest import CONFIG_MAP, MESH_LABEL, Manifest, ResourceKey
from reconciler.core.diff import mismatches
from reconciler.core.errors import EmptyDesiredError
from reconciler.core.inventory import Inventory, inventory_name
from reconciler.core.ownership import NotOwnedError
from reconciler.core.plan import Verb
from reconciler.runtime.apply import Options, RejectedError, apply, diff
from reconciler.targets.kube import Forbidden, KubeError, KubeTarget, Unreachable
from reconciler.testing.apiserver import LocalApiServer
from tests.conftest import load_example
from tests.integration.conftest import unique

pytestmark = pytest.mark.integration

MESHCTL = [sys.executable, "-c", "from reconciler.cli import main; main()"]
NET = "networking.istio.io"


def kubectl(apiserver: LocalApiServer, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(apiserver.kubectl_argv(*args), input=stdin, capture_output=True,
                            text=True, timeout=60, check=True)
    return result.stdout


# --- meshes -----------------------------------------------------------------------------------


def bookinfo(suffix: str, weights: dict[str, int] | None = None) -> tuple[str, list[Manifest]]:
    """The bookinfo example, moved to namespaces of its own (``bookinfo-<s>`` and
    ``users-<s>`` for what the example puts in ``default``) and renamed mesh."""
    spec = load_example("bookinfo")
    compiled = compile_mesh(spec, weights={("bookinfo", "reviews"): weights} if weights
                            else None)
    rename = {"bookinfo": f"bookinfo-{suffix}", "default": f"users-{suffix}"}
    mesh = f"bookinfo-{suffix}"
    out: list[Manifest] = []
    for manifest in copy.deepcopy(compiled):
        meta = manifest["metadata"]
        if manifest["kind"] == "Namespace":
            meta["name"] = rename[meta["name"]]
        elif meta.get("namespace") in rename:
            meta["namespace"] = rename[meta["namespace"]]
        meta["labels"][MESH_LABEL] = mesh
        out.append(manifest)
    users_ns = copy.deepcopy(next(m for m in out if m["kind"] == "Namespace"))
    users_ns["metadata"]["name"] = f"users-{suffix}"
    return mesh, [users_ns, *out]


def shop(mesh_name: str, ns: str, weights: dict[str, int]) -> list[Manifest]:
    """A small mesh: ``reviews`` with one Deployment per version and a weighted route."""
    mesh = Mesh(mesh_name)
    scope = mesh.namespace(ns)
    reviews = scope.service("reviews", port=9080, versions=list(weights))
    for version in weights:
        reviews.deploy(version, image=f"example/reviews-{version}:1.0")
    reviews.route(to={reviews[v]: w for v, w in weights.items()})
    ratings = scope.service("ratings", port=9080)
    ratings.deploy("v1", image="example/ratings-v1:1.0")
    return compile_mesh(mesh.build())


def key_of(kind: str, ns: str, name: str) -> ResourceKey:
    group = {"VirtualService": NET, "DestinationRule": NET, "Deployment": "apps"}.get(kind, "")
    return ResourceKey(group, kind, ns, name)


def live_objects(target: KubeTarget, desired: list[Manifest]) -> dict[ResourceKey, Manifest]:
    out: dict[ResourceKey, Manifest] = {}
    for m in desired:
        obj = target.get(ResourceKey.of(m))
        if obj is not None:
            out[ResourceKey.of(m)] = obj
    return out


def versions_of(objects: dict[ResourceKey, Manifest]) -> dict[ResourceKey, str]:
    return {k: v["metadata"]["resourceVersion"] for k, v in objects.items()}


def recorded(target: KubeTarget, mesh: str) -> Inventory | None:
    cm = target.get(CONFIG_MAP.key("meshdsl-system", inventory_name(mesh)))
    return Inventory.from_manifest(cm, mesh) if cm is not None else None


def vs_routes(target: KubeTarget, ns: str, name: str = "reviews") -> list[tuple[str, int]]:
    vs = target.get(ResourceKey(NET, "VirtualService", ns, name))
    assert vs is not None
    return [(r["destination"]["subset"], r.get("weight", 100))
            for r in vs["spec"]["http"][-1]["route"]]


# --- apply, re-apply, change ------------------------------------------------------------------


def test_bookinfo_first_apply_creates_everything_as_declared(target: KubeTarget) -> None:
    mesh, desired = bookinfo(uuid.uuid4().hex[:6])
    result = apply(target, desired, mesh=mesh)

    assert result.summary()["created"] == len(desired) > 20
    # + the inventory ConfigMap, and its namespace unless an earlier test created it
    assert result.write_calls in (len(desired) + 1, len(desired) + 2)
    assert result.warnings == []
    live = live_objects(target, desired)
    assert set(live) == {ResourceKey.of(m) for m in desired}
    for m in desired:  # read back: every field we set is stored as sent
        assert mismatches(m, live[ResourceKey.of(m)]) == [], ResourceKey.of(m)
        managers = {(f["manager"], f["operation"])
                    for f in live[ResourceKey.of(m)]["metadata"]["managedFields"]}
        assert ("meshdsl", "Apply") in managers
    inventory = recorded(target, mesh)
    assert inventory is not None and inventory.keys == {ResourceKey.of(m) for m in desired}
    # the kinds went out in apply order
    kinds = [w.split("/")[0] for verb, w in target.writes if verb == "apply"]
    order = ["ConfigMap", "Namespace", "Service", "Deployment", "DestinationRule", "Gateway",
             "VirtualService", "PeerAuthentication", "AuthorizationPolicy", "EnvoyFilter"]
    assert [k for k in order if k in kinds] == sorted(set(kinds), key=order.index)
    firsts = [kinds.index(k) for k in order[2:] if k in kinds]
    assert firsts == sorted(firsts)


def test_bookinfo_reapply_makes_zero_writes(target: KubeTarget) -> None:
    mesh, desired = bookinfo(uuid.uuid4().hex[:6])
    apply(target, desired, mesh=mesh, options=Options(prune=True))
    before = versions_of(live_objects(target, desired))
    inventory_rv = target.get(CONFIG_MAP.key("meshdsl-system", inventory_name(mesh)))

    writes = target.write_calls
    result = apply(target, desired, mesh=mesh, options=Options(prune=True))
    assert result.write_calls == 0 and target.write_calls == writes
    assert result.summary() == {"created": 0, "updated": 0, "unchanged": len(desired),
                                "pruned": 0, "drifted": 0}
    assert result.plan.steps == ()
    assert versions_of(live_objects(target, desired)) == before
    again = target.get(CONFIG_MAP.key("meshdsl-system", inventory_name(mesh)))
    assert inventory_rv is not None and again is not None
    assert again["metadata"]["resourceVersion"] == inventory_rv["metadata"]["resourceVersion"]
    plan, diffs = diff(target, desired, mesh=mesh, options=Options(prune=True))
    assert diffs == [] and not plan.has_changes


def test_fields_the_server_stores_otherwise_are_no_change(target: KubeTarget) -> None:
    """A Secret's ``stringData`` is stored base64 in ``data``, and an empty
    ``serviceAccountName`` is dropped: re-applying either writes nothing."""
    ns = unique("stored")
    mesh = Mesh(f"stored-{ns}", namespace=ns)
    mesh.namespace(ns)
    mesh.raw({"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "creds", "namespace": ns},
              "stringData": {"password": "s3cret", "url": "https://db:5432"},
              "data": {"kept": "eWVz"}})
    mesh.raw({"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "worker", "namespace": ns},
              "spec": {"selector": {"matchLabels": {"app": "worker"}},
                       "template": {"metadata": {"labels": {"app": "worker"}},
                                    "spec": {"serviceAccountName": "",
                                             "containers": [{"name": "w", "image": "w:1"}]}}}})
    desired = compile_mesh(mesh.build())
    apply(target, desired, mesh=f"stored-{ns}")
    live = target.get(ResourceKey("", "Secret", ns, "creds"))
    assert live is not None and "stringData" not in live and live["data"]["kept"] == "eWVz"
    before = versions_of(live_objects(target, desired))
    writes = target.write_calls
    result = apply(target, desired, mesh=f"stored-{ns}")
    assert result.write_calls == 0 and target.write_calls == writes, result.summary()
    assert result.summary()["unchanged"] == len(desired)
    assert versions_of(live_objects(target, desired)) == before
    # field by field (what drift detection and `meshctl diff` compare), nothing differs
    for manifest in desired:
        live_obj = target.get(ResourceKey.of(manifest))
        assert live_obj is not None and mismatches(manifest, live_obj) == [], manifest["kind"]
    plan, diffs = diff(target, desired, mesh=f"stored-{ns}")
    assert diffs == [] and not plan.has_changes
    # a real change to the password is still one
    changed = copy.deepcopy(desired)
    next(m for m in changed if m["kind"] == "Secret")["stringData"]["password"] = "other"
    assert apply(target, changed, mesh=f"stored-{ns}").summary()["updated"] == 1


def test_changing_one_weight_is_one_update(target: KubeTarget) -> None:
    suffix = uuid.uuid4().hex[:6]
    mesh, desired = bookinfo(suffix)
    apply(target, desired, mesh=mesh)
    before = versions_of(live_objects(target, desired))

    _, changed = bookinfo(suffix, weights={"v1": 90, "v2": 10})
    _, diffs = diff(target, changed, mesh=mesh)
    assert [str(d.action.key) for d in diffs] == [f"VirtualService/bookinfo-{suffix}/reviews"]
    text = "\n".join(diffs[0].lines)
    assert "+      weight: 90" in text and "+        subset: v2" in text

    target.writes.clear()
    result = apply(target, changed, mesh=mesh)
    assert result.write_calls == 1
    assert list(target.writes) == [("apply", f"VirtualService/bookinfo-{suffix}/reviews")]
    assert result.summary()["updated"] == 1
    assert result.summary()["unchanged"] == len(desired) - 1
    after = versions_of(live_objects(target, changed))
    changed_keys = {k for k in before if before[k] != after[k]}
    assert changed_keys == {key_of("VirtualService", f"bookinfo-{suffix}", "reviews")}
    assert vs_routes(target, f"bookinfo-{suffix}") == [("v1", 90), ("v2", 10)]


# --- ordering ---------------------------------------------------------------------------------


def test_adding_then_removing_a_version_is_make_before_break(target: KubeTarget) -> None:
    mesh, ns = unique("shop"), unique("shop")
    apply(target, shop(mesh, ns, {"v1": 100}), mesh=mesh)

    target.writes.clear()
    apply(target, shop(mesh, ns, {"v1": 50, "v2": 50}), mesh=mesh, options=Options(prune=True))
    assert [w for w in target.writes if "ConfigMap" not in w[1]] == [
        ("apply", f"Deployment/{ns}/reviews-v2"),
        ("apply", f"DestinationRule/{ns}/reviews"),      # the new subset first ...
        ("apply", f"VirtualService/{ns}/reviews"),       # ... then the traffic
    ]

    target.writes.clear()
    result = apply(target, shop(mesh, ns, {"v1": 100}), mesh=mesh, options=Options(prune=True))
    assert list(target.writes) == [
        ("apply", f"VirtualService/{ns}/reviews"),       # traffic leaves v2 ...
        ("apply", f"DestinationRule/{ns}/reviews"),      # ... before the subset goes
        ("delete", f"Deployment/{ns}/reviews-v2"),
        ("apply", f"ConfigMap/meshdsl-system/{inventory_name(mesh)}"),
    ]
    assert result.summary()["pruned"] == 1 and result.summary()["updated"] == 2
    dr = target.get(ResourceKey(NET, "DestinationRule", ns, "reviews"))
    assert dr is not None and [s["name"] for s in dr["spec"]["subsets"]] == ["v1"]
    assert target.get(ResourceKey("apps", "Deployment", ns, "reviews-v2")) is None
    assert vs_routes(target, ns) == [("v1", 100)]


def test_swapping_versions_bridges_the_destination_rule(target: KubeTarget) -> None:
    mesh, ns = unique("shop"), unique("shop")
    apply(target, shop(mesh, ns, {"v1": 100}), mesh=mesh)
    target.writes.clear()
    apply(target, shop(mesh, ns, {"v2": 100}), mesh=mesh, options=Options(prune=True))
    assert [w for w in target.writes if "ConfigMap" not in w[1]] == [
        ("apply", f"Deployment/{ns}/reviews-v2"),
        ("apply", f"DestinationRule/{ns}/reviews"),      # bridge: v2 and v1
        ("apply", f"VirtualService/{ns}/reviews"),
        ("apply", f"DestinationRule/{ns}/reviews"),      # final: v2 only
        ("delete", f"Deployment/{ns}/reviews-v1"),
    ]
    dr = target.get(ResourceKey(NET, "DestinationRule", ns, "reviews"))
    assert dr is not None and [s["name"] for s in dr["spec"]["subsets"]] == ["v2"]
    assert apply(target, shop(mesh, ns, {"v2": 100}), mesh=mesh).write_calls == 0


# --- ownership and prune ----------------------------------------------------------------------


def test_prune_spares_a_labelled_copy_and_an_unlabelled_object(
        target: KubeTarget, apiserver: LocalApiServer) -> None:
    mesh, ns = unique("shop"), unique("shop")
    desired = shop(mesh, ns, {"v1": 100})
    apply(target, desired, mesh=mesh)

    # someone hand-copies our live VirtualService, labels and all, under another name
    live_vs = target.get(ResourceKey(NET, "VirtualService", ns, "reviews"))
    assert live_vs is not None
    copy_vs = copy.deepcopy(next(m for m in desired if m["kind"] == "VirtualService"))
    copy_vs["metadata"]["name"] = "reviews-copy"
    copy_vs["metadata"]["labels"] = live_vs["metadata"]["labels"]
    kubectl(apiserver, "apply", "-f", "-", stdin=json.dumps(copy_vs))
    # ... and strips our labels from the ratings Service we created
    kubectl(apiserver, "label", "-n", ns, "service", "ratings",
            "app.kubernetes.io/managed-by-", f"{MESH_LABEL}-")

    without_ratings = [m for m in desired if m["metadata"]["name"] not in
                       ("ratings", "ratings-v1")]
    result = apply(target, without_ratings, mesh=mesh, options=Options(prune=True))

    assert target.get(ResourceKey(NET, "VirtualService", ns, "reviews-copy")) is not None
    assert [str(k) for k in result.plan.strays] == [f"VirtualService/{ns}/reviews-copy"]
    # ours by both tests only: the unlabelled Service is reported and kept
    assert target.get(ResourceKey("", "Service", ns, "ratings")) is not None
    assert [str(k) for k in result.plan.disowned] == [f"Service/{ns}/ratings"]
    assert target.get(ResourceKey("apps", "Deployment", ns, "ratings-v1")) is None
    pruned = {str(o.action.key) for o in result.outcomes if o.result == "pruned"}
    assert pruned == {f"Deployment/{ns}/ratings-v1"}
    inventory = recorded(target, mesh)
    assert inventory is not None
    assert inventory.keys == {ResourceKey.of(m) for m in without_ratings}


def test_dry_runs_and_diffs_never_delete(target: KubeTarget) -> None:
    mesh, ns = unique("shop"), unique("shop")
    desired = shop(mesh, ns, {"v1": 50, "v2": 50})
    apply(target, desired, mesh=mesh)
    before = versions_of(live_objects(target, desired))
    writes = target.write_calls
    smaller = shop(mesh, ns, {"v1": 100})

    plan, diffs = diff(target, smaller, mesh=mesh, options=Options(prune=True))
    assert plan.count(Verb.DELETE) == 1
    deleted = next(d for d in diffs if d.action.verb is Verb.DELETE)
    assert "-kind: Deployment" in deleted.lines and "-  name: reviews-v2" in deleted.lines
    result = apply(target, smaller, mesh=mesh, options=Options(prune=True, dry_run=True))
    assert [o.result for o in result.outcomes].count("would delete") == 1
    assert target.write_calls == writes
    assert versions_of(live_objects(target, desired)) == before  # all still there


def test_pruning_everything_needs_allow_empty(target: KubeTarget) -> None:
    mesh, ns = unique("shop"), unique("shop")
    desired = [m for m in shop(mesh, ns, {"v1": 100}) if m["kind"] != "Namespace"]
    kubectl_ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    target.apply(kubectl_ns, force=True)  # a namespace the mesh does not own
    apply(target, desired, mesh=mesh)
    writes = target.write_calls

    with pytest.raises(EmptyDesiredError, match="--allow-empty"):
        apply(target, [], mesh=mesh, options=Options(prune=True))
    assert target.write_calls == writes
    assert len(live_objects(target, desired)) == len(desired)

    result = apply(target, [], mesh=mesh, options=Options(prune=True, allow_empty=True))
    assert result.summary()["pruned"] == len(desired)
    assert live_objects(target, desired) == {}
    inventory = recorded(target, mesh)
    assert inventory is not None and len(inventory) == 0


# --- drift ------------------------------------------------------------------------------------


def test_hand_edit_is_detected_reported_and_healed(target: KubeTarget,
                                                   apiserver: LocalApiServer) -> None:
    mesh, ns = unique("shop"), unique("shop")
    desired = shop(mesh, ns, {"v1": 90, "v2": 10})
    apply(target, desired, mesh=mesh)
    patch = {"spec": {"http": [{"route": [
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 100}]}]}}
    kubectl(apiserver, "patch", "-n", ns, "virtualservice", "reviews", "--type=merge",
            "-p", json.dumps(patch))

    plan, diffs = diff(target, desired, mesh=mesh)
    assert [str(d.key) for d in plan.drift] == [f"VirtualService/{ns}/reviews"]
    assert ".spec.http[0].route" in plan.drift[0].describe()
    lines = [line for d in diffs for line in d.lines]
    assert "+        subset: v1" in lines and "-      weight: 100" in lines

    reported = apply(target, desired, mesh=mesh, options=Options(heal=False))
    assert reported.write_calls == 0 and not reported.plan.drift[0].healed
    assert vs_routes(target, ns) == [("v2", 100)]

    healed = apply(target, desired, mesh=mesh)
    assert healed.write_calls == 1 and healed.plan.drift[0].healed
    assert vs_routes(target, ns) == [("v1", 90), ("v2", 10)]
    assert apply(target, desired, mesh=mesh).write_calls == 0


def test_fields_added_by_hand_are_drift_removed_when_healing(target: KubeTarget,
                                                     apiserver: LocalApiServer) -> None:
    mesh, ns = unique("shop"), unique("shop")
    desired = shop(mesh, ns, {"v1": 100})
    apply(target, desired, mesh=mesh)
    kubectl(apiserver, "patch", "-n", ns, "destinationrule", "reviews", "--type=merge",
            "-p", '{"spec":{"exportTo":["."]}}')
    reported = apply(target, desired, mesh=mesh, options=Options(heal=False))
    assert reported.write_calls == 0 and not reported.plan.drift[0].healed
    result = apply(target, desired, mesh=mesh)
    (drift,) = result.plan.drift
    assert drift.foreign == {"kubectl-patch": [("spec", "exportTo")]}
    assert drift.healed and result.write_calls == 1
    assert target.writes[-1] == ("patch", f"DestinationRule/{ns}/reviews")
    dr = target.get(ResourceKey(NET, "DestinationRule", ns, "reviews"))
    assert dr is not None and "exportTo" not in dr["spec"]
    again = apply(target, desired, mesh=mesh)
    assert again.write_calls == 0 and again.plan.drift == ()


# --- rejections and errors --------------------------------------------------------------------


def invalid_vs(ns: str) -> Manifest:
    return {"apiVersion": f"{NET}/v1", "kind": "VirtualService",
            "metadata": {"name": "broken", "namespace": ns},
            "spec": {"hosts": ["reviews"], "http": [{"route": [
                {"destination": {"host": "reviews", "subset": "v1"}, "weight": "ten"}]}]}}


def test_invalid_object_is_rejected_by_the_server_and_nothing_is_written(
        target: KubeTarget) -> None:
    mesh, ns = unique("shop"), unique("shop")
    apply(target, shop(mesh, ns, {"v1": 100}), mesh=mesh)
    before = versions_of(live_objects(target, shop(mesh, ns, {"v1": 100})))
    writes = target.write_calls

    # a real change (new version, weights) together with one invalid object
    changed = [*shop(mesh, ns, {"v1": 50, "v2": 50}), invalid_vs(ns)]
    with pytest.raises(RejectedError) as info:
        apply(target, changed, mesh=mesh)
    assert len(info.value.lines) == 1
    assert f"VirtualService/{ns}/broken" in info.value.lines[0]
    assert "must be of type integer" in info.value.lines[0]
    assert target.write_calls == writes
    assert versions_of(live_objects(target, shop(mesh, ns, {"v1": 100}))) == before
    assert target.get(ResourceKey("apps", "Deployment", ns, "reviews-v2")) is None

    # also when the invalid object's namespace is new: not even the namespace is created
    fresh_mesh, fresh_ns = unique("shop"), unique("fresh")
    with pytest.raises(RejectedError):
        apply(target, [*shop(fresh_mesh, fresh_ns, {"v1": 100}), invalid_vs(fresh_ns)],
              mesh=fresh_mesh)
    assert target.write_calls == writes
    assert target.get(ResourceKey("", "Namespace", "", fresh_ns)) is None
    assert recorded(target, fresh_mesh) is None


def test_existing_object_of_another_manager_is_refused_until_adopted(
        target: KubeTarget, apiserver: LocalApiServer) -> None:
    mesh, ns = unique("shop"), unique("shop")
    desired = shop(mesh, ns, {"v1": 100})
    theirs = copy.deepcopy(next(m for m in desired if m["kind"] == "VirtualService"))
    theirs["metadata"]["labels"] = {"team": "other"}
    theirs["spec"]["http"][0]["timeout"] = "3s"
    kubectl(apiserver, "create", "namespace", ns)
    kubectl(apiserver, "create", "-f", "-", stdin=json.dumps(theirs))
    writes = target.write_calls

    with pytest.raises(NotOwnedError) as info:
        apply(target, desired, mesh=mesh)
    assert [line.split(" ")[0] for line in info.value.lines] == [
        f"Namespace/{ns}", f"VirtualService/{ns}/reviews"]
    assert "(owner: field managers kubectl-create)" in info.value.lines[1]
    assert f"--adopt VirtualService/{ns}/reviews" in info.value.lines[1]
    assert target.write_calls == writes

    adopt = frozenset({f"Namespace/{ns}", f"VirtualService/{ns}/reviews"})
    adopted = apply(target, desired, mesh=mesh, options=Options(adopt=adopt))
    assert any(o.action.reason.startswith("adopt") for o in adopted.outcomes)
    inventory = recorded(target, mesh)
    assert inventory is not None and key_of("VirtualService", ns, "reviews") in inventory
    vs = target.get(ResourceKey(NET, "VirtualService", ns, "reviews"))
    assert vs is not None and "timeout" not in vs["spec"]["http"][0]
    assert apply(target, desired, mesh=mesh).write_calls == 0


def test_forbidden_and_unreachable_are_clear_errors(apiserver: LocalApiServer) -> None:
    mesh, ns = unique("shop"), unique("shop")
    with KubeTarget.from_kubeconfig(str(apiserver.kubeconfig), impersonate="nobody") as t, \
            pytest.raises(Forbidden, match=r'^403 Forbidden: .*User "nobody" cannot get'):
        apply(t, shop(mesh, ns, {"v1": 100}), mesh=mesh)
    with KubeTarget(_client_for("https://127.0.0.1:1"), attempts=2) as t, \
            pytest.raises(Unreachable, match=r"cannot reach .* connection refused"):
        apply(t, shop(mesh, ns, {"v1": 100}), mesh=mesh)


def _client_for(url: str) -> Any:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = url
    configuration.retries = False
    return client.ApiClient(configuration=configuration)


class _DiesAfter(KubeTarget):
    """The real target, but the process "dies" after ``n`` writes."""

    limit = 0

    def apply(self, manifest: dict[str, Any], *, force: bool, dry_run: bool = False
              ) -> dict[str, Any]:
        if not dry_run and self.write_calls >= self.limit:
            raise KubeError("simulated crash")
        return super().apply(manifest, force=force, dry_run=dry_run)


def test_a_run_that_dies_half_way_is_finished_by_the_next(apiserver: LocalApiServer,
                                                          target: KubeTarget) -> None:
    mesh, ns = unique("shop"), unique("shop")
    desired = shop(mesh, ns, {"v1": 90, "v2": 10})
    dying = _DiesAfter.from_kubeconfig(str(apiserver.kubeconfig))
    assert isinstance(dying, _DiesAfter)
    dying.limit = 5
    with dying, pytest.raises(KubeError, match="simulated crash"):
        apply(dying, desired, mesh=mesh, options=Options(workers=1))
    # the inventory was written first and names everything, so nothing is orphaned
    inventory = recorded(target, mesh)
    assert inventory is not None and inventory.keys == {ResourceKey.of(m) for m in desired}
    assert 0 < len(live_objects(target, desired)) < len(desired)

    result = apply(target, desired, mesh=mesh, options=Options(prune=True))
    assert len(live_objects(target, desired)) == len(desired)
    assert result.summary()["created"] > 0
    assert apply(target, desired, mesh=mesh, options=Options(prune=True)).write_calls == 0


# --- the CLI ----------------------------------------------------------------------------------


def shop_program(tmp_path: Path, mesh: str, ns: str, weights: dict[str, int],
                 extra: str = "") -> Path:
    path = tmp_path / f"{mesh}.py"
    versions = list(weights)
    path.write_text(textwrap.dedent(f"""
        from meshdsl import Mesh

        mesh = Mesh({mesh!r})
        ns = mesh.namespace({ns!r})
        reviews = ns.service("reviews", port=9080, versions={versions!r})
        for v in {versions!r}:
            reviews.deploy(v, image=f"example/reviews-{{v}}:1.0")
        reviews.route(to={{reviews[v]: w for v, w in {weights!r}.items()}})
        """) + textwrap.dedent(extra))
    return path


def meshctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MESHCTL, *args], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_cli_diff_and_apply_exit_codes_and_output(apiserver: LocalApiServer,
                                                  tmp_path: Path) -> None:
    mesh, ns = unique("shop"), unique("shop")
    kc = str(apiserver.kubeconfig)
    program = shop_program(tmp_path, mesh, ns, {"v1": 100})

    first = meshctl("diff", str(program), "--kubeconfig", kc)
    assert first.returncode == 1, first.stderr
    assert f"+++ desired/VirtualService/{ns}/reviews" in first.stdout

    applied = meshctl("apply", str(program), "--kubeconfig", kc)
    assert applied.returncode == 0, applied.stderr
    lines = applied.stdout.splitlines()
    assert f"created Namespace/{ns}" in lines and f"created VirtualService/{ns}/reviews" in lines
    # + the inventory ConfigMap (and its namespace, when this test runs first)
    assert re.match(rf"mesh {mesh}: 5 created, 0 updated, 0 unchanged, 0 pruned "
                    r"\([67] write\(s\), [0-9.]+ s\)$", lines[-1]), lines[-1]

    assert meshctl("diff", str(program), "--kubeconfig", kc).returncode == 0
    again = meshctl("apply", str(program), "--kubeconfig", kc, "-o", "json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["writeCalls"] == 0 and report["summary"]["unchanged"] == 5

    changed = shop_program(tmp_path, mesh, ns, {"v1": 100, "v2": 0})
    dry = meshctl("apply", str(changed), "--kubeconfig", kc, "--dry-run")
    assert dry.returncode == 0 and "would update" in dry.stdout and "nothing written" in dry.stdout
    assert meshctl("diff", str(changed), "--kubeconfig", kc).returncode == 1


def test_cli_errors_are_one_line(apiserver: LocalApiServer, tmp_path: Path,
                                 unreachable_kubeconfig: Path) -> None:
    mesh, ns = unique("shop"), unique("shop")
    kc = str(apiserver.kubeconfig)
    program = shop_program(tmp_path, mesh, ns, {"v1": 100})
    unreachable = unreachable_kubeconfig

    invalid = shop_program(tmp_path, mesh, ns, {"v1": 100}, extra=f"""
        mesh.raw({json.dumps(invalid_vs(ns))})
        """)
    cases = [
        (("diff", str(program), "--kubeconfig", str(unreachable)), 2,
         "error: cannot reach the Kubernetes API server at https://127.0.0.1:1: "
         "connection refused"),
        (("apply", str(program), "--kubeconfig", kc, "--as", "nobody"), 2,
         "error: 403 Forbidden: ConfigMap/meshdsl-system/"),
        (("apply", str(program), "--kubeconfig", kc, "--context", "nope"), 2,
         f"error: cannot load {kc} (context 'nope')"),
        (("apply", str(invalid), "--kubeconfig", kc), 1,
         f"error: 422 Invalid: VirtualService/{ns}/broken:"),
        (("diff", str(invalid), "--kubeconfig", kc), 2,
         f"error: 422 Invalid: VirtualService/{ns}/broken:"),
    ]
    for args, code, start in cases:
        result = meshctl(*args)
        assert result.returncode == code, (args, result.stderr)
        first, *rest = result.stderr.splitlines()
        assert first.startswith(start), (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(rest) <= 1, result.stderr  # rejections add one summary line
    assert recorded_via_cli_nothing(apiserver, mesh)


def recorded_via_cli_nothing(apiserver: LocalApiServer, mesh: str) -> bool:
    with KubeTarget.from_kubeconfig(str(apiserver.kubeconfig)) as t:
        return recorded(t, mesh) is None


def test_cli_prune_guard(apiserver: LocalApiServer, tmp_path: Path) -> None:
    mesh, ns = unique("shop"), unique("shop")
    kc = str(apiserver.kubeconfig)
    assert meshctl("apply", str(shop_program(tmp_path, mesh, ns, {"v1": 100})),
                   "--kubeconfig", kc).returncode == 0
    empty = tmp_path / "empty.py"
    empty.write_text(f"from meshdsl import Mesh\nmesh = Mesh({mesh!r})\n")
    refused = meshctl("apply", str(empty), "--kubeconfig", kc, "--prune")
    assert refused.returncode == 1
    assert "would delete all 5 object(s)" in refused.stderr and "--allow-empty" in refused.stderr
    kept = meshctl("apply", str(empty), "--kubeconfig", kc)  # no --prune: harmless
    assert kept.returncode == 0 and "5 owned object(s) no longer declared" in kept.stdout

"""``MeshStack`` under Pulumi's mocks: resources, names, parents, dependencies, outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from meshdsl.compile import compile_mesh
from meshdsl.compile.manifest import KIND_ORDER, ResourceKey, order_key
from meshdsl.model import Mesh, MeshSpec, Tenancy
from stacks.component import TYPE_TOKEN, MeshStack, builtin_class, logical_name
from stacks.errors import MeshStackError
from stacks.testing import Registration, Run, run_program
from tests.unit.stacks.projects import BOOKINFO_PROGRAM

EXPECTED_TYPES = {
    "Namespace": "kubernetes:core/v1:Namespace",
    "ServiceAccount": "kubernetes:core/v1:ServiceAccount",
    "Service": "kubernetes:core/v1:Service",
    "Deployment": "kubernetes:apps/v1:Deployment",
    "DestinationRule": "kubernetes:networking.istio.io/v1:DestinationRule",
    "Gateway": "kubernetes:networking.istio.io/v1:Gateway",
    "VirtualService": "kubernetes:networking.istio.io/v1:VirtualService",
    "PeerAuthentication": "kubernetes:security.istio.io/v1:PeerAuthentication",
    "AuthorizationPolicy": "kubernetes:security.istio.io/v1:AuthorizationPolicy",
    "EnvoyFilter": "kubernetes:networking.istio.io/v1alpha3:EnvoyFilter",
}


def stack_of(mesh: Mesh | MeshSpec, name: str = "mesh", **kwargs: object) -> Run:
    return run_program(lambda: MeshStack(name, mesh, **kwargs))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def run(bookinfo: MeshSpec) -> Run:
    return stack_of(bookinfo, "bookinfo")


def children(run: Run) -> list[Registration]:
    return run.children(run.component())


def test_one_resource_per_compiled_object_with_its_type(run: Run, bookinfo: MeshSpec) -> None:
    compiled = compile_mesh(bookinfo)
    kids = children(run)
    assert len(kids) == len(compiled) == 22
    assert [k.type for k in kids] == [EXPECTED_TYPES[m["kind"]] for m in compiled]
    assert sorted(k.urn for k in run.registrations if k.custom) == sorted(k.urn for k in kids)


def test_inputs_are_exactly_the_compiled_manifests(run: Run, bookinfo: MeshSpec) -> None:
    assert run.manifests() == compile_mesh(bookinfo)


def test_same_objects_as_meshctl_render() -> None:
    """The resource set (and every body) equals `meshctl render` of the same program."""
    meshctl = Path(sys.executable).parent / "meshctl"
    rendered = json.loads(subprocess.run(
        [str(meshctl), "render", "--format", "json", str(BOOKINFO_PROGRAM)],
        capture_output=True, text=True, check=True, timeout=120).stdout)
    from stacks.program import deploy

    stack = run_program(lambda: deploy(BOOKINFO_PROGRAM), config={"meshdsl:canary": "true"})
    assert stack.manifests() == rendered
    assert stack.exports["resources"] == [str(ResourceKey.of(m)) for m in rendered]


def test_logical_names_are_kind_namespace_name(run: Run) -> None:
    names = [k.name for k in children(run)]
    assert names[:3] == ["namespace-bookinfo", "service-bookinfo-productpage",
                         "service-bookinfo-ratings"]
    assert "virtualservice-default-frontend" in names
    assert "envoyfilter-bookinfo-filter-ratelimit" in names
    for kid in children(run):
        key = ResourceKey.of(kid.inputs)
        assert kid.name == "-".join(p for p in (key.kind, key.namespace, key.name) if p).lower()


def test_names_are_stable_so_nothing_is_replaced(run: Run, bookinfo: MeshSpec) -> None:
    again = stack_of(bookinfo, "bookinfo")
    assert [k.urn for k in children(again)] == [k.urn for k in children(run)]
    # a renamed component keeps its children's URNs (they carry its type, not its name)
    renamed = stack_of(bookinfo, "bookinfo-renamed")
    assert [k.urn for k in children(renamed)] == [k.urn for k in children(run)]


def test_adding_an_object_leaves_the_other_names_alone(run: Run) -> None:
    mesh = _bookinfo_builder()
    mesh.namespace("bookinfo").service("details", port=9080).deploy(
        "v1", image="istio/examples-bookinfo-details-v1:1.16.2")
    grown = {k.urn for k in children(stack_of(mesh, "bookinfo"))}
    before = {k.urn for k in children(run)}
    assert before < grown
    assert {u.rsplit("::", 1)[1] for u in grown - before} == {
        "service-bookinfo-details", "deployment-bookinfo-details-v1"}


def _bookinfo_builder() -> Mesh:
    import runpy

    mesh: Mesh = runpy.run_path(str(BOOKINFO_PROGRAM))["mesh"]
    return mesh


def test_every_child_has_the_component_as_parent(run: Run) -> None:
    component = run.component()
    assert component.type == TYPE_TOKEN == "meshdsl:index:MeshStack"
    assert component.name == "bookinfo"
    assert all(r.parent == component.urn for r in run.registrations if r.custom)


def groups(run: Run) -> list[list[Registration]]:
    out: list[list[Registration]] = []
    last: tuple[int, str] | None = None
    for kid in children(run):
        group = order_key(kid.inputs)[:2]
        if group != last:
            out.append([])
            last = group
        out[-1].append(kid)
    return out


def test_each_object_depends_on_the_previous_kind_group(run: Run) -> None:
    found = groups(run)
    assert [g[0].inputs["kind"] for g in found] == sorted(
        {k.inputs["kind"] for k in children(run)}, key=KIND_ORDER.__getitem__)
    for previous, group in zip([[], *found], found, strict=False):
        for kid in group:
            assert set(kid.dependencies) == {p.urn for p in previous}, kid.name


def closure(run: Run, kid: Registration) -> set[str]:
    by_urn = {r.urn: r for r in run.registrations}
    seen: set[str] = set()
    todo = list(kid.dependencies)
    while todo:
        urn = todo.pop()
        if urn not in seen:
            seen.add(urn)
            todo.extend(by_urn[urn].dependencies)
    return {by_urn[u].name for u in seen}


def test_namespaces_first_and_destination_rules_before_virtual_services(run: Run) -> None:
    names = [k.name for k in children(run)]
    namespace = run.named("namespace-bookinfo")
    assert namespace.dependencies == ()
    for kid in children(run):
        if kid is not namespace:
            assert "namespace-bookinfo" in closure(run, kid)
    reviews_vs = run.named("virtualservice-bookinfo-reviews")
    assert {"destinationrule-bookinfo-reviews", "deployment-bookinfo-reviews-v2"} <= closure(
        run, reviews_vs)
    assert names.index("destinationrule-bookinfo-reviews") < names.index(
        "virtualservice-bookinfo-reviews")


def test_outputs_name_the_applied_resources(run: Run, bookinfo: MeshSpec) -> None:
    outputs = run.outputs[run.component().urn]
    assert outputs == {"resources": [str(ResourceKey.of(m)) for m in compile_mesh(bookinfo)],
                       "weights": {}}
    assert outputs["resources"][0] == "Namespace/bookinfo"
    assert "VirtualService/default/frontend" in outputs["resources"]


def test_weights_reach_the_virtual_service_and_the_outputs(bookinfo: MeshSpec) -> None:
    weights = {("default", "frontend"): {"v1": 60, "v2": 40}}
    stack = stack_of(bookinfo, weights=weights)
    vs = stack.named("virtualservice-default-frontend").inputs
    assert [(r["destination"]["subset"], r["weight"]) for r in vs["spec"]["http"][0]["route"]] \
        == [("v1", 60), ("v2", 40)]
    assert stack.outputs[stack.component().urn]["weights"] == {
        "default/frontend": {"v1": 60, "v2": 40}}


def test_a_builder_works_as_well_as_a_spec(run: Run) -> None:
    stack = stack_of(_bookinfo_builder(), "bookinfo")
    assert stack.manifests() == run.manifests()


def test_validation_warnings_are_logged_on_the_component(run: Run) -> None:
    (warning,) = run.messages("warning")
    assert "MD108" in warning
    assert "mesh.py:" in warning


def test_validation_errors_stop_before_anything_is_created() -> None:
    mesh = Mesh("broken")
    reviews = mesh.service("reviews", port=9080, versions=["v1"])
    reviews.route(to=reviews.subset("v9"))
    with pytest.raises(MeshStackError, match=r"1 validation error\(s\); nothing deployed"):
        stack_of(mesh)


def test_built_in_kinds_from_raw_are_typed_and_crds_are_custom() -> None:
    mesh = Mesh("raw")
    mesh.raw({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "settings", "namespace": "default"},
              "data": {"mode": "fast"}, "binaryData": {"blob": "AA=="}})
    mesh.raw({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
              "metadata": {"name": "httpbin", "namespace": "default"},
              "spec": {"hosts": ["httpbin.org"], "resolution": "DNS",
                       "ports": [{"number": 443, "name": "https", "protocol": "TLS"}]}})
    stack = stack_of(mesh)
    config_map = stack.named("configmap-default-settings")
    assert config_map.type == "kubernetes:core/v1:ConfigMap"
    assert config_map.inputs["binaryData"] == {"blob": "AA=="}
    assert stack.named("serviceentry-default-httpbin").type == (
        "kubernetes:networking.istio.io/v1:ServiceEntry")
    assert stack.manifests() == compile_mesh(mesh.build())


def test_custom_resource_with_extra_top_level_fields_is_refused() -> None:
    mesh = Mesh("raw")
    mesh.raw({"apiVersion": "example.com/v1", "kind": "Widget",
              "metadata": {"name": "w", "namespace": "default"}, "data": {}})
    with pytest.raises(MeshStackError, match="only metadata and spec, not data"):
        stack_of(mesh)


def test_objects_that_would_share_a_name_are_refused() -> None:
    mesh = Mesh("clash", tenancy=Tenancy(namespaces=["a", "a-b"]))
    for ns, name in (("a", "b-c"), ("a-b", "c")):
        mesh.raw({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": name, "namespace": ns}})
    with pytest.raises(MeshStackError, match="configmap-a-b-c: ConfigMap/a/b-c, ConfigMap/a-b/c"):
        stack_of(mesh)


@pytest.mark.parametrize(("api_version", "kind", "expected"), [
    ("v1", "Namespace", "pulumi_kubernetes.core.v1.Namespace"),
    ("apps/v1", "Deployment", "pulumi_kubernetes.apps.v1.Deployment"),
    ("rbac.authorization.k8s.io/v1", "Role", "pulumi_kubernetes.rbac.v1.Role"),
    ("networking.k8s.io/v1", "NetworkPolicy", "pulumi_kubernetes.networking.v1.NetworkPolicy"),
    ("networking.istio.io/v1", "VirtualService", None),
    ("security.istio.io/v1", "AuthorizationPolicy", None),
])
def test_builtin_class(api_version: str, kind: str, expected: str | None) -> None:
    cls = builtin_class(api_version, kind)
    got = None if cls is None else f"{cls.__module__.rsplit('.', 1)[0]}.{cls.__name__}"
    assert got == expected


def test_unknown_builtin_kind_is_a_clear_error() -> None:
    with pytest.raises(MeshStackError, match="Gizmo v1 is a Kubernetes API"):
        builtin_class("v1", "Gizmo")


def test_logical_name_of_a_cluster_scoped_object() -> None:
    assert logical_name({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": "bookinfo"}}) == "namespace-bookinfo"

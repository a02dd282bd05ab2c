"""Stack settings: typed reading with clear errors, and what each setting changes."""

from __future__ import annotations

import json

import pytest

from meshdsl.compile import ResourceKey, compile_mesh
from meshdsl.model import Mesh, MeshSpec, Uri
from meshdsl.model.tenancy import Tenancy
from meshdsl.validate import validate
from stacks.errors import SettingsError
from stacks.settings import (
    InCluster,
    KubeAccess,
    OnDisk,
    StackSettings,
    apply_settings,
    kube_access,
    read_settings,
)
from stacks.testing import stack_config
from tests.unit.stacks.projects import stack_file


def settings(**values: object) -> StackSettings:
    config = {f"meshdsl:{k}": v if isinstance(v, str) else json.dumps(v)
              for k, v in values.items()}
    return read_settings({"meshdsl:canary": "true", **config}, stack="dev")


def problems(config: dict[str, str], stack: str = "dev") -> list[str]:
    with pytest.raises(SettingsError) as excinfo:
        read_settings(config, stack=stack)
    return excinfo.value.problems


# --- reading ------------------------------------------------------------------------------


def test_values_arrive_as_the_cli_passes_them() -> None:
    got = read_settings({
        "meshdsl:canary": "false",
        "meshdsl:namespaces": '{"bookinfo": "bookinfo-dev"}',
        "meshdsl:replicas": "2",
        "meshdsl:hosts": '{"api.example.com": "api.dev.example.com"}',
        "meshdsl:tls_credential": "api-cert-dev",
        "meshdsl:rollout_state": "state.json",
        "kubernetes:context": "kind-dev",  # other namespaces are not ours
    }, stack="dev")
    assert got.canary is False
    assert got.namespaces == {"bookinfo": "bookinfo-dev"}
    assert got.replicas == 2
    assert got.hosts == {"api.example.com": "api.dev.example.com"}
    assert got.tls_credential == "api-cert-dev"
    assert got.rollout_state == "state.json"
    assert got.origin == "Pulumi.dev.yaml"


def test_replicas_may_be_a_map() -> None:
    got = read_settings({"meshdsl:canary": "true",
                         "meshdsl:replicas": '{"bookinfo/reviews-v1": 3}'}, stack="prod")
    assert got.replicas == {"bookinfo/reviews-v1": 3}


def test_missing_key_says_which_file_and_how_to_set_it() -> None:
    (message,) = problems({}, stack="prod")
    assert message.startswith("Pulumi.prod.yaml: meshdsl:canary is missing")
    assert "pulumi config set meshdsl:canary true" in message


def test_unknown_key_suggests_the_right_one() -> None:
    (message,) = problems({"meshdsl:canary": "true", "meshdsl:replica": "3"})
    assert "Pulumi.dev.yaml: meshdsl:replica is not a meshdsl setting" in message
    assert "did you mean meshdsl:replicas?" in message


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("canary", "maybe", "meshdsl:canary must be true or false; got \"maybe\""),
    ("replicas", "three", "meshdsl:replicas must be a count"),
    ("replicas", "-1", "meshdsl:replicas must be a count"),
    ("replicas", '{"bookinfo/reviews-v1": "many"}', "meshdsl:replicas must be a count"),
    ("namespaces", '{"bookinfo": "Bookinfo_Dev"}', "meshdsl:namespaces must be a map"),
    ("namespaces", "bookinfo-dev", "meshdsl:namespaces must be a map"),
    ("hosts", '["api.example.com"]', "meshdsl:hosts must be a map"),
])
def test_wrong_type_names_the_key_and_what_it_must_be(key: str, value: str,
                                                      expected: str) -> None:
    (message,) = problems({"meshdsl:canary": "true", f"meshdsl:{key}": value})
    assert message.startswith("Pulumi.dev.yaml: ")
    assert expected in message


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"meshdsl:replicas": "three", "meshdsl:hostz": "{}"})
    assert len(found) == 3
    assert any("meshdsl:canary is missing" in p for p in found)
    assert any("meshdsl:hostz is not a meshdsl setting" in p for p in found)
    assert any("meshdsl:replicas must be" in p for p in found)


# --- where the rollout state is -------------------------------------------------------------


@pytest.mark.parametrize(("value", "location"), [
    ("state.json", OnDisk("state.json")),
    ("../../.meshdsl/state", OnDisk("../../.meshdsl/state")),
    ("/var/lib/meshdsl/prod", OnDisk("/var/lib/meshdsl/prod")),
    ("./cluster", OnDisk("./cluster")),  # a file named cluster
    ("./backup:1/rollouts.json", OnDisk("./backup:1/rollouts.json")),
    ("cluster", InCluster("default")),
    ("cluster:prod", InCluster("prod")),
    ("cluster:prod.eu-1", InCluster("prod.eu-1")),
])
def test_the_forms_of_rollout_state(value: str, location: OnDisk | InCluster) -> None:
    assert settings(rollout_state=value).rollout_location == location


FORMS = ("must be a path to the reconciler's state directory (its --state-dir) or to a "
         "rollout state file (JSON), or cluster, or cluster:<reconciler name> (the rollout "
         "ConfigMaps of a reconciler on the stack's cluster); got ")


@pytest.mark.parametrize(("value", "why"), [
    ("", "it is empty"),
    ("Cluster", "did you mean cluster?"),
    ("clustr:prod", "did you mean cluster:prod?"),
    ("CLUSTER:prod", "did you mean cluster:prod?"),
    ("configmap:prod", "configmap: is not a form of this setting; a path containing ':' can "
                       "be written ./configmap:prod"),
    ("cluster:", "cluster: needs the reconciler's name; plain cluster is the reconciler "
                 "named 'default'"),
    ("cluster:Prod", "'Prod' is not a reconciler name: it is at most 63 lower-case letters, "
                     "digits, '-' and '.', as given to meshctl reconcile --name"),
    ("cluster:" + "r" * 64, "is not a reconciler name"),
    ("cluster:a..b", "is not a reconciler name"),
])
def test_a_bad_rollout_state_lists_the_forms(value: str, why: str) -> None:
    (message,) = problems({"meshdsl:canary": "true", "meshdsl:rollout_state": value})
    assert message.startswith(f"Pulumi.dev.yaml: meshdsl:rollout_state {FORMS}"
                              f"{json.dumps(value)} (")
    assert why in message


def test_a_bad_rollout_state_is_reported_with_the_other_problems() -> None:
    found = problems({"meshdsl:rollout_state": "clustr", "meshdsl:replica": "2"})
    assert len(found) == 2  # canary missing, replica unknown; "clustr" is a path
    found = problems({"meshdsl:rollout_state": "clustr:x", "meshdsl:replica": "2"})
    assert len(found) == 3
    assert any("did you mean cluster:x?" in p for p in found)


def test_system_namespace_goes_with_the_cluster_form() -> None:
    got = settings(rollout_state="cluster:prod", system_namespace="ops")
    assert got.system_namespace == "ops"
    assert settings(rollout_state="cluster").system_namespace is None
    (message,) = problems({"meshdsl:canary": "true", "meshdsl:rollout_state": "state",
                           "meshdsl:system_namespace": "ops"})
    assert message == ("Pulumi.dev.yaml: meshdsl:system_namespace is only for "
                       "meshdsl:rollout_state: cluster or cluster:<reconciler name> (the "
                       "namespace of the reconciler's rollout ConfigMaps), and "
                       "meshdsl:rollout_state is the path state; remove "
                       "meshdsl:system_namespace")
    (message,) = problems({"meshdsl:canary": "true", "meshdsl:system_namespace": "ops"})
    assert "meshdsl:rollout_state is not set" in message
    (message,) = problems({"meshdsl:canary": "true", "meshdsl:rollout_state": "cluster",
                           "meshdsl:system_namespace": "Ops_1"})
    assert message == ("Pulumi.dev.yaml: meshdsl:system_namespace must be a namespace (a DNS "
                       "label like 'meshdsl-system'); got \"Ops_1\"")


def test_settings_made_in_code_check_the_form_when_used() -> None:
    made = StackSettings(canary=True, rollout_state="clustr:x", origin="my stack")
    with pytest.raises(SettingsError, match="my stack: meshdsl:rollout_state must be"):
        _ = made.rollout_location


def test_the_providers_kubeconfig_and_context() -> None:
    assert kube_access({"kubernetes:kubeconfig": "/k", "kubernetes:context": "kind-dev",
                        "meshdsl:canary": "true"}) == KubeAccess("/k", "kind-dev")
    assert kube_access({"kubernetes:kubeconfig": ""}) == KubeAccess()


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_committed_stack_files_are_valid(stack: str, bookinfo: MeshSpec) -> None:
    got = read_settings(stack_config(stack_file(stack)), stack=stack)
    assert got.origin == f"Pulumi.{stack}.yaml"
    findings = validate(apply_settings(bookinfo, got))
    assert [f.code for f in findings] == [f.code for f in validate(bookinfo)]


# --- applying -----------------------------------------------------------------------------


def keys(spec: MeshSpec) -> set[str]:
    return {str(ResourceKey.of(m)) for m in compile_mesh(spec)}


def test_no_settings_change_nothing(bookinfo: MeshSpec) -> None:
    assert compile_mesh(apply_settings(bookinfo, settings())) == compile_mesh(bookinfo)


def test_the_program_spec_is_not_modified(bookinfo: MeshSpec) -> None:
    before = compile_mesh(bookinfo)
    apply_settings(bookinfo, settings(namespaces={"bookinfo": "x"}, replicas=7))
    assert compile_mesh(bookinfo) == before


def test_namespaces_move_every_object_and_reference(bookinfo: MeshSpec) -> None:
    moved = apply_settings(bookinfo, settings(namespaces={"bookinfo": "bookinfo-dev"}))
    assert {k.replace("bookinfo-dev", "bookinfo") for k in keys(moved)} == keys(bookinfo)
    for manifest in compile_mesh(moved):
        assert manifest["metadata"].get("namespace") != "bookinfo"
    namespace = next(m for m in compile_mesh(moved) if m["kind"] == "Namespace")
    assert namespace["metadata"]["name"] == "bookinfo-dev"
    # the renamed mesh is exactly as valid as the program (same findings, same codes)
    assert [f.code for f in validate(moved)] == [f.code for f in validate(bookinfo)]


def test_lookups_follow_a_rename(bookinfo: MeshSpec) -> None:
    """MeshSpec caches its service index; a renamed spec must not inherit the old one."""
    assert bookinfo.service("bookinfo", "reviews") is not None  # builds the original's index
    moved = apply_settings(bookinfo, settings(namespaces={"bookinfo": "bi", "default": "users"},
                                              replicas=2))
    assert moved.service("bi", "reviews") is not None
    assert moved.service("users", "frontend") is not None
    assert moved.service("bookinfo", "reviews") is None


def cross_namespace_mesh() -> MeshSpec:
    """Every place a namespace name can hide: FQDN hosts, gateway references, exportTo,
    caller namespaces, principals, server hosts, raw manifests."""
    mesh = Mesh("cross", namespace="shop")
    edge = mesh.namespace("edge")
    gw = edge.gateway("public")
    gw.http("shop.example.com", "edge/admin.example.com")
    gw.https("shop.example.com", credential="shop-cert")
    web = mesh.service("web", port=8080, versions=["v1", "v2"])
    web.deploy("v1", image="web:1")
    web.deploy("v2", image="web:2")
    web.route(to={web.v1: 90, web.v2: 10})
    web.canary(target="v2", stable="v1", steps=[10, 50])
    api = edge.service("api", port=80)
    api.deploy("v1", image="api:1")
    routes = gw.routes("storefront", namespace="shop", hosts=["shop.example.com"])
    routes.route(match=Uri(prefix="/api"), to=api)
    routes.route(to="web.shop.svc.cluster.local")
    web.routes.export_to = [".", "edge"]
    authz = web.authorization("web-authz", workload=True)
    authz.allow(api, namespaces=["edge"])
    mesh.raw({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "settings", "namespace": "edge"}, "data": {"a": "b"}},
             adopt=True)
    edge.external("payments.example.com", ports={443: "HTTPS"}, resolution="DNS",
                  export_to=[".", "shop"])
    edge.external("db.internal", ports={5432: "TCP"}, resolution="STATIC",
                  workload_selector={"app": "db"})
    edge.workload_entry("db-1", address="10.0.0.7", labels={"app": "db"})
    edge.telemetry(access_logging=True)
    mesh.tenancy = Tenancy(adopt=["Namespace/edge"])
    return mesh.build()


def test_namespaces_follow_into_hosts_references_and_principals() -> None:
    spec = cross_namespace_mesh()
    moved = apply_settings(spec, settings(namespaces={"edge": "edge-dev", "shop": "shop-dev"}))
    text = json.dumps(compile_mesh(moved))
    for stale in ('"edge"', '"shop"', "edge/", "/ns/edge/", ".edge.svc", ".shop.svc",
                  '"namespace": "shop"'):
        assert stale not in text, stale
    by_key = {str(ResourceKey.of(m)): m for m in compile_mesh(moved)}
    vs = by_key["VirtualService/shop-dev/storefront"]
    assert vs["spec"]["gateways"] == ["edge-dev/public"]
    assert vs["spec"]["http"][0]["route"][0]["destination"]["host"] == (
        "api.edge-dev.svc.cluster.local")
    assert vs["spec"]["http"][1]["route"][0]["destination"]["host"] == (
        "web.shop-dev.svc.cluster.local")
    assert by_key["VirtualService/shop-dev/web"]["spec"]["exportTo"] == [".", "edge-dev"]
    source = by_key["AuthorizationPolicy/shop-dev/web-authz"]["spec"]["rules"][0]["from"][0]
    assert source["source"]["principals"] == ["cluster.local/ns/edge-dev/sa/api"]
    assert source["source"]["namespaces"] == ["edge-dev"]
    servers = by_key["Gateway/edge-dev/public"]["spec"]["servers"]
    assert servers[0]["hosts"] == ["shop.example.com", "edge-dev/admin.example.com"]
    assert "ConfigMap/edge-dev/settings" in by_key
    assert by_key["ServiceEntry/edge-dev/payments-example-com"]["spec"]["exportTo"] == [
        ".", "shop-dev"]
    assert {"WorkloadEntry/edge-dev/db-1", "Telemetry/edge-dev/default",
            "ServiceEntry/edge-dev/db-internal"} <= by_key.keys()
    assert moved.canaries[0].namespace == "shop-dev"
    assert moved.default_namespace == "shop-dev"
    assert moved.tenancy is not None and moved.tenancy.adopt == ["Namespace/edge-dev"]
    assert [f.code for f in validate(moved)] == [f.code for f in validate(spec)]


def test_unknown_namespace_lists_the_programs() -> None:
    with pytest.raises(SettingsError) as excinfo:
        apply_settings(cross_namespace_mesh(), settings(namespaces={"egde": "x"}))
    (message,) = excinfo.value.problems
    assert message == ("Pulumi.dev.yaml: meshdsl:namespaces names 'egde', which the program "
                       "does not have (its namespaces: edge, istio-system, shop)")


def test_two_namespaces_cannot_become_one() -> None:
    with pytest.raises(SettingsError, match="maps several namespaces to same; each needs"):
        apply_settings(cross_namespace_mesh(),
                       settings(namespaces={"edge": "same", "shop": "same"}))


def replicas_of(spec: MeshSpec) -> dict[str, int]:
    return {f"{m['metadata']['namespace']}/{m['metadata']['name']}": m["spec"]["replicas"]
            for m in compile_mesh(spec) if m["kind"] == "Deployment"}


def test_replicas_for_every_deployment(bookinfo: MeshSpec) -> None:
    assert set(replicas_of(apply_settings(bookinfo, settings(replicas=3))).values()) == {3}


def test_replicas_by_deployment(bookinfo: MeshSpec) -> None:
    got = replicas_of(apply_settings(bookinfo, settings(replicas={"bookinfo/reviews-v2": 0})))
    assert got == {"bookinfo/productpage-v1": 1, "bookinfo/ratings-v1": 1,
                   "bookinfo/reviews-v1": 1, "bookinfo/reviews-v2": 0}


def test_replicas_keys_use_the_programs_names(bookinfo: MeshSpec) -> None:
    got = replicas_of(apply_settings(bookinfo, settings(
        replicas={"bookinfo/reviews-v2": 4}, namespaces={"bookinfo": "bi"})))
    assert got["bi/reviews-v2"] == 4


def test_unknown_deployment(bookinfo: MeshSpec) -> None:
    with pytest.raises(SettingsError) as excinfo:
        apply_settings(bookinfo, settings(replicas={"bookinfo/reviews-v9": 2}))
    assert "meshdsl:replicas names 'bookinfo/reviews-v9'" in str(excinfo.value)
    assert "bookinfo/reviews-v2" in str(excinfo.value)


def test_hosts_rename_external_hosts() -> None:
    moved = apply_settings(cross_namespace_mesh(),
                           settings(hosts={"payments.example.com": "payments.staging.example"}))
    (entry,) = [se for se in moved.service_entries if se.name == "payments-example-com"]
    assert entry.hosts == ["payments.staging.example"]


def test_hosts_rename_gateway_and_route_hosts(bookinfo: MeshSpec) -> None:
    spec = apply_settings(bookinfo, settings(hosts={"api.example.com": "api.dev.example.com"}))
    text = json.dumps(compile_mesh(spec))
    assert "api.example.com" not in text
    by_key = {str(ResourceKey.of(m)): m for m in compile_mesh(spec)}
    assert by_key["VirtualService/default/api-routes"]["spec"]["hosts"] == [
        "api.dev.example.com"]
    servers = by_key["Gateway/default/main-gateway"]["spec"]["servers"]
    assert [s["hosts"] for s in servers] == [["api.dev.example.com"]] * 2


def test_unknown_host(bookinfo: MeshSpec) -> None:
    with pytest.raises(SettingsError, match=r"meshdsl:hosts names 'api\.example\.org'"):
        apply_settings(bookinfo, settings(hosts={"api.example.org": "x.example.org"}))


def credentials(spec: MeshSpec) -> list[str]:
    return [s["tls"]["credentialName"] for m in compile_mesh(spec) if m["kind"] == "Gateway"
            for s in m["spec"]["servers"] if "credentialName" in s.get("tls", {})]


def test_tls_credential_for_every_gateway(bookinfo: MeshSpec) -> None:
    assert credentials(apply_settings(bookinfo, settings(tls_credential="dev-cert"))) == [
        "dev-cert"]


def test_tls_credential_by_name(bookinfo: MeshSpec) -> None:
    spec = apply_settings(bookinfo, settings(tls_credential={"api-cert": "api-cert-2"}))
    assert credentials(spec) == ["api-cert-2"]
    with pytest.raises(SettingsError, match="names 'other-cert'"):
        apply_settings(bookinfo, settings(tls_credential={"other-cert": "x"}))


def test_tls_credential_without_tls_is_an_error() -> None:
    mesh = Mesh("plain")
    mesh.gateway("gw").http("example.com")
    with pytest.raises(SettingsError, match="no gateway of the program serves TLS"):
        apply_settings(mesh.build(), settings(tls_credential="cert"))

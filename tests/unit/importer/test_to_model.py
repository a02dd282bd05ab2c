"""Input objects → MeshSpec: what is typed, what is carried raw and why, what is an error."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml

from meshdsl.compile import render
from meshdsl.importer import ImportResult, InputError, load_text, to_model
from meshdsl.model.security import ServiceRef
from meshdsl.model.spec import MeshSpec
from tests.unit.importer.support import FRAGMENT, canonical


def imported(text: str, **kwargs: Any) -> ImportResult:
    return to_model(load_text(textwrap.dedent(text), "in.yaml"), **kwargs)


def raw_names(result: ImportResult) -> list[str]:
    return [m["metadata"]["name"] for m in result.spec.raw]


def test_circuit_breaker_fragment_warns_with_its_field_path() -> None:
    fragment = yaml.safe_load(FRAGMENT.read_text())
    dr = {"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
          "metadata": {"name": "users"},
          "spec": {"host": "users", "trafficPolicy": fragment,
                   "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}}
    text = yaml.safe_dump(dr, sort_keys=False)
    result = imported(text)
    (warning,) = result.warnings
    assert warning.path == "spec.trafficPolicy.outlierDetection.minRequestVolume"
    line = text.splitlines().index("      minRequestVolume: 5") + 1
    assert warning.source is not None and warning.source.line == line
    assert "not an Istio field" in warning.message and "mesh.raw" in warning.message
    assert raw_names(result) == ["users"] and result.spec.destination_rules == []
    # analysis still sees the rule (and its subsets), without the unknown field
    (dr_model,) = result.analysis.destination_rules
    assert dr_model.traffic_policy is not None
    assert dr_model.traffic_policy.outlier_detection is not None
    assert dr_model.traffic_policy.outlier_detection.consecutive_5xx_errors == 5
    assert [s.name for s in dr_model.subsets] == ["v1"]


@pytest.mark.parametrize("api", ["networking.istio.io/v1", "networking.istio.io/v1beta1",
                                 "networking.istio.io/v1alpha3"])
def test_every_networking_version_is_read(api: str) -> None:
    result = imported(f"""\
        apiVersion: {api}
        kind: VirtualService
        metadata: {{name: reviews}}
        spec:
          hosts: [reviews]
          http:
          - route:
            - destination: {{host: reviews}}
        """)
    assert result.spec.raw == [] and len(result.spec.virtual_services) == 1


@pytest.mark.parametrize(("text", "line", "words"), [
    ("apiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata: {name: a}\n", 2,
     "did you mean VirtualService"),
    ("apiVersion: networking.istio.io/v2\nkind: Gateway\nmetadata: {name: a}\n", 1,
     "unknown apiVersion"),
    ("kind: Gateway\nmetadata: {name: a}\n", 1, "no apiVersion"),
    ("apiVersion: v1\nkind: Service\nmetadata: {labels: {}}\n", 3, "no metadata.name"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: 80\n", 5,
     "spec.ports: must be a list"),
    ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\n"
     "spec:\n  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n"
     "      weight: '90'\n", 9, "spec.http[0].route[0].weight: input should be a valid integer"),
    ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\n"
     "spec:\n  host: a\n  trafficPolicy:\n    connectionPool:\n      tcp:\n"
     "        maxConnections: lots\n", 9, "maxConnections: input should be a valid integer"),
    ("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: a}\n"
     "spec:\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n"
     "    hosts: '*'\n", 7, "valid list"),
    ("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\n"
     "spec:\n  portLevelMtls:\n    http: {mode: DISABLE}\n", 6, "keyed by port number"),
])
def test_bad_input_is_an_error_with_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(InputError) as info:
        imported(text)
    assert info.value.source is not None
    assert (info.value.source.file, info.value.source.line) == ("in.yaml", line), info.value
    assert words in str(info.value)


def test_a_kind_of_another_project_is_carried_raw_with_one_warning() -> None:
    result = imported("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: a}\n"
                      "spec: {size: 3}\n")
    assert result.spec.raw == [{"apiVersion": "example.com/v1", "kind": "Widget",
                                "metadata": {"name": "a"}, "spec": {"size": 3}}]
    assert [w.message for w in result.warnings] == [
        "Widget is not modelled by the DSL; carried through unchanged (mesh.raw)"]


def test_a_value_the_dsl_does_not_list_is_carried_not_an_error() -> None:
    result = imported("""\
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: legacy}
        spec:
          host: legacy
          trafficPolicy:
            loadBalancer: {simple: LEAST_CONN}
        """)
    (warning,) = result.warnings
    assert warning.path == "spec.trafficPolicy.loadBalancer.simple"
    assert raw_names(result) == ["legacy"]


def test_services_come_from_services_deployments_hosts_and_selectors() -> None:
    result = imported("""\
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: shop}
        spec:
          ports: [{port: 80, name: http}]
          selector: {app: web}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: worker-v1, namespace: shop}
        spec:
          replicas: 1
          selector: {matchLabels: {app: worker, version: v1}}
          template:
            metadata: {labels: {app: worker, version: v1}}
            spec:
              containers: [{name: worker, image: worker:1}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: web, namespace: shop}
        spec:
          hosts: [web, www.example.com]
          http:
          - route:
            - destination: {host: cart.shop.svc.cluster.local, port: {number: 9090}}
            mirror: {host: audit.ops}
          - route:
            - destination: {host: api.example.com}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: ops}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: db, namespace: shop}
        spec:
          selector: {matchLabels: {app: db}}
        """)
    services = {(s.namespace, s.name): s for s in result.spec.services}
    assert set(services) == {("shop", "web"), ("shop", "worker"), ("shop", "cart"),
                             ("ops", "audit"), ("shop", "db")}
    assert [p.number for p in services[("shop", "cart")].ports] == [9090]  # from the route
    assert services[("shop", "web")].kube_service is True
    assert [w.version for w in services[("shop", "worker")].workloads] == ["v1"]
    assert result.spec.raw == []


def test_principals_name_services_when_one_service_has_that_identity() -> None:
    result = imported("""\
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: reviews}
        spec:
          selector: {matchLabels: {app: reviews}}
          rules:
          - from:
            - source:
                principals:
                - cluster.local/ns/default/sa/productpage
                - cluster.local/ns/default/sa/sleep
                - cluster.local/ns/default/sa/productpage-extra
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: productpage}
        spec:
          hosts: [productpage]
          http: [{route: [{destination: {host: productpage}}]}]
        """)
    (policy,) = result.spec.authorization_policies
    (source,) = policy.rules[0].from_
    assert source.services == [ServiceRef(name="productpage", namespace="default")]
    assert source.principals == ["cluster.local/ns/default/sa/sleep",
                                 "cluster.local/ns/default/sa/productpage-extra"]


POLICY = textwrap.dedent("""\
    apiVersion: networking.istio.io/v1alpha3
    kind: EnvoyFilter
    metadata: {name: limit}
    spec:
      workloadSelector: {labels: {app: reviews}}
      configPatches: []
    ---
    apiVersion: security.istio.io/v1
    kind: PeerAuthentication
    metadata: {name: reviews}
    spec:
      selector: {matchLabels: {app: reviews}}
      mtls: {mode: STRICT}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: reviews, namespace: bookinfo}
    spec:
      ports: [{port: 9080, name: http}]
      selector: {app: reviews}
    """)


def test_a_policy_without_namespace_joins_the_only_namespace_of_its_service() -> None:
    result = imported(POLICY)
    (peer,) = result.spec.peer_authentications
    assert peer.namespace == "bookinfo"
    moved = [w for w in result.warnings if "placed in bookinfo" in w.message]
    assert [w.resource for w in moved] == ["PeerAuthentication bookinfo/reviews"]
    # the EnvoyFilter is not the rate-limit form: carried unchanged, without a namespace
    assert raw_names(result) == ["limit"]
    assert "namespace" not in result.spec.raw[0]["metadata"]


def test_a_policy_stays_in_the_default_namespace_when_its_service_is_there() -> None:
    result = imported(POLICY + "---\napiVersion: v1\nkind: Service\nmetadata: {name: reviews}\n"
                      "spec: {ports: [{port: 9080, name: http}], selector: {app: reviews}}\n")
    assert [p.namespace for p in result.spec.peer_authentications] == ["default"]


def test_server_set_fields_and_the_reconcilers_marks_are_dropped_silently() -> None:
    result = imported("""\
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata:
          name: gw
          uid: abc
          resourceVersion: "7"
          generation: 2
          creationTimestamp: "2026-01-01T00:00:00Z"
          managedFields: [{manager: meshdsl, operation: Apply}]
          labels: {app.kubernetes.io/managed-by: meshdsl, meshdsl.io/mesh: shop,
                   meshdsl.io/reconciler: default}
          annotations: {meshdsl.io/desired-hash: 0123abcd,
                        kubectl.kubernetes.io/last-applied-configuration: "{}"}
        spec:
          selector: {istio: ingressgateway}
          servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
        status: {}
        """)
    assert result.spec.name == "shop"  # from meshdsl's own label
    assert result.warnings == ()  # nothing the user wrote was left out
    assert result.spec.raw == [] and result.manifests[0]["metadata"] == {"name": "gw"}


def test_an_object_defined_twice_is_an_error_but_analysis_keeps_both() -> None:
    policy = ("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
              "metadata: {name: same}\nspec: {action: DENY}\n")
    twice = policy + "---\n" + policy.replace("DENY", "AUDIT")
    with pytest.raises(InputError, match=r"defined twice \(also at in.yaml:1\)") as info:
        imported(twice)
    assert info.value.source is not None and info.value.source.line == 6
    result = imported(twice, duplicates=True)
    assert [p.action for p in result.analysis.authorization_policies] == ["DENY", "AUDIT"]
    # the builders merge policies by name, so the second one can only travel raw
    assert [p.action for p in result.spec.authorization_policies] == ["DENY"]
    assert raw_names(result) == ["same"]


def test_rendered_output_imports_back_to_the_same_model(bookinfo: MeshSpec) -> None:
    """Everything but what YAML does not carry: canaries and how to run things locally."""
    services = [s.model_copy(update={"local": {}, "workloads": [
        w.model_copy(update={"local": None}) for w in s.workloads]}) for s in bookinfo.services]
    cluster_only = bookinfo.model_copy(update={"canaries": [], "services": services})
    result = to_model(load_text(render(cluster_only), "rendered.yaml"))
    assert result.warnings == () and result.spec.raw == []
    assert canonical(result.spec) == canonical(cluster_only)

"""Objects as a live cluster returns them (``kubectl get -o yaml``: a ``kind: List``, with
the server's metadata, defaults and status, and meshdsl's own labels and hash) import as
the objects that were applied: typed, without a warning, rendering them back."""

from __future__ import annotations

import textwrap

from meshdsl.importer import import_documents, load_text, verify
from meshdsl.importer.manifests import applied

# As kube-apiserver 1.20 returned them after `meshctl apply` (trimmed: one managedFields
# entry each, fewer objects).
LIVE = textwrap.dedent("""\
    apiVersion: v1
    kind: List
    metadata: {resourceVersion: ""}
    items:
    - apiVersion: v1
      kind: Namespace
      metadata:
        name: shop
        uid: 0f6c5a43-8a1e-4a8e-9d59-3c3f0a1f0001
        resourceVersion: "294"
        creationTimestamp: "2026-12-03T18:05:01Z"
        labels: {app.kubernetes.io/managed-by: meshdsl, istio-injection: enabled,
                 meshdsl.io/mesh: shop, meshdsl.io/reconciler: default}
        annotations: {meshdsl.io/desired-hash: 0347158f3c9c475006a8}
        managedFields: [{manager: meshdsl, operation: Apply, apiVersion: v1}]
      spec: {finalizers: [kubernetes]}
      status: {phase: Active}
    - apiVersion: v1
      kind: Service
      metadata:
        name: ratings
        namespace: shop
        uid: 6d051f62-57fb-4594-b93f-fb5262368314
        resourceVersion: "298"
        creationTimestamp: "2026-12-03T18:05:01Z"
        labels: {app.kubernetes.io/managed-by: meshdsl, meshdsl.io/mesh: shop,
                 meshdsl.io/reconciler: default}
        annotations: {meshdsl.io/desired-hash: a91d0e06d6b95f905cca}
        managedFields: [{manager: meshdsl, operation: Apply, apiVersion: v1}]
      spec:
        ports: [{name: http, protocol: TCP, port: 9080, targetPort: 9080}]
        selector: {app: ratings}
        clusterIP: 10.0.0.61
        clusterIPs: [10.0.0.61]
        type: ClusterIP
        sessionAffinity: None
        ipFamilies: [IPv4]
        ipFamilyPolicy: SingleStack
      status: {loadBalancer: {}}
    - apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: ratings-v1
        namespace: shop
        uid: 4a8f391f-adf9-4707-a8e9-163a60681c5f
        resourceVersion: "304"
        generation: 1
        creationTimestamp: "2026-12-03T18:05:01Z"
        labels: {app.kubernetes.io/managed-by: meshdsl, meshdsl.io/mesh: shop,
                 meshdsl.io/reconciler: default}
        annotations: {meshdsl.io/desired-hash: 5f7e699836b24242fdb4,
                      deployment.kubernetes.io/revision: "1"}
        managedFields: [{manager: meshdsl, operation: Apply, apiVersion: apps/v1}]
      spec:
        replicas: 1
        selector: {matchLabels: {app: ratings, version: v1}}
        template:
          metadata:
            creationTimestamp: null
            labels: {app: ratings, version: v1}
          spec:
            containers:
            - name: ratings
              image: istio/examples-bookinfo-ratings-v1:1.16.2
              ports: [{containerPort: 9080, protocol: TCP}]
              resources: {}
              terminationMessagePath: /dev/termination-log
              terminationMessagePolicy: File
              imagePullPolicy: IfNotPresent
            restartPolicy: Always
            terminationGracePeriodSeconds: 30
            dnsPolicy: ClusterFirst
            securityContext: {}
            schedulerName: default-scheduler
        strategy:
          type: RollingUpdate
          rollingUpdate: {maxUnavailable: 25%, maxSurge: 25%}
        revisionHistoryLimit: 10
        progressDeadlineSeconds: 600
      status: {}
    - apiVersion: networking.istio.io/v1
      kind: VirtualService
      metadata:
        name: ratings
        namespace: shop
        uid: 1b2c3d4e-0000-4000-8000-000000000004
        resourceVersion: "310"
        generation: 1
        creationTimestamp: "2026-12-03T18:05:01Z"
        labels: {app.kubernetes.io/managed-by: meshdsl, meshdsl.io/mesh: shop,
                 meshdsl.io/reconciler: default}
        annotations: {meshdsl.io/desired-hash: 9d1c0f5e2a7b3c4d5e6f}
        managedFields: [{manager: meshdsl, operation: Apply,
                         apiVersion: networking.istio.io/v1}]
      spec:
        hosts: [ratings]
        http: [{route: [{destination: {host: ratings}}], timeout: 2s}]
    """)


def test_a_list_read_from_a_cluster_imports_typed_without_a_warning() -> None:
    documents = load_text(LIVE, "live.yaml")
    assert [d.manifest["kind"] for d in documents] == [
        "Namespace", "Service", "Deployment", "VirtualService"]
    program = import_documents(documents)
    assert program.warnings == ()
    assert program.result.spec.raw == []
    assert program.result.spec.name == "shop"  # from meshdsl's mesh label
    for line in ('shop = mesh.namespace("shop")',  # istio-injection: the DSL's default
                 'ratings.deploy("v1", image="istio/examples-bookinfo-ratings-v1:1.16.2")',
                 'timeout="2s"'):
        assert line in program.source, line
    assert verify(program.source, [applied(d).manifest for d in documents]) == []


def test_the_objects_as_applied_carry_nothing_the_server_or_the_reconciler_wrote() -> None:
    service, deployment = (applied(d).manifest for d in load_text(LIVE, "live.yaml")[1:3])
    assert service == {"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "ratings", "namespace": "shop",
        "labels": {"app.kubernetes.io/managed-by": "meshdsl", "meshdsl.io/mesh": "shop"}},
        "spec": {"ports": [{"name": "http", "port": 9080}], "selector": {"app": "ratings"}}}
    assert set(deployment["metadata"]) == {"name", "namespace", "labels"}
    assert deployment["spec"] == {
        "selector": {"matchLabels": {"app": "ratings", "version": "v1"}},
        "template": {"metadata": {"labels": {"app": "ratings", "version": "v1"}},
                     "spec": {"containers": [{
                         "name": "ratings", "image": "istio/examples-bookinfo-ratings-v1:1.16.2",
                         "ports": [{"containerPort": 9080}]}]}}}


def test_written_by_hand_an_explicit_default_is_kept() -> None:
    """Only an object read from a cluster loses its defaults: a file keeps what it says."""
    (doc,) = load_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
                       "spec: {type: ClusterIP, ports: [{port: 80, protocol: TCP}]}\n")
    assert applied(doc).manifest["spec"] == {"type": "ClusterIP",
                                              "ports": [{"port": 80, "protocol": "TCP"}]}


CLUSTER_MADE = textwrap.dedent("""\
    apiVersion: v1
    kind: List
    items:
    - apiVersion: v1
      kind: Service
      metadata:
        name: kubernetes
        namespace: default
        uid: 5e2f0c1a-0000-4000-8000-000000000001
        resourceVersion: "190"
        labels: {component: apiserver, provider: kubernetes}
      spec:
        ports: [{name: https, protocol: TCP, port: 443, targetPort: 6443}]
        clusterIP: 10.0.0.1
        type: ClusterIP
        sessionAffinity: None
    - apiVersion: apps/v1
      kind: ReplicaSet
      metadata:
        name: ratings-v1-7d4b9c8f6
        namespace: shop
        uid: 5e2f0c1a-0000-4000-8000-000000000002
        resourceVersion: "320"
        ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: ratings-v1,
                           uid: 4a8f391f-adf9-4707-a8e9-163a60681c5f, controller: true}]
      spec:
        selector: {matchLabels: {app: ratings, version: v1}}
        template:
          metadata: {labels: {app: ratings, version: v1}}
          spec: {containers: [{name: ratings, image: ratings:1}]}
    - apiVersion: v1
      kind: ServiceAccount
      metadata: {name: default, namespace: shop, uid: 5e2f0c1a-0000-4000-8000-000000000003}
      secrets: [{name: default-token-x7k2p}]
    - apiVersion: v1
      kind: ConfigMap
      metadata: {name: kube-root-ca.crt, namespace: shop,
                 uid: 5e2f0c1a-0000-4000-8000-000000000004}
      data: {ca.crt: "-----BEGIN CERTIFICATE-----"}
    """)


def test_what_the_cluster_made_is_left_out_with_a_warning_each() -> None:
    program = import_documents(load_text(LIVE + "---\n" + CLUSTER_MADE, "live.yaml"))
    assert {w.resource: w.message for w in program.warnings} == {
        "Service default/kubernetes": "the API server's own Service, no part of a mesh: "
                                      "left out",
        "ReplicaSet shop/ratings-v1-7d4b9c8f6": "made and kept by its controller, Deployment "
                                                "ratings-v1: left out",
        "ServiceAccount shop/default": "the ServiceAccount the cluster makes in every "
                                       "namespace: left out",
        "ConfigMap shop/kube-root-ca.crt": "the cluster's CA bundle, published in every "
                                           "namespace: left out"}
    assert program.result.spec.raw == []
    assert program.source == import_documents(load_text(LIVE, "live.yaml")).source


def test_a_default_service_account_someone_filled_in_is_kept() -> None:
    """Image pull secrets on ``default`` are a user's: it is carried, not left out."""
    text = CLUSTER_MADE.replace("secrets: [{name: default-token-x7k2p}]",
                                "imagePullSecrets: [{name: registry}]")
    program = import_documents(load_text(LIVE + "---\n" + text, "live.yaml"))
    assert "ServiceAccount shop/default" not in {w.resource for w in program.warnings
                                                 if w.message.endswith("left out")}
    assert [m["metadata"]["name"] for m in program.result.spec.raw] == ["default"]

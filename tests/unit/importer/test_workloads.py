"""Deployments, Services and ServiceAccounts as real manifests carry them import as typed
DSL (and render back equal); a genuinely unusual field keeps its object raw, with a
warning at that field."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from meshdsl import Container, FileMount, ValueFrom
from meshdsl.compile import compile_mesh
from meshdsl.compile.manifest import MANAGED_BY
from meshdsl.importer import import_documents, load_text, run_program
from meshdsl.model.service import Probe

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: shop
  labels: {app: shop, service: shop, team: web}
  annotations: {prometheus.io/scrape: "true"}
spec:
  type: LoadBalancer
  ports: [{port: 8080, name: http}]
  selector: {app: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: shop-sa
  labels: {account: shop}
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop-{version}
  labels: {{app: shop, version: {version}}}
  annotations: {{owner: web-team}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: shop, version: {version}}}
  template:
    metadata:
      labels: {{app: shop, version: {version}}}
      annotations: {{sidecar.istio.io/logLevel: debug}}
    spec:
      serviceAccountName: shop-sa
      containers:
      - name: shop
        image: example/shop:{version}
        imagePullPolicy: IfNotPresent
        args: [--port, "8080"]
        ports: [{{containerPort: 8080}}]
        env: [{{name: LOG_DIR, value: /tmp/logs}}]
        resources:
          requests: {{cpu: 100m, memory: 64Mi}}
          limits: {{memory: 128Mi}}
        readinessProbe:
          httpGet: {{path: /healthz, port: 8080}}
          periodSeconds: 5
        livenessProbe:
          tcpSocket: {{port: 8080}}
          initialDelaySeconds: 10
        volumeMounts: [{{name: tmp, mountPath: /tmp}}]
{extra}      volumes: [{{name: tmp, emptyDir: {{}}}}]
"""


def program(text: str):  # type: ignore[no-untyped-def]
    return import_documents(load_text(textwrap.dedent(text), "in.yaml"))


def test_common_workload_shapes_import_typed_and_render_back() -> None:
    text = SERVICE + "".join("---\n" + DEPLOYMENT.format(version=v, extra="")
                             for v in ("v1", "v2"))
    result = program(text).result
    assert result.spec.raw == [] and result.warnings == ()
    (svc,) = result.spec.services
    assert svc.labels == {"app": "shop", "service": "shop", "team": "web"}
    assert svc.annotations == {"prometheus.io/scrape": "true"}
    assert svc.service_type == "LoadBalancer"
    assert svc.service_account == "shop-sa" and svc.account_labels == {"account": "shop"}
    v1 = svc.workloads[0]
    assert (v1.replicas, v1.image_pull_policy) == (2, "IfNotPresent")
    assert (v1.command, v1.args) == ([], ["--port", "8080"])
    assert v1.resources == {"requests": {"cpu": "100m", "memory": "64Mi"},
                            "limits": {"memory": "128Mi"}}
    assert v1.readiness == Probe(port=8080, path="/healthz", period=5)
    assert v1.liveness == Probe(port=8080, initial_delay=10)
    assert v1.scratch == {"tmp": "/tmp"} and v1.pod_annotations == {
        "sidecar.istio.io/logLevel": "debug"}
    source = program(text).source  # one ServiceAccount, declared once for both versions
    assert source.count("account_labels=") == 1 and source.count(".deploy(") == 2
    assert "image_pull_policy='IfNotPresent'" in source or \
        'image_pull_policy="IfNotPresent"' in source


def test_an_unusual_field_keeps_only_its_deployment_raw_with_a_warning_there() -> None:
    odd = "      nodeSelector: {disk: ssd}\n"
    text = SERVICE + "---\n" + DEPLOYMENT.format(version="v1", extra="") + "---\n" + \
        DEPLOYMENT.format(version="v2", extra=odd)
    result = program(text).result
    assert [m["metadata"]["name"] for m in result.spec.raw] == ["shop-v2"]
    (warning,) = result.warnings
    assert warning.path == "spec.template.spec.nodeSelector"
    assert "mesh.raw" in warning.message
    assert len(result.spec.services[0].workloads) == 1


def test_a_service_account_with_other_fields_stays_raw_and_so_do_its_deployments() -> None:
    text = SERVICE + "automountServiceAccountToken: false\n---\n" + DEPLOYMENT.format(
        version="v1", extra="")
    result = program(text).result
    kinds = sorted(m["kind"] for m in result.spec.raw)
    assert kinds == ["Deployment", "ServiceAccount"]
    paths = {w.path for w in result.warnings}
    assert "automountServiceAccountToken" in paths
    assert "spec.template.spec.serviceAccountName" in paths


def test_rendered_output_reimports_without_the_ownership_labels() -> None:
    text = SERVICE + "---\n" + DEPLOYMENT.format(version="v1", extra="")
    first = program(text)
    rendered = compile_mesh(run_program(first.source))
    assert all(MANAGED_BY in m["metadata"]["labels"] for m in rendered)
    again = program(yaml.safe_dump_all(rendered, sort_keys=False))
    assert again.result.spec.raw == [] and MANAGED_BY not in again.source
    assert again.result.spec.services[0].labels == first.result.spec.services[0].labels


POD = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: db-v1}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: db, version: v1}}
  strategy: {{type: Recreate}}
  template:
    metadata:
      labels: {{app: db, version: v1}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: db
        image: example/mysql:8
        ports: [{{containerPort: 3306}}, {{containerPort: 33060}}]
        env:
        - {{name: ROOT, valueFrom: {{secretKeyRef: {{name: db-credentials, key: root}}}}}}
        - {{name: MODE, valueFrom: {{configMapKeyRef: {{name: db, key: mode, optional: true}}}}}}
        - {{name: IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
        - {{name: A_LAST, value: "$(IP):3306"}}
        volumeMounts:
        - {{name: data, mountPath: /var/lib/mysql}}
        - {{name: tls, mountPath: /etc/tls, readOnly: true}}
{mount}      - name: exporter
        image: example/exporter:1
        ports: [{{containerPort: 9104}}]
        volumeMounts: [{{name: tls, mountPath: /tls}}, {{name: exporter-config, mountPath: /cfg}}]
{extra}      volumes:
      - {{name: data, emptyDir: {{}}}}
      - {{name: tls, secret: {{secretName: db-tls, optional: true, defaultMode: 0400}}}}
      - {{name: exporter-config, configMap: {{name: exporter}}}}
"""


def test_files_env_from_containers_beside_and_a_grace_period_import_typed() -> None:
    text = POD.format(mount="", extra="")
    first = program(text)
    assert first.result.spec.raw == [] and first.result.warnings == ()
    (wl,) = first.result.spec.services[0].workloads
    assert list(wl.env) == ["ROOT", "MODE", "IP", "A_LAST"]  # the order $(IP) relies on
    assert wl.env["ROOT"] == ValueFrom(secret="db-credentials", key="root")
    assert wl.env["MODE"] == ValueFrom(config_map="db", key="mode", optional=True)
    assert wl.env["IP"] == ValueFrom(field="status.podIP")
    assert (wl.container_port, wl.grace_period, wl.strategy) == ([3306, 33060], 0,
                                                                 "Recreate")
    assert wl.scratch == {"data": "/var/lib/mysql"}
    assert wl.files == [FileMount(path="/etc/tls", secret="db-tls", volume="tls",
                                  read_only=True, optional=True, default_mode=0o400),
                        FileMount(config_map="exporter", volume="exporter-config")]
    assert wl.containers == [Container(name="exporter", image="example/exporter:1",
                                       ports=[9104], mounts={"tls": "/tls",
                                                             "exporter-config": "/cfg"})]
    rendered = compile_mesh(run_program(first.source))
    assert program(yaml.safe_dump_all(rendered, sort_keys=False)).result.spec.raw == []


def test_live_objects_with_the_servers_defaults_import_typed() -> None:
    """``kubectl get -o yaml`` adds fieldRef's apiVersion and a volume's defaultMode."""
    text = POD.format(mount="", extra="").replace(
        "fieldPath: status.podIP", "apiVersion: v1, fieldPath: status.podIP").replace(
        "configMap: {name: exporter}", "configMap: {name: exporter, defaultMode: 420}")
    result = program(text).result
    assert result.spec.raw == []
    assert result.spec.services[0].workloads[0].files[1].default_mode == 420


@pytest.mark.parametrize(("mount", "extra", "path"), [
    ("        - {name: tls, mountPath: /etc/tls/ca.crt, subPath: ca.crt}\n", "",
     "spec.template.spec.containers[0].volumeMounts"),
    ("        envFrom: [{configMapRef: {name: db}}]\n", "",
     "spec.template.spec.containers[0].envFrom"),
    ("", "        securityContext: {runAsUser: 1000}\n",
     "spec.template.spec.containers[1].securityContext"),
    ("", "      initContainers: [{name: init, image: busybox}]\n",
     "spec.template.spec.initContainers"),
])
def test_rarer_pod_fields_keep_the_deployment_raw_with_a_warning_there(
        mount: str, extra: str, path: str) -> None:
    result = program(POD.format(mount=mount, extra=extra)).result
    assert [m["kind"] for m in result.spec.raw] == ["Deployment"]
    assert path in {w.path for w in result.warnings}
    assert all("mesh.raw" in w.message for w in result.warnings)

"""The manifests that run ``meshctl reconcile`` inside a cluster (``meshctl install --print``).

Pure: options in, manifests out (deterministic). Least privilege, written out rule by rule:

- a ClusterRole for exactly the kinds a compiled mesh contains — Namespaces, Services,
  ServiceAccounts, Deployments and the Istio kinds meshdsl emits (VirtualService,
  DestinationRule, Gateway, EnvoyFilter, PeerAuthentication, AuthorizationPolicy) — with
  the verbs server-side apply, the inventory-based prune and the reads need. No Secrets,
  no Pods, no RBAC objects, no wildcards;
- a Role in the reconciler's namespace for the ConfigMaps that hold the inventory, status,
  control requests and outputs, and for the leader-election Lease;
- a Deployment (probes on ``/healthz`` and ``/readyz``: only the leader is ready, so the
  Service sends pushes to it), and a Service for the webhook.

The webhook secret is read from a Secret through the Deployment's env (``secretKeyRef``),
which needs no RBAC: the reconciler itself cannot read any Secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ISTIO_RULES", "InstallOptions", "cluster_rules", "manifests"]

_WRITE = ["get", "list", "watch", "create", "patch", "update", "delete"]
ISTIO_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("networking.istio.io", ("virtualservices", "destinationrules", "gateways",
                             "envoyfilters")),
    ("security.istio.io", ("peerauthentications", "authorizationpolicies")),
    # what ambient namespaces compile to (meshdsl.compile.gateway_api)
    ("gateway.networking.k8s.io", ("gateways", "httproutes", "grpcroutes", "tcproutes",
                                   "referencegrants")),
)
_CORE_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("", ("namespaces", "services", "serviceaccounts")),
    ("apps", ("deployments",)),
)
_LABELS = {"app.kubernetes.io/name": "meshdsl-reconciler",
           "app.kubernetes.io/managed-by": "meshdsl"}


@dataclass(frozen=True)
class InstallOptions:
    repo: str
    branch: str = "main"
    path: str = "mesh.py"
    name: str = "default"
    namespace: str = "meshdsl-system"
    service_account: str = "meshdsl"
    image: str = "ghcr.io/meshdsl/meshdsl:0.1.0"
    replicas: int = 2
    port: int = 8080
    secret_name: str = "meshdsl-webhook"
    interval: str = "5m"
    drift_interval: str = "1m"


def cluster_rules() -> list[dict[str, Any]]:
    return [{"apiGroups": [group], "resources": list(resources), "verbs": list(_WRITE)}
            for group, resources in (*_CORE_RULES, *ISTIO_RULES)]


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(_LABELS)}
    if namespace:
        meta["namespace"] = namespace
    return meta


def manifests(options: InstallOptions) -> list[dict[str, Any]]:
    o = options
    role_name = f"meshdsl-reconciler-{o.name}"
    subject = [{"kind": "ServiceAccount", "name": o.service_account, "namespace": o.namespace}]
    args = ["reconcile", "--repo", o.repo, "--branch", o.branch, "--path", o.path,
            "--name", o.name, "--target", "kube", "--state", "cluster",
            "--listen", f"0.0.0.0:{o.port}", "--interval", o.interval,
            "--drift-interval", o.drift_interval, "--leader-elect"]
    if o.namespace != "meshdsl-system":
        args += ["--system-namespace", o.namespace]
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10,
             "timeoutSeconds": 3, "failureThreshold": 3}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(o.namespace)},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": _meta(o.service_account, o.namespace)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": _meta(role_name), "rules": cluster_rules()},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": _meta(role_name),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": role_name},
         "subjects": subject},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": _meta(role_name, o.namespace),
         "rules": [
             {"apiGroups": [""], "resources": ["configmaps"], "verbs": list(_WRITE)},
             {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
              "verbs": ["create"]},
             {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
              "resourceNames": [role_name], "verbs": ["get", "update"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": _meta(role_name, o.namespace),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": role_name},
         "subjects": subject},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": _meta(f"meshdsl-reconciler-{o.name}", o.namespace),
         "spec": {
             "replicas": o.replicas,
             "selector": {"matchLabels": {"app.kubernetes.io/name": "meshdsl-reconciler",
                                          "meshdsl.io/reconciler": o.name}},
             "template": {
                 "metadata": {"labels": {**_LABELS, "meshdsl.io/reconciler": o.name}},
                 "spec": {
                     "serviceAccountName": o.service_account,
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{
                         "name": "reconciler",
                         "image": o.image,
                         "command": ["meshctl"],
                         "args": args,
                         "env": [
                             {"name": "MESHDSL_WEBHOOK_SECRET",
                              "valueFrom": {"secretKeyRef": {"name": o.secret_name,
                                                             "key": "secret"}}},
                             {"name": "XDG_CACHE_HOME", "value": "/var/cache"},
                             {"name": "XDG_STATE_HOME", "value": "/var/cache/state"},
                         ],
                         "ports": [{"name": "http", "containerPort": o.port,
                                    "protocol": "TCP"}],
                         "livenessProbe": probe,
                         "readinessProbe": {**probe, "httpGet": {"path": "/readyz",
                                                                 "port": "http"},
                                            "periodSeconds": 2},
                         "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                       "limits": {"memory": "1536Mi"}},
                         "securityContext": {"allowPrivilegeEscalation": False,
                                             "readOnlyRootFilesystem": True,
                                             "capabilities": {"drop": ["ALL"]}},
                         "volumeMounts": [{"name": "cache", "mountPath": "/var/cache"},
                                          {"name": "tmp", "mountPath": "/tmp"}],
                     }],
                     "volumes": [{"name": "cache", "emptyDir": {}},
                                 {"name": "tmp", "emptyDir": {}}],
                 },
             },
         }},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": _meta(f"meshdsl-webhook-{o.name}", o.namespace),
         "spec": {"selector": {"app.kubernetes.io/name": "meshdsl-reconciler",
                               "meshdsl.io/reconciler": o.name},
                  "ports": [{"name": "http", "port": 80, "targetPort": "http",
                             "protocol": "TCP"}]}},
    ]

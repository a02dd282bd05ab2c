"""The manifests that run ``meshctl reconcile`` inside a cluster (``meshctl install --print``).

Pure: options in, manifests out (deterministic). Least privilege, generated from what the
mesh may write (its tenancy), rule by rule:

- for each namespace the mesh may write (``--mesh-namespace``), a Role for exactly the
  kinds a compiled mesh contains — Services, ServiceAccounts, Deployments and the Istio
  kinds meshdsl emits — with the verbs server-side apply, the inventory-based prune and the
  reads need. No cluster-wide write of any of them, nothing in ``istio-system`` (or any
  other namespace) unless listed. No Secrets, no Pods, no RBAC objects, no wildcards;
- a ClusterRole that only reads Namespaces, creates them, and patches the mesh's own by
  name — never deletes one;
- in the reconciler's namespace, a Role for its state ConfigMaps (outputs and rollouts are
  named per revision and service at run time, so they cannot be narrowed by
  ``resourceNames``; a reconciler per namespace isolates them) and its Lease, by name;
- with ``tenant`` (``NS/NAME``, like Flux's ``serviceAccountName``) the mesh Roles bind that
  ServiceAccount instead, the reconciler applies as it (``--apply-as``) and may do nothing
  in the mesh's namespaces but impersonate it;
- a Deployment (probes on ``/healthz`` and ``/readyz``: only the leader is ready, so the
  Service sends pushes to it), and a Service for the webhook.

The mesh namespaces hold the Roles, so they exist before the reconciler runs: the
administrator creates them (the install prints them), and the program opens them with
``mesh.namespace(NAME, create=False)``. Reserved namespaces listed as mesh namespaces are
passed to the reconciler as ``--allow-namespace``.

The webhook secret is read from a Secret through the Deployment's env (``secretKeyRef``),
which needs no RBAC: the reconciler itself cannot read any Secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ISTIO_RULES", "InstallOptions", "cluster_rules", "manifests", "mesh_rules", "rbac",
           "state_rules"]

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
    ("", ("services", "serviceaccounts")),
    ("apps", ("deployments",)),
)
_RESERVED = ("kube-system", "kube-public", "kube-node-lease", "meshdsl-system",
             "istio-system")
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
    mesh_namespaces: tuple[str, ...] = ()     # where the mesh may write
    mesh: str = ""                            # the mesh's name (its inventory record)
    tenant: str | None = None                 # NS/NAME: apply as this ServiceAccount


def mesh_rules() -> list[dict[str, Any]]:
    """What a mesh may do inside one of its namespaces."""
    return [{"apiGroups": [group], "resources": list(resources), "verbs": list(_WRITE)}
            for group, resources in (*_CORE_RULES, *ISTIO_RULES)]


def cluster_rules(namespaces: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Namespaces: read all, create, patch the mesh's own by name; never delete."""
    rules: list[dict[str, Any]] = [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create"]},
    ]
    if namespaces:
        rules.append({"apiGroups": [""], "resources": ["namespaces"],
                      "resourceNames": sorted(namespaces), "verbs": ["patch", "update"]})
    return rules


def state_rules(o: InstallOptions) -> list[dict[str, Any]]:
    """The reconciler's own ConfigMaps and Lease in its namespace."""
    lease = f"meshdsl-reconciler-{o.name}"
    return [
        # outputs (meshdsl-output-<name>-<revision>) and rollouts
        # (meshdsl-rollout-<name>.<ns>.<service>) are named at run time, so these verbs
        # cannot be narrowed by resourceNames; the program never writes here (tenancy).
        {"apiGroups": [""], "resources": ["configmaps"],
         "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": [lease], "verbs": ["get", "update"]},
    ]


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(_LABELS)}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _binding(kind: str, name: str, namespace: str | None, role: str,
             subjects: list[dict[str, str]]) -> list[dict[str, Any]]:
    """A (Cluster)Role and its (Cluster)RoleBinding need the same name; returns the binding."""
    return [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": f"{kind}Binding",
             "metadata": _meta(name, namespace),
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
             "subjects": subjects}]


def _role(kind: str, name: str, namespace: str | None, rules: list[dict[str, Any]],
          subjects: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
             "metadata": _meta(name, namespace), "rules": rules},
            *_binding(kind, name, namespace, name, subjects)]


def rbac(o: InstallOptions) -> list[dict[str, Any]]:
    """Every RBAC object of the install (see the module docstring)."""
    name = f"meshdsl-reconciler-{o.name}"
    reconciler = [{"kind": "ServiceAccount", "name": o.service_account,
                   "namespace": o.namespace}]
    applier = reconciler
    docs: list[dict[str, Any]] = []
    if o.tenant:
        tenant_ns, _, tenant_sa = o.tenant.partition("/")
        applier = [{"kind": "ServiceAccount", "name": tenant_sa, "namespace": tenant_ns}]
        docs += _role("Role", f"{name}-impersonate", tenant_ns, [
            {"apiGroups": [""], "resources": ["serviceaccounts"], "resourceNames": [tenant_sa],
             "verbs": ["impersonate"]}], reconciler)
        # the inventory record is written by whoever applies: by name, plus create
        docs += _role("Role", f"{name}-inventory", o.namespace, [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["configmaps"],
             "resourceNames": [f"meshdsl-inventory-{o.mesh or o.name}"],
             "verbs": ["get", "patch", "update"]}], applier)
    docs += _role("ClusterRole", name, None, cluster_rules(tuple(
        n for n in o.mesh_namespaces if n not in _RESERVED)), applier)
    if o.tenant:
        docs += _binding("ClusterRole", f"{name}-reconciler", None, name, reconciler)
    for namespace in sorted(set(o.mesh_namespaces)):
        docs += _role("Role", f"{name}-mesh", namespace, mesh_rules(), applier)
    docs += _role("Role", name, o.namespace, state_rules(o), reconciler)
    return docs


def manifests(options: InstallOptions) -> list[dict[str, Any]]:
    o = options
    args = ["reconcile", "--repo", o.repo, "--branch", o.branch, "--path", o.path,
            "--name", o.name, "--target", "kube", "--state", "cluster",
            "--listen", f"0.0.0.0:{o.port}", "--interval", o.interval,
            "--drift-interval", o.drift_interval, "--leader-elect"]
    if o.namespace != "meshdsl-system":
        args += ["--system-namespace", o.namespace]
    for namespace in sorted(n for n in o.mesh_namespaces if n in (*_RESERVED, o.namespace)):
        args += ["--allow-namespace", namespace]
    if o.tenant:
        tenant_ns, _, tenant_sa = o.tenant.partition("/")
        args += ["--apply-as", f"system:serviceaccount:{tenant_ns}:{tenant_sa}"]
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10,
             "timeoutSeconds": 3, "failureThreshold": 3}
    tenant_namespaces = sorted({n for n in o.mesh_namespaces if n not in _RESERVED}
                               | ({o.tenant.partition("/")[0]} if o.tenant else set()))
    tenant_account: list[dict[str, Any]] = (
        [{"apiVersion": "v1", "kind": "ServiceAccount",
          "metadata": _meta(o.tenant.partition("/")[2], o.tenant.partition("/")[0])}]
        if o.tenant else [])
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(o.namespace)},
        *[{"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(n)}
          for n in tenant_namespaces if n != o.namespace],
        *tenant_account,
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": _meta(o.service_account, o.namespace)},
        *rbac(o),
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

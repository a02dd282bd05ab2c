"""Kubernetes objects of the mesh: Namespaces (sidecar injection), Services and the
Deployments of each version."""

from __future__ import annotations

from meshdsl.compile.manifest import Manifest
from meshdsl.model.service import NamespaceSpec, Probe, ServiceSpec, Workload


def _meta(name: str, namespace: str | None, labels: dict[str, str],
          annotations: dict[str, str] | None = None) -> dict[str, object]:
    meta: dict[str, object] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def _probe(probe: Probe) -> dict[str, object]:
    out: dict[str, object] = {"httpGet": {"path": probe.path, "port": probe.port}} \
        if probe.path is not None else {"tcpSocket": {"port": probe.port}}
    if probe.initial_delay is not None:
        out["initialDelaySeconds"] = probe.initial_delay
    if probe.period is not None:
        out["periodSeconds"] = probe.period
    return out


def namespace(ns: NamespaceSpec, owned: dict[str, str]) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": _meta(ns.name, None, {**ns.labels, **owned})}


def service(svc: ServiceSpec, owned: dict[str, str]) -> Manifest:
    ports: list[dict[str, object]] = []
    for p in svc.ports:
        # protocol is the server's default, but Kubernetes < 1.21 rejects server-side
        # apply of a Service whose port list omits it (it is part of the list's key).
        port: dict[str, object] = {"port": p.number, "name": p.name, "protocol": "TCP"}
        if p.target_port is not None:
            port["targetPort"] = p.target_port
        if p.protocol is not None:
            port["appProtocol"] = p.protocol
        ports.append(port)
    spec: dict[str, object] = {"ports": ports, "selector": {svc.app_label: svc.name}}
    if svc.service_type is not None:
        spec["type"] = svc.service_type
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta(svc.name, svc.namespace, {**svc.labels, **owned},
                              svc.annotations), "spec": spec}


def deployment(svc: ServiceSpec, wl: Workload, owned: dict[str, str]) -> Manifest:
    labels = {svc.app_label: svc.name, svc.version_label: wl.version}
    for version in svc.versions:  # pods carry what the version's subset selects on
        if version.name == wl.version:
            labels.update(version.labels)
    container: dict[str, object] = {"name": svc.name, "image": wl.image}
    for key, words in (("command", wl.command), ("args", wl.args)):
        if words:
            container[key] = list(words)
    port = wl.container_port or (svc.ports[0].target_port or svc.ports[0].number
                                 if svc.ports else None)
    if port is not None:
        container["ports"] = [{"containerPort": port}]
    if wl.env:
        container["env"] = [{"name": k, "value": v} for k, v in sorted(wl.env.items())]
    if wl.image_pull_policy is not None:
        container["imagePullPolicy"] = wl.image_pull_policy
    if wl.resources:
        container["resources"] = {k: dict(v) for k, v in wl.resources.items()}
    for key, probe in (("readinessProbe", wl.readiness), ("livenessProbe", wl.liveness)):
        if probe is not None:
            container[key] = _probe(probe)
    if wl.scratch:
        container["volumeMounts"] = [{"name": k, "mountPath": v}
                                     for k, v in wl.scratch.items()]
    pod_spec: dict[str, object] = {"containers": [container]}
    if svc.service_account:
        pod_spec["serviceAccountName"] = svc.service_account
    if wl.scratch:
        pod_spec["volumes"] = [{"name": k, "emptyDir": {}} for k in wl.scratch]
    template: dict[str, object] = {"labels": labels}
    if wl.pod_annotations:
        template["annotations"] = dict(wl.pod_annotations)
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _meta(f"{svc.name}-{wl.version}", svc.namespace,
                              {**wl.labels, **owned}, wl.annotations),
            "spec": {"replicas": wl.replicas,
                     "selector": {"matchLabels": labels},
                     "template": {"metadata": template, "spec": pod_spec}}}


def service_account(svc: ServiceSpec, owned: dict[str, str]) -> Manifest:
    """The identity the service's SPIFFE principal names (only when set explicitly)."""
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": _meta(svc.account, svc.namespace, {**svc.account_labels, **owned})}

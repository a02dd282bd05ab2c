"""Kubernetes objects of the mesh: Namespaces (sidecar injection), Services and the
Deployments of each version."""

from __future__ import annotations

from collections.abc import Mapping

from meshdsl.compile.manifest import Manifest
from meshdsl.model.containers import Container, FileMount, ValueFrom
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


def _env(env: Mapping[str, str | ValueFrom]) -> list[dict[str, object]]:
    """In the order written: a value may refer to an earlier one (``$(NAME)``)."""
    out: list[dict[str, object]] = []
    for name, value in env.items():
        if isinstance(value, str):
            out.append({"name": name, "value": value})
            continue
        if value.field is not None:  # apiVersion: the API server's default, made explicit
            source: dict[str, object] = {"fieldRef": {"apiVersion": "v1",
                                                      "fieldPath": value.field}}
        else:
            ref: dict[str, object] = {"name": value.secret or value.config_map,
                                      "key": value.key}
            if value.optional is not None:
                ref["optional"] = value.optional
            source = {"secretKeyRef" if value.secret else "configMapKeyRef": ref}
        out.append({"name": name, "valueFrom": source})
    return out


def _file_volume(files: FileMount) -> dict[str, object]:
    source: dict[str, object] = {"secretName": files.secret} if files.secret else {
        "name": files.config_map}
    for key, value in (("optional", files.optional), ("defaultMode", files.default_mode)):
        if value is not None:
            source[key] = value
    return {"name": files.volume_name, "secret" if files.secret else "configMap": source}


def _mount(name: str, path: str, read_only: bool | None = None) -> dict[str, object]:
    out: dict[str, object] = {"name": name, "mountPath": path}
    if read_only is not None:
        out["readOnly"] = read_only
    return out


def _container(c: Container, *, probes: Mapping[str, Probe | None] | None = None,
               mounts: list[dict[str, object]] | None = None) -> dict[str, object]:
    """A container of the pod: the app's (with its ``probes`` and ``mounts``) or one
    beside it (mounting ``c.mounts``), in one shape."""
    out: dict[str, object] = {"name": c.name, "image": c.image}
    for key, words in (("command", c.command), ("args", c.args)):
        if words:
            out[key] = list(words)
    if c.ports:
        out["ports"] = [{"containerPort": p} for p in c.ports]
    if c.env:
        out["env"] = _env(c.env)
    if c.image_pull_policy is not None:
        out["imagePullPolicy"] = c.image_pull_policy
    if c.resources:
        out["resources"] = {k: dict(v) for k, v in c.resources.items()}
    for key, probe in (probes or {}).items():
        if probe is not None:
            out[key] = _probe(probe)
    mounts = [_mount(k, v) for k, v in c.mounts.items()] if mounts is None else mounts
    if mounts:
        out["volumeMounts"] = mounts
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


def default_container_ports(svc: ServiceSpec) -> list[int]:
    """What the app listens on unless ``container_port`` says otherwise: the target of
    the service's first port."""
    return [svc.ports[0].target_port or svc.ports[0].number] if svc.ports else []


def deployment(svc: ServiceSpec, wl: Workload, owned: dict[str, str]) -> Manifest:
    labels = svc.pod_labels(wl)
    app = Container.model_construct(  # validated as the Workload's fields
        name=svc.name, image=wl.image, command=wl.command, args=wl.args,
        ports=default_container_ports(svc) if wl.container_port is None else
        wl.container_ports, env=wl.env, image_pull_policy=wl.image_pull_policy,
        resources=wl.resources, mounts={})
    mounts = [_mount(k, v) for k, v in wl.scratch.items()]
    mounts += [_mount(f.volume_name, f.path, f.read_only) for f in wl.files if f.path]
    container = _container(app, probes={"readinessProbe": wl.readiness,
                                        "livenessProbe": wl.liveness}, mounts=mounts)
    pod_spec: dict[str, object] = {"containers": [container, *map(_container,
                                                                   wl.containers)]}
    if svc.service_account:
        pod_spec["serviceAccountName"] = svc.service_account
    if wl.grace_period is not None:
        pod_spec["terminationGracePeriodSeconds"] = wl.grace_period
    volumes: list[dict[str, object]] = [{"name": k, "emptyDir": {}} for k in wl.scratch]
    volumes += [_file_volume(f) for f in wl.files]
    if volumes:
        pod_spec["volumes"] = volumes
    template: dict[str, object] = {"labels": labels}
    if wl.pod_annotations:
        template["annotations"] = dict(wl.pod_annotations)
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _meta(f"{svc.name}-{wl.version}", svc.namespace,
                              {**wl.labels, **owned}, wl.annotations),
            "spec": {"replicas": wl.replicas,
                     "selector": {"matchLabels": labels},
                     **({"strategy": {"type": wl.strategy}} if wl.strategy else {}),
                     "template": {"metadata": template, "spec": pod_spec}}}


def service_account(svc: ServiceSpec, owned: dict[str, str]) -> Manifest:
    """The identity the service's SPIFFE principal names (only when set explicitly)."""
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": _meta(svc.account, svc.namespace, {**svc.account_labels, **owned})}

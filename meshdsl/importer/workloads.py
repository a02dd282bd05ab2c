"""A Deployment → the :class:`Workload` of one version of a service, as far as it reads.

Each field is taken only in the exact shape the compiler writes it (``kube.deployment``);
anything else is left out, so the comparison of the compiled workload with the input
names that field, and the Deployment is carried raw with a warning at it.
"""

from __future__ import annotations

from typing import Any

from meshdsl.compile.compare import normalize
from meshdsl.importer.fields import Problem, build
from meshdsl.importer.manifests import Resource
from meshdsl.importer.yamlsource import YamlPath
from meshdsl.model.service import Probe, Workload

_POD: YamlPath = ("spec", "template", "spec")
_CONTAINER: YamlPath = (*_POD, "containers", 0)


def dig(value: Any, *keys: str | int) -> Any:
    """``value[k1][k2]…``, or None where the path does not exist."""
    for key in keys:
        ok = isinstance(value, dict) if isinstance(key, str) else (
            isinstance(value, list) and len(value) > key)
        if not ok or (isinstance(value, dict) and key not in value):
            return None
        value = value[key]
    return value


def strings(value: Any) -> dict[str, str] | None:
    """A mapping of strings to strings (labels, annotations), or None."""
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str)
                                       for k, v in value.items()):
        return dict(value)
    return None


def _probe(value: Any) -> Probe | None:
    if not isinstance(value, dict):
        return None
    timing = {"initialDelaySeconds": "initial_delay", "periodSeconds": "period"}
    kind = {"httpGet", "tcpSocket"} & set(value)
    if len(kind) != 1 or set(value) - kind - set(timing):
        return None
    action = value[kind.pop()]
    data: dict[str, Any] = {timing[k]: v for k, v in value.items() if k in timing}
    if isinstance(action, dict) and set(action) == {"path", "port"} and "httpGet" in value:
        data.update(path=action["path"], port=action["port"])
    elif isinstance(action, dict) and set(action) == {"port"} and "tcpSocket" in value:
        data["port"] = action["port"]
    else:
        return None
    try:
        return Probe.model_validate(data, strict=True)
    except ValueError:
        return None


def _scratch(pod: Any, container: Any) -> dict[str, str] | None:
    """emptyDir volumes and where the container mounts them, when that is all there is."""
    volumes, mounts = dig(pod, "volumes"), dig(container, "volumeMounts")
    if not isinstance(volumes, list) or not isinstance(mounts, list):
        return None
    names = [v.get("name") for v in volumes if isinstance(v, dict) and set(v) == {
        "name", "emptyDir"} and v["emptyDir"] == {}]
    paths = [(m.get("name"), m.get("mountPath")) for m in mounts if isinstance(m, dict)
             and set(m) == {"name", "mountPath"}]
    if [n for n, _ in paths] != names or len(names) != len(volumes):
        return None
    return strings(dict(paths))


def _optional(data: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        data[key] = value


def deployment(res: Resource, problems: list[Problem]
               ) -> tuple[str | None, Workload | None, Any]:
    """(app label, workload, service account) of a Deployment, as far as it reads."""
    spec = res.spec
    labels = dig(spec, "selector", "matchLabels") or dig(spec, "template", "metadata",
                                                          "labels")
    app = labels.get("app") if isinstance(labels, dict) else None
    if not isinstance(app, str) or not app:
        problems.append((("spec", "selector"), "a Deployment without an 'app' label is not "
                         "expressible in the DSL"))
        return None, None, None
    pod, container = dig(spec, "template", "spec"), dig(spec, "template", "spec",
                                                         "containers", 0)
    meta = normalize(res.manifest)["metadata"]  # without meshdsl's ownership labels
    data: dict[str, Any] = {"version": labels.get("version"), "image": dig(container, "image")}
    if "replicas" in spec:
        data["replicas"] = spec["replicas"]
    env = dig(container, "env")
    if isinstance(env, list) and all(isinstance(e, dict) and set(e) == {"name", "value"}
                                     and isinstance(e["name"], str) for e in env):
        data["env"] = {e["name"]: e["value"] for e in env}
    _optional(data, "container_port", dig(container, "ports", 0, "containerPort"))
    _optional(data, "image_pull_policy", dig(container, "imagePullPolicy"))
    for key in ("command", "args"):
        words = dig(container, key)
        if isinstance(words, list) and words and all(isinstance(w, str) for w in words):
            data[key] = words
    for key, value in (("labels", meta.get("labels")), ("annotations", meta.get(
            "annotations")), ("pod_annotations", dig(spec, "template", "metadata",
                                                     "annotations"))):
        _optional(data, key, strings(value))
    resources = dig(container, "resources")
    if isinstance(resources, dict) and set(resources) <= {"requests", "limits"} and all(
            strings(v) for v in resources.values()):
        data["resources"] = resources
    for key, field in (("readinessProbe", "readiness"), ("livenessProbe", "liveness")):
        _optional(data, field, _probe(dig(container, key)))
    _optional(data, "scratch", _scratch(pod, container))
    locs = {"version": ("spec", "selector", "matchLabels", "version"),
            "image": (*_CONTAINER, "image"), "replicas": ("spec", "replicas"),
            "env": (*_CONTAINER, "env"), "container_port": (*_CONTAINER, "ports", 0),
            "image_pull_policy": (*_CONTAINER, "imagePullPolicy"),
            "command": (*_CONTAINER, "command"), "args": (*_CONTAINER, "args"),
            "labels": ("metadata", "labels"), "annotations": ("metadata", "annotations"),
            "pod_annotations": ("spec", "template", "metadata", "annotations"),
            "resources": (*_CONTAINER, "resources"), "scratch": (*_POD, "volumes")}
    workload = build(res, Workload, {k: v for k, v in data.items() if v is not None},
                     ("spec",), problems, locs=locs, fitted=True)
    if workload is not None:
        workload = workload.model_copy(update={"source": res.where()})
    account = dig(pod, "serviceAccountName")
    if account is not None:
        account = res.string(account, (*_POD, "serviceAccountName"))
    return app, workload, account

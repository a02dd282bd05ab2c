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
from meshdsl.model.containers import Container, FileMount, ValueFrom
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


def _value_from(value: Any) -> ValueFrom | None:
    """``valueFrom`` of an env variable: a Secret's or ConfigMap's key, or a pod field."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    kind, ref = next(iter(value.items()))
    if not isinstance(ref, dict):
        return None
    if kind == "fieldRef" and set(ref) <= {"fieldPath", "apiVersion"} and ref.get(
            "apiVersion", "v1") == "v1":
        data: dict[str, Any] = {"field": ref.get("fieldPath")}
    elif kind in ("secretKeyRef", "configMapKeyRef") and set(ref) <= {"name", "key",
                                                                       "optional"}:
        data = {"secret" if kind == "secretKeyRef" else "config_map": ref.get("name"),
                "key": ref.get("key"), "optional": ref.get("optional")}
    else:
        return None
    try:
        return ValueFrom.model_validate({k: v for k, v in data.items() if v is not None},
                                        strict=True)
    except ValueError:
        return None


def _env(value: Any) -> dict[str, Any] | None:
    """Env variables set to a string or read from a Secret, a ConfigMap or the pod."""
    if not isinstance(value, list):
        return None
    out: dict[str, Any] = {}
    for var in value:
        if not isinstance(var, dict) or not isinstance(var.get("name"), str) or \
                var["name"] in out:
            return None
        if set(var) == {"name", "value"}:
            out[var["name"]] = var["value"]
        elif set(var) == {"name", "valueFrom"} and (ref := _value_from(var["valueFrom"])):
            out[var["name"]] = ref
        else:
            return None
    return out


def _file_mount(volume: dict[str, Any], mount: dict[str, Any]) -> FileMount | None:
    """A Secret or ConfigMap volume and the app's mount of it (just ``{name}`` when only
    containers beside the app mount it), as the compiler writes them."""
    kind = {"secret", "configMap"} & set(volume)
    source = volume.get(next(iter(kind))) if len(kind) == 1 else None
    if set(volume) != {"name", *kind} or not isinstance(source, dict) or set(mount) - {
            "name", "mountPath", "readOnly"}:
        return None
    own = "secretName" if "secret" in kind else "name"
    if set(source) - {own, "optional", "defaultMode"}:
        return None
    data = {"path": mount.get("mountPath"), "read_only": mount.get("readOnly"),
            "secret" if own == "secretName" else "config_map": source.get(own),
            "volume": None if volume["name"] == source.get(own) else volume["name"],
            "optional": source.get("optional"), "default_mode": source.get("defaultMode")}
    try:
        return FileMount.model_validate({k: v for k, v in data.items() if v is not None},
                                        strict=True)
    except ValueError:
        return None


def _volumes(pod: Any, container: Any) -> tuple[dict[str, str], list[FileMount]]:
    """The pod's emptyDir volumes the app mounts (``scratch``) and its Secret/ConfigMap
    volumes (``files``); what does not read stays out, and the comparison names it."""
    volumes, mounts = dig(pod, "volumes"), dig(container, "volumeMounts")
    by_name = {m["name"]: m for m in mounts if isinstance(m, dict) and isinstance(
        m.get("name"), str) and isinstance(m.get("mountPath"), str)} if isinstance(
        mounts, list) else {}
    scratch: dict[str, str] = {}
    files: list[FileMount] = []
    for volume in volumes if isinstance(volumes, list) else []:
        if not isinstance(volume, dict) or not isinstance(volume.get("name"), str):
            continue
        mount = by_name.get(volume["name"], {"name": volume["name"]})  # not the app's
        if set(volume) == {"name", "emptyDir"} and volume["emptyDir"] == {} and set(
                mount) == {"name", "mountPath"}:
            scratch[mount["name"]] = mount["mountPath"]
        elif (found := _file_mount(volume, mount)) is not None:
            files.append(found)
    return scratch, files


def _mounts(value: Any) -> dict[str, str] | None:
    if isinstance(value, list) and all(isinstance(m, dict) and set(m) == {
            "name", "mountPath"} for m in value):
        return strings({m["name"]: m["mountPath"] for m in value})
    return None


def _ports(value: Any) -> list[Any] | None:
    """Container ports written as bare numbers (named or protocol-bearing ones stay out)."""
    if isinstance(value, list) and value and all(isinstance(p, dict) and set(p) == {
            "containerPort"} for p in value):
        return [p["containerPort"] for p in value]
    return None


def _common(container: Any) -> dict[str, Any]:
    """What the app's container and the containers beside it write alike."""
    data: dict[str, Any] = {"image": dig(container, "image"),
                            "env": _env(dig(container, "env")),
                            "image_pull_policy": dig(container, "imagePullPolicy")}
    for key in ("command", "args"):
        words = dig(container, key)
        if isinstance(words, list) and words and all(isinstance(w, str) for w in words):
            data[key] = words
    resources = dig(container, "resources")
    if isinstance(resources, dict) and set(resources) <= {"requests", "limits"} and all(
            strings(v) for v in resources.values()):
        data["resources"] = resources
    return data


def _beside(container: Any) -> Container | None:
    """A container beside the app's, with the fields that read; the comparison of the
    compiled Deployment with the input names the others."""
    data = {**_common(container), "name": dig(container, "name"),
            "ports": _ports(dig(container, "ports")),
            "mounts": _mounts(dig(container, "volumeMounts"))}
    try:
        return Container.model_validate({k: v for k, v in data.items() if v is not None},
                                        strict=True)
    except ValueError:
        return None


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
    data: dict[str, Any] = {"version": labels.get("version"), **_common(container)}
    if "replicas" in spec:
        data["replicas"] = spec["replicas"]
    ports = _ports(dig(container, "ports")) if isinstance(container, dict) and \
        "ports" in container else []  # none at all: not the service's port either
    _optional(data, "container_port", ports[0] if ports and len(ports) == 1 else ports)
    for key, value in (("labels", meta.get("labels")), ("annotations", meta.get(
            "annotations")), ("pod_annotations", dig(spec, "template", "metadata",
                                                     "annotations"))):
        _optional(data, key, strings(value))
    for key, field in (("readinessProbe", "readiness"), ("livenessProbe", "liveness")):
        _optional(data, field, _probe(dig(container, key)))
    data["scratch"], data["files"] = _volumes(pod, container)
    _optional(data, "grace_period", dig(pod, "terminationGracePeriodSeconds"))
    strategy = dig(spec, "strategy")
    if isinstance(strategy, dict) and set(strategy) == {"type"}:
        data["strategy"] = strategy["type"]
    extra = dig(pod, "containers")
    if isinstance(extra, list) and len(extra) > 1:
        beside = [_beside(c) for c in extra[1:]]
        read = {*data["scratch"], *(f.volume_name for f in data["files"])}
        _optional(data, "containers", None if None in beside else [  # mounts of volumes
            c.model_copy(update={"mounts": {k: v for k, v in c.mounts.items() if k in read}})
            for c in beside if c is not None])  # read: the comparison names the others
    locs = {"version": ("spec", "selector", "matchLabels", "version"),
            "image": (*_CONTAINER, "image"), "replicas": ("spec", "replicas"),
            "env": (*_CONTAINER, "env"), "container_port": (*_CONTAINER, "ports"),
            "image_pull_policy": (*_CONTAINER, "imagePullPolicy"),
            "command": (*_CONTAINER, "command"), "args": (*_CONTAINER, "args"),
            "labels": ("metadata", "labels"), "annotations": ("metadata", "annotations"),
            "pod_annotations": ("spec", "template", "metadata", "annotations"),
            "resources": (*_CONTAINER, "resources"), "scratch": (*_POD, "volumes"),
            "files": (*_POD, "volumes"),
            "grace_period": (*_POD, "terminationGracePeriodSeconds"),
            "containers": (*_POD, "containers"), "strategy": ("spec", "strategy")}
    workload = build(res, Workload, {k: v for k, v in data.items() if v is not None},
                     ("spec",), problems, locs=locs, fitted=True)
    if workload is not None:
        workload = workload.model_copy(update={"source": res.where()})
    account = dig(pod, "serviceAccountName")
    if account is not None:
        account = res.string(account, (*_POD, "serviceAccountName"))
    return app, workload, account

"""``MeshStack``: a mesh as one Pulumi component, one Kubernetes resource per compiled object.

The component compiles the mesh with the same ``compile_mesh`` that ``meshctl render`` and
the reconciler use, so the resources are exactly the rendered objects. Choices:

* **Typed resources for built-in kinds, ``CustomResource`` for the rest.** Namespace,
  Service, ServiceAccount and Deployment become ``pulumi_kubernetes.core.v1.Namespace`` …
  ``apps.v1.Deployment`` (found by API group, so a built-in kind passed through
  ``mesh.raw`` works too): Pulumi then knows their schema, replaces on immutable-field
  changes and awaits readiness. Istio objects (and any other CRD) become
  ``apiextensions.CustomResource``. The manifest is passed as is (nested keys stay
  camelCase; the SDK sends them through untouched), never through a YAML ConfigGroup.
* **Stable logical names** ``"{kind}-{namespace}-{name}"`` (``"{kind}-{name}"`` for
  cluster-scoped objects), lower-case. They depend on nothing but the object, and not on
  the component's name either (a child's URN carries its parent's *type*, not its name),
  so renaming nothing replaces nothing. Two objects that would share a name are an error.
* **Apply order as dependencies.** Objects come in ``KIND_ORDER`` groups (Namespaces,
  ServiceAccounts, Services, Deployments, DestinationRules, Gateways, VirtualServices, …);
  each object ``depends_on`` the whole previous group, so namespaces exist first, and a
  VirtualService that routes to a new subset waits for its DestinationRule and for the
  Deployments behind it to be ready.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pulumi
from pulumi_kubernetes import _tables
from pulumi_kubernetes.apiextensions import CustomResource

from meshdsl.compile import Manifest, ResourceKey, Weights, compile_mesh, order_key
from meshdsl.model.builder import Mesh
from meshdsl.model.spec import MeshSpec
from meshdsl.validate import Severity, validate
from stacks.errors import MeshStackError

TYPE_TOKEN = "meshdsl:index:MeshStack"

# API groups served by Kubernetes itself (typed in pulumi_kubernetes); the rest are CRDs.
_BARE_BUILTIN_GROUPS = frozenset({"", "apps", "autoscaling", "batch", "extensions", "policy"})


def logical_name(manifest: Manifest) -> str:
    """The Pulumi name of a compiled object: ``kind-namespace-name``, lower-case."""
    key = ResourceKey.of(manifest)
    parts = [key.kind, key.namespace, key.name] if key.namespace else [key.kind, key.name]
    return "-".join(parts).lower()


def builtin_class(api_version: str, kind: str) -> Callable[..., pulumi.CustomResource] | None:
    """The typed ``pulumi_kubernetes`` class of a built-in kind (``v1``/``Service`` →
    ``core.v1.Service``), or None for a custom resource."""
    group, _, version = api_version.rpartition("/")
    if group not in _BARE_BUILTIN_GROUPS and not group.endswith(".k8s.io"):
        return None
    module = "core" if not group else group.split(".")[0]
    try:
        cls = getattr(importlib.import_module(f"pulumi_kubernetes.{module}.{version}"), kind)
    except (ImportError, AttributeError) as exc:
        raise MeshStackError(f"{kind} {api_version} is a Kubernetes API this "
                             "pulumi-kubernetes does not have") from exc
    if not (isinstance(cls, type) and issubclass(cls, pulumi.CustomResource)):
        raise MeshStackError(f"{kind} {api_version} is not a Kubernetes resource")
    typed: Callable[..., pulumi.CustomResource] = cls
    return typed


def _snake(key: str) -> str:
    known: str | None = _tables.CAMEL_TO_SNAKE_CASE_TABLE.get(key)
    return known or re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def kube_resource(name: str, manifest: Manifest,
                  opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """One Pulumi resource for one manifest (typed for built-in kinds)."""
    body = dict(manifest)
    api_version, kind = str(body.pop("apiVersion")), str(body.pop("kind"))
    cls = builtin_class(api_version, kind)
    if cls is None:
        extra = sorted(set(body) - {"metadata", "spec"})
        if extra:
            raise MeshStackError(f"{ResourceKey.of(manifest)}: a custom resource can carry "
                                 f"only metadata and spec, not {', '.join(extra)}")
        return CustomResource(name, api_version=api_version, kind=kind,
                              metadata=body.get("metadata"), spec=body.get("spec"), opts=opts)
    kwargs = {_snake(key): value for key, value in body.items()}
    resource: pulumi.CustomResource = cls(name, opts=opts, api_version=api_version, kind=kind,
                                          **kwargs)
    return resource


def _weights_output(weights: Weights | None) -> dict[str, dict[str, int]]:
    return {f"{ns}/{svc}": dict(split) for (ns, svc), split in sorted((weights or {}).items())}


class MeshStack(pulumi.ComponentResource):
    """A mesh (a ``Mesh`` builder or its ``MeshSpec``) as Kubernetes resources.

    ``weights`` are passed to ``compile_mesh``: where a canary stands (see
    :mod:`stacks.rollout`). The mesh is validated first; errors stop the deployment, as in
    ``meshctl render``, and warnings are logged on the component.

    Attributes: ``manifests`` (apply order), ``resources`` (logical name → resource) and
    ``resource_names`` (``Kind/namespace/name`` in apply order, also registered as the
    ``resources`` output).
    """

    manifests: list[Manifest]
    resources: dict[str, pulumi.CustomResource]
    resource_names: list[str]

    def __init__(self, name: str, mesh: Mesh | MeshSpec,
                 opts: pulumi.ResourceOptions | None = None, *,
                 weights: Weights | None = None) -> None:
        spec = mesh.build() if isinstance(mesh, Mesh) else mesh
        findings = validate(spec)
        errors = [f for f in findings if f.severity is Severity.ERROR]
        if errors:
            listed = "\n".join(f"  {f.source or spec.name}: {f.code} {f.path}: {f.message}"
                               for f in errors)
            raise MeshStackError(f"mesh {spec.name!r} has {len(errors)} validation error(s); "
                                 f"nothing deployed:\n{listed}")
        manifests = compile_mesh(spec, weights=weights)
        names = _unique_names(manifests)

        super().__init__(TYPE_TOKEN, name, None, opts)
        for finding in findings:
            if finding.severity is Severity.WARNING:
                where = f"{finding.source}: " if finding.source else ""
                pulumi.log.warn(f"{where}{finding.code} {finding.message}", resource=self)

        self.manifests = manifests
        self.resources = {}
        self.resource_names = [str(ResourceKey.of(m)) for m in manifests]
        previous: Sequence[pulumi.Resource] = []
        current: list[pulumi.Resource] = []
        group: tuple[int, str] | None = None
        for manifest, logical in zip(manifests, names, strict=True):
            this_group = order_key(manifest)[:2]
            if this_group != group:
                previous, current, group = current or previous, [], this_group
            resource = kube_resource(logical, manifest, pulumi.ResourceOptions(
                parent=self, depends_on=list(previous)))
            self.resources[logical] = resource
            current.append(resource)
        self.register_outputs({"resources": self.resource_names,
                               "weights": _weights_output(weights)})


def _unique_names(manifests: Sequence[Mapping[str, Any]]) -> list[str]:
    names = [logical_name(dict(m)) for m in manifests]
    owners: dict[str, list[str]] = {}
    for manifest, name in zip(manifests, names, strict=True):
        owners.setdefault(name, []).append(str(ResourceKey.of(dict(manifest))))
    clashes = {name: keys for name, keys in owners.items() if len(keys) > 1}
    if clashes:
        listed = "; ".join(f"{name}: {', '.join(keys)}" for name, keys in sorted(clashes.items()))
        raise MeshStackError(f"these objects would share a Pulumi name: {listed}; rename one")
    return names

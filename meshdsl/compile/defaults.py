"""The API server's defaults: a field equal to the value the server would give it is absent.

An object read back from a cluster is never what was applied: the server fills in
defaults (a Service's ``type: ClusterIP``, a backendRef's ``weight: 1``, a Deployment's
``strategy``) and allocates values (a ``clusterIP``). Comparing what a program renders
with live objects, or turning live objects back into the YAML a user would apply, needs
both sides without them: :func:`without_defaults` removes every field whose value is the
one the server would have chosen had the field been absent, so that applying the result
stores the same object again.

Where the defaults come from:

- kinds a CRD defines: the ``default`` of each property in the CRD's OpenAPI schema (the
  bundled Istio and Gateway API CRDs, :mod:`meshdsl.crds`; Istio's schemas declare none,
  the Gateway API's declare ~30 — ``allowedRoutes``, backendRef ``group``/``kind``/
  ``weight``, the ``PathPrefix /`` match …);
- Kubernetes' own kinds, which have no schema to read: the table :data:`CORE` below, in
  the same shape (``properties``/``items``/``default``), covering what the API server
  (1.20 and later) fills in on Namespaces, ServiceAccounts, Services, Deployments and their
  pod templates.
  A ``default`` there may be a function of the enclosing object, for a default that
  depends on a sibling (a container's ``imagePullPolicy`` depends on its image's tag, a
  port's ``targetPort`` is its ``port``) or for a value the server allocates (a
  ``clusterIP`` other than ``None``).

A whole value equal to its default is removed; otherwise its fields are examined, so a
``{namespaces: {from: Same}, kinds: [...]}`` keeps only ``kinds``. A mapping left empty
by that stays (``tls: {}`` is not the same as no ``tls``), except where the table says
``{}`` is the default. Pure: reads only the data it is given. The CRD defaults are the
bundled CRDs' (``ServerDefaults`` takes others, but nothing passes a cluster's own yet).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from meshdsl.compile.manifest import Manifest
from meshdsl.compile.schema import GVK, crd_versions

__all__ = ["CORE", "ServerDefaults", "bundled_defaults", "without_defaults"]

Schema = dict[str, Any]


def _obj(**properties: Schema) -> Schema:
    return {"properties": properties}


def _items(item: Schema) -> Schema:
    return {"items": item}


def _is(value: Any) -> Schema:
    return {"default": value}


def _pull_policy(container: Mapping[str, Any]) -> str:
    """``Always`` for an image without a tag or tagged ``latest``, else ``IfNotPresent``
    (a digest pins the image, so it is ``IfNotPresent`` too)."""
    image = str(container.get("image", ""))
    if "@" in image:
        return "IfNotPresent"
    name = image.rsplit("/", 1)[-1]
    tag = name.rpartition(":")[2] if ":" in name else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _allocated(*kept: Any) -> Schema:
    """A value the server allocates when absent: any value but ``kept`` is its choice."""
    def default(parent: Mapping[str, Any], key: str) -> Any:
        value = parent.get(key)
        return _NEVER if value in kept else value
    return {"default": default}


def _token_secrets(account: Mapping[str, Any], key: str) -> Any:
    """The token Secrets the cluster (before 1.24) makes for a ServiceAccount and lists in
    it: ``<account>-token-<random>``; anything else is the user's."""
    name = str((account.get("metadata") or {}).get("name", ""))
    secrets = account.get(key)
    made = isinstance(secrets, list) and all(
        isinstance(s, Mapping) and set(s) == {"name"}
        and str(s["name"]).startswith(f"{name}-token-") for s in secrets)
    return secrets if made else _NEVER


class _Never:
    """Equal to nothing: the default of a value the user chose."""

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = None  # type: ignore[assignment]


_NEVER = _Never()

_PROBE = _obj(timeoutSeconds=_is(1), periodSeconds=_is(10), successThreshold=_is(1),
              failureThreshold=_is(3), httpGet=_obj(scheme=_is("HTTP")))
_FIELD_REF = _obj(fieldRef=_obj(apiVersion=_is("v1")))
_CONTAINER = _obj(
    terminationMessagePath=_is("/dev/termination-log"), terminationMessagePolicy=_is("File"),
    imagePullPolicy={"default": lambda c, _: _pull_policy(c)}, resources=_is({}),
    ports=_items(_obj(protocol=_is("TCP"))), env=_items(_obj(valueFrom=_FIELD_REF)),
    readinessProbe=_PROBE, livenessProbe=_PROBE, startupProbe=_PROBE)
_POD = _obj(
    restartPolicy=_is("Always"), dnsPolicy=_is("ClusterFirst"),
    schedulerName=_is("default-scheduler"), securityContext=_is({}),
    terminationGracePeriodSeconds=_is(30), containers=_items(_CONTAINER),
    serviceAccount={"default": lambda pod, _: pod.get("serviceAccountName", _NEVER)},
    initContainers=_items(_CONTAINER),
    volumes=_items(_obj(secret=_obj(defaultMode=_is(420)),
                        configMap=_obj(defaultMode=_is(420)))))
_TEMPLATE = _obj(spec=_POD)
_STRATEGY = {**_is({"type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
             **_obj(type=_is("RollingUpdate"),
                    rollingUpdate=_obj(maxUnavailable=_is("25%"), maxSurge=_is("25%")))}

CORE: dict[tuple[str, str], Schema] = {
    ("", "Namespace"): _obj(spec=_is({"finalizers": ["kubernetes"]})),
    ("", "ServiceAccount"): _obj(secrets={"default": _token_secrets}),
    ("", "Service"): _obj(spec=_obj(
        type=_is("ClusterIP"), sessionAffinity=_is("None"), ipFamilyPolicy=_is("SingleStack"),
        ipFamilies=_is(["IPv4"]), clusterIP=_allocated("None"), clusterIPs=_allocated(["None"]),
        externalTrafficPolicy=_is("Cluster"), internalTrafficPolicy=_is("Cluster"),
        allocateLoadBalancerNodePorts=_is(True),
        ports=_items(_obj(protocol=_is("TCP"),
                          targetPort={"default": lambda p, _: p.get("port", _NEVER)})))),
    ("apps", "Deployment"): _obj(spec=_obj(
        replicas=_is(1), progressDeadlineSeconds=_is(600), revisionHistoryLimit=_is(10),
        strategy=_STRATEGY, template=_TEMPLATE)),
}
"""Kubernetes' defaults for the core kinds the DSL models, as a schema of ``default``s."""


def _default(schema: Schema, parent: Mapping[str, Any], key: str) -> Any:
    value = schema["default"]
    return value(parent, key) if callable(value) else value


def _strip(value: Any, schema: Schema) -> Any:
    if isinstance(value, list):
        items = schema.get("items")
        return [_strip(v, items) for v in value] if isinstance(items, dict) else value
    if not isinstance(value, dict):
        return value
    properties = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    out = {}
    for key, sub in value.items():
        child = properties.get(key, additional if isinstance(additional, dict) else None)
        if child is None:
            out[key] = sub
        elif "default" in child and sub == _default(child, value, key):
            continue
        else:
            out[key] = _strip(sub, child)
    return out


class ServerDefaults:
    """Schemas of defaults by (group, version, kind), from CRDs and the :data:`CORE` table."""

    def __init__(self, crds: Iterable[dict[str, Any]]) -> None:
        self._schemas: dict[GVK, Schema] = dict(crd_versions(crds))
        self._by_kind: dict[tuple[str, str], Schema] = {}
        for (group, _, kind), schema in self._schemas.items():
            self._by_kind.setdefault((group, kind), schema)

    def schema(self, manifest: Mapping[str, Any]) -> Schema | None:
        group, _, version = str(manifest.get("apiVersion", "")).rpartition("/")
        kind = str(manifest.get("kind", ""))
        if (group, kind) in CORE:
            return CORE[(group, kind)]
        return self._schemas.get((group, version, kind)) or self._by_kind.get((group, kind))

    def strip(self, manifest: Manifest) -> Manifest:
        """A copy of ``manifest`` without the fields equal to their server default."""
        schema = self.schema(manifest)
        out: Manifest = _strip(manifest, schema) if schema else dict(manifest)
        return copy.deepcopy(out)


@functools.cache
def bundled_defaults() -> ServerDefaults:
    """The defaults of the bundled CRDs and Kubernetes' core kinds (built once)."""
    from meshdsl.crds import bundled

    return ServerDefaults(bundled())


def without_defaults(manifest: Manifest,
                     defaults: Callable[[], ServerDefaults] = bundled_defaults) -> Manifest:
    """``manifest`` without the fields the API server would fill in with the same value."""
    return defaults().strip(manifest)

"""The Kubernetes target: Istio and Kubernetes objects through the API server.

Writes are server-side apply (``PATCH`` with ``application/apply-patch+yaml``) under one
stable field manager, ``meshdsl``; ``force`` is passed only when the caller says the
object's fields are ours. Reads are paginated, consistent LISTs, or one-shot LISTs from the
API server's watch cache, optionally metadata only.
Kinds are resolved by API discovery (one request per group/version, cached), so raw
manifests of any served kind work. Objects are named by ``ResourceKey`` and kinds by
``GroupKind``; they are read in the version discovery prefers, as kubectl does: the first
of the group's versions, in the server's order of preference, that serves the kind
(``EnvoyFilter`` in ``v1alpha3``, although ``networking.istio.io`` prefers ``v1``).
Manifests are written in the version they say.

Connections and credentials come from the official client's configuration (kubeconfig,
contexts, tokens, exec plugins, client certificates); requests go through
:mod:`reconciler.targets.kube_http`, bodies plain JSON. Connection failures and
429/503/504 are retried a bounded number of times (tenacity); every other failure becomes
one :class:`KubeError` subclass with a one-line message (see :mod:`.kube_http`).

``write_calls`` counts non-dry-run write requests and ``writes`` logs the latest
:data:`WRITES_KEPT` of them in order (``("apply", "VirtualService/ns/name")``,
``("delete", …)``, ``("patch", …)``), for tests and benchmarks — bounded, since a reconciler
writes for months.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from meshdsl.compile.manifest import GroupKind, Manifest, ResourceKey
from reconciler.core.diff import FieldPath
from reconciler.targets.kube_http import (
    Busy,
    Conflict,
    Forbidden,
    Invalid,
    KubeConfigError,
    KubeError,
    NotFound,
    Transport,
    Unauthorized,
    Unreachable,
    error_for,
)
from reconciler.targets.kubeconfig import api_client

__all__ = [
    "FIELD_MANAGER",
    "ApiResource",
    "Conflict",
    "Forbidden",
    "Invalid",
    "KubeConfigError",
    "KubeError",
    "KubeTarget",
    "NotFound",
    "Unauthorized",
    "Unreachable",
]

FIELD_MANAGER = "meshdsl"
PAGE_SIZE = 500
WRITES_KEPT = 10_000
_APPLY_PATCH = "application/apply-patch+yaml"
_METADATA_LIST = ("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, "
                  "application/json")


# --- the target ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiResource:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None, name: str | None = None) -> str:
        base = (
            f"/api/{self.api_version}"
            if "/" not in self.api_version
            else (f"/apis/{self.api_version}")
        )
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return f"{base}/{quote(name, safe='')}" if name else base


def _with_protocols(ports: Any) -> Any:
    if not isinstance(ports, list) or all(
            not isinstance(p, dict) or "protocol" in p for p in ports):
        return ports
    return [{**p, "protocol": "TCP"} if isinstance(p, dict) and "protocol" not in p else p
            for p in ports]


def _pod_spec_with_protocols(pod: Any) -> Any:
    if not isinstance(pod, dict):
        return pod
    out = dict(pod)
    for field in ("containers", "initContainers"):
        if isinstance(pod.get(field), list):
            out[field] = [{**c, "ports": _with_protocols(c["ports"])}
                          if isinstance(c, dict) and "ports" in c else c for c in pod[field]]
    return out


def with_list_keys(manifest: dict[str, Any]) -> dict[str, Any]:
    """Spell out ``protocol: TCP`` where it is part of a list's merge key.

    Server-side apply on Kubernetes <= 1.20 rejects a Service port or container port without
    ``protocol`` ("associative list with keys has an element that omits key field
    protocol"), although the server defaults it to TCP. Adding the default before sending
    changes nothing stored; the desired manifest (and its hash) stays as compiled.
    """
    kind, spec = manifest.get("kind"), manifest.get("spec")
    if not isinstance(spec, dict):
        return manifest
    if kind == "Service" and "ports" in spec:
        return {**manifest, "spec": {**spec, "ports": _with_protocols(spec["ports"])}}
    if kind == "Pod":
        return {**manifest, "spec": _pod_spec_with_protocols(spec)}
    template = spec.get("template")
    if kind == "CronJob":
        job = spec.get("jobTemplate")
        if isinstance(job, dict) and isinstance(job.get("spec"), dict):
            job_spec = dict(job["spec"])
            inner = with_list_keys({"kind": "Job", "spec": job_spec})["spec"]
            return {**manifest, "spec": {**spec, "jobTemplate": {**job, "spec": inner}}}
        return manifest
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        pod = _pod_spec_with_protocols(template["spec"])
        return {**manifest, "spec": {**spec, "template": {**template, "spec": pod}}}
    return manifest


def _list_items(page: dict[str, Any], res: ApiResource) -> list[dict[str, Any]]:
    items = page.get("items") or []
    for item in items:  # a list's items do not carry apiVersion/kind; give them back
        item["apiVersion"], item["kind"] = res.api_version, res.kind
    return list(items)


def _describe(manifest: dict[str, Any]) -> str:
    meta = manifest.get("metadata") or {}
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{manifest.get('kind', '?')}/{ns}{meta.get('name', '?')}"


class KubeTarget:
    """A :class:`~reconciler.ports.Target` backed by a Kubernetes API server."""

    def __init__(
        self,
        api_client: Any,
        *,
        field_manager: str = FIELD_MANAGER,
        timeout: tuple[float, float] = (5.0, 60.0),
        attempts: int = 4,
        pool_size: int = 16,
    ) -> None:
        self._transport = Transport(api_client, timeout=timeout, pool_size=pool_size)
        self.field_manager = field_manager
        self._attempts = attempts
        self._lock = threading.Lock()
        self._discovery: dict[str, dict[str, ApiResource]] = {}
        self._discovery_locks: dict[str, threading.Lock] = {}
        self._groups: dict[str, tuple[str, ...]] = {"": ("v1",)}
        self._groups_lock = threading.Lock()
        self._resolved: dict[GroupKind, ApiResource] = {}
        self.requests: Counter[str] = Counter()
        self.writes: deque[tuple[str, str]] = deque(maxlen=WRITES_KEPT)
        self._write_calls = 0

    # -- construction --

    @classmethod
    def from_kubeconfig(
        cls,
        kubeconfig: str | None = None,
        *,
        context: str | None = None,
        impersonate: str | None = None,
        pool_size: int = 16,
        **kwargs: Any,
    ) -> KubeTarget:
        """Connect like kubectl: ``kubeconfig`` (else ``$KUBECONFIG``/``~/.kube/config``,
        else the in-cluster service account), optionally another ``context``."""
        client = api_client(kubeconfig, context=context, impersonate=impersonate,
                            pool_size=pool_size)
        return cls(client, pool_size=pool_size, **kwargs)

    @property
    def server(self) -> str:
        return self._transport.server

    @property
    def write_calls(self) -> int:
        return self._write_calls

    @property
    def transport(self) -> Transport:
        """The HTTP transport (its connection pool is observable for tests and benches)."""
        return self._transport

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> KubeTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP --

    def _request(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
                 body: bytes | None = None, content_type: str | None = None,
                 what: str = "", accept: str | None = None) -> Any:
        with self._lock:
            self.requests[method] += 1
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            retry=retry_if_exception_type((Unreachable, Busy)),
            reraise=True,
        )
        def send() -> bytes:
            status, data = self._transport.send(method, path, query or [], body,
                                                content_type=content_type, accept=accept)
            if status >= 400:
                raise error_for(status, data, what)
            return data

        try:
            data = retrying(send)
        except Busy as exc:
            raise KubeError(str(exc), status=exc.status, reason=exc.reason) from exc
        return json.loads(data) if data else None

    def _count_write(self, verb: str, what: str) -> None:
        with self._lock:
            self._write_calls += 1
            self.writes.append((verb, what))

    # -- discovery --

    def resource(self, api_version: str, kind: str) -> ApiResource:
        """Plural and scope of a kind, from API discovery (cached per group/version)."""
        known = self._discovery.get(api_version)
        if known is None:
            with self._lock:
                lock = self._discovery_locks.setdefault(api_version, threading.Lock())
            with lock:
                known = self._discovery.get(api_version)
                if known is None:
                    known = self._discover(api_version)
                    self._discovery[api_version] = known
        found = known.get(kind)
        if found is None:
            raise NotFound(
                f"the API server at {self.server} does not serve kind {kind} in "
                f"{api_version}{self._crd_hint(api_version)}"
            )
        return found

    @staticmethod
    def _crd_hint(api: str) -> str:
        return "; are Istio's CRDs installed?" if "istio.io" in api else ""

    def _discover(self, api_version: str) -> dict[str, ApiResource]:
        path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        try:
            listing = self._request("GET", path, what=f"discovery of {api_version}")
        except NotFound as exc:
            raise NotFound(
                f"the API server at {self.server} does not serve {api_version}"
                f"{self._crd_hint(api_version)}",
                status=404,
            ) from exc
        out: dict[str, ApiResource] = {}
        for item in (listing or {}).get("resources", []):
            name = str(item.get("name", ""))
            if "/" in name:  # subresource
                continue
            out[str(item["kind"])] = ApiResource(
                api_version, str(item["kind"]), name, bool(item.get("namespaced"))
            )
        return out

    def _versions(self, group: str) -> tuple[str, ...]:
        """The group's served versions, preferred first (``GET /apis``; fetched again
        when the group is not known yet: a CRD installed since)."""
        known = self._groups.get(group)
        if known is not None:
            return known
        with self._groups_lock:
            if group not in self._groups:
                listing = self._request("GET", "/apis", what="discovery of API groups")
                for item in (listing or {}).get("groups", []):
                    preferred = str((item.get("preferredVersion") or {}).get("version", ""))
                    served = [str(v.get("version", "")) for v in item.get("versions", [])]
                    ordered = [preferred] if preferred in served else []
                    self._groups[str(item.get("name", ""))] = tuple(
                        ordered + [v for v in served if v and v != preferred])
            return self._groups.get(group, ())

    def resolve(self, kind: GroupKind) -> ApiResource:
        """The version (and plural and scope) to read a kind in: the first of its group's
        versions, preferred first, that serves it — kubectl's choice."""
        found = self._resolved.get(kind)
        if found is not None:
            return found
        for version in self._versions(kind.group):
            api_version = f"{kind.group}/{version}" if kind.group else version
            try:
                found = self.resource(api_version, kind.kind)
            except NotFound:
                continue
            self._resolved[kind] = found
            return found
        raise NotFound(f"the API server at {self.server} does not serve kind {kind}"
                       f"{self._crd_hint(kind.group)}")

    def namespaced(self, kind: GroupKind) -> bool:
        return self.resolve(kind).namespaced

    # -- the Target port --

    def get(self, key: ResourceKey) -> Manifest | None:
        res = self.resolve(key.group_kind)
        try:
            obj = self._request("GET", res.path(key.namespace, key.name), what=str(key))
        except NotFound:
            return None
        return dict(obj) if isinstance(obj, dict) else None

    def apply(
        self, manifest: dict[str, Any], *, force: bool, dry_run: bool = False
    ) -> dict[str, Any]:
        api_version, kind = str(manifest.get("apiVersion")), str(manifest.get("kind"))
        meta = manifest.get("metadata") or {}
        res = self.resource(api_version, kind)
        query = [("fieldManager", self.field_manager)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        what = _describe(manifest)
        body = json.dumps(with_list_keys(manifest), separators=(",", ":")).encode()
        path = res.path(meta.get("namespace"), str(meta.get("name")))
        if not dry_run:
            self._count_write("apply", what)
        result = self._request(
            "PATCH", path, query=query, body=body, content_type=_APPLY_PATCH, what=what
        )
        return dict(result) if isinstance(result, dict) else {}

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create the object only if it does not exist (POST; 409 :class:`Conflict`
        otherwise) — the one precondition server-side apply cannot express."""
        api_version, kind = str(manifest.get("apiVersion")), str(manifest.get("kind"))
        meta = manifest.get("metadata") or {}
        res = self.resource(api_version, kind)
        what = _describe(manifest)
        body = json.dumps(with_list_keys(manifest), separators=(",", ":")).encode()
        self._count_write("create", what)
        result = self._request("POST", res.path(meta.get("namespace")),
                               query=[("fieldManager", self.field_manager)], body=body,
                               content_type="application/json", what=what)
        return dict(result) if isinstance(result, dict) else {}

    def remove_fields(self, key: ResourceKey, fields: Sequence[tuple[FieldPath, object]], *,
                      dry_run: bool = False) -> Manifest:
        """A JSON patch: ``test`` that each field still has the value we saw, then
        ``remove`` it — all or nothing, attributed to our field manager (an Update). The
        paths are those of the object as :meth:`get` returns it (the same version)."""
        res = self.resolve(key.group_kind)
        what = str(key)
        ops: list[dict[str, Any]] = []
        for path, value in fields:
            pointer = "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in path)
            ops += [{"op": "test", "path": pointer, "value": value},
                    {"op": "remove", "path": pointer}]
        query = [("fieldManager", self.field_manager)]
        if dry_run:
            query.append(("dryRun", "All"))
        else:
            self._count_write("patch", what)
        result = self._request("PATCH", res.path(key.namespace, key.name), query=query,
                               body=json.dumps(ops).encode(),
                               content_type="application/json-patch+json", what=what)
        return dict(result) if isinstance(result, dict) else {}

    def delete(self, key: ResourceKey, *, uid: str | None = None, dry_run: bool = False
               ) -> None:
        res = self.resolve(key.group_kind)
        what = str(key)
        options: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
        }
        if uid:
            options["preconditions"] = {"uid": uid}
        if dry_run:  # with a body, the server ignores the query's dryRun: say it in both
            options["dryRun"] = ["All"]
        query = [("dryRun", "All")] if dry_run else []
        if not dry_run:
            self._count_write("delete", what)
        try:
            self._request(
                "DELETE",
                res.path(key.namespace, key.name),
                query=query,
                body=json.dumps(options).encode(),
                content_type="application/json",
                what=what,
            )
        except NotFound:
            return

    def list(self, kind: GroupKind, namespace: str | None = None, *,
             metadata_only: bool = False, cached: bool = False) -> list[Manifest]:
        """Every object of a kind (in a namespace).

        By default a consistent read from etcd, in pages of :data:`PAGE_SIZE`. ``cached``
        lets the API server answer from its watch cache (``resourceVersion=0``: one
        response, several times cheaper, possibly a moment behind). ``metadata_only`` asks
        for ``PartialObjectMetadata`` — no spec, less to encode and to decode.
        """
        res = self.resolve(kind)
        what = f"list {res.plural}{f' in {namespace}' if namespace else ''}"
        accept = _METADATA_LIST if metadata_only else None
        if cached:
            page = self._request("GET", res.path(namespace), query=[("resourceVersion", "0")],
                                 what=what, accept=accept) or {}
            return _list_items(page, res)
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = [("limit", str(PAGE_SIZE))] + ([("continue", token)] if token else [])
            page = self._request("GET", res.path(namespace), query=query, what=what,
                                 accept=accept) or {}
            items += _list_items(page, res)
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return items

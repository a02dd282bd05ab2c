"""The Kubernetes target: Istio and Kubernetes objects through the API server.

Writes are server-side apply (``PATCH`` with ``application/apply-patch+yaml``) under one
stable field manager, ``meshdsl``; ``force`` is passed only when the caller says the
object's fields are ours. Reads are paginated, consistent LISTs (optionally metadata only).
Kinds are resolved by API discovery (one request per group/version, cached), so raw
manifests of any served kind work.

Requests go through the official client's configuration and connection pool
(kubeconfig, contexts, tokens, exec plugins, client certificates, proxies), bypassing its
model (de)serialisation: bodies are plain JSON. Connection failures and 429/503/504 are
retried a bounded number of times (tenacity); every other failure becomes one
:class:`KubeError` subclass with a one-line message: :class:`Unreachable`,
:class:`Unauthorized`, :class:`Forbidden`, :class:`NotFound`, :class:`Conflict` (409),
:class:`Invalid` (422/400).

``write_calls`` counts non-dry-run write requests and ``writes`` logs them in order
(``("apply", "VirtualService/ns/name")``, ``("delete", …)``, ``("patch", …)``), for tests
and benchmarks.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from reconciler.ports import ObjectRejected, TargetError

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
USER_AGENT = "meshdsl/0.1 (meshctl)"
PAGE_SIZE = 500
TOKEN_REFRESH = 10.0  # seconds between credential refreshes
_APPLY_PATCH = "application/apply-patch+yaml"
_METADATA_LIST = ("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, "
                  "application/json")
_RETRY_STATUS = (429, 503, 504)


# --- errors ------------------------------------------------------------------------------


class KubeError(TargetError):
    """Root of the Kubernetes target's errors; ``str()`` is one line for the user."""

    def __init__(
        self, message: str, *, status: int | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


class KubeConfigError(KubeError):
    """No usable kubeconfig/context (or in-cluster configuration)."""


class Unreachable(KubeError):
    """The API server did not answer (connection refused, timeout, TLS failure…)."""


class _Busy(KubeError):
    """429/503/504: worth retrying; surfaces as a plain KubeError when retries run out."""


class Unauthorized(KubeError):
    """401: the credentials were not accepted."""


class Forbidden(KubeError):
    """403: RBAC does not allow this request."""


class NotFound(KubeError):
    """404 on something that must exist: a kind the server does not serve, for example."""


class _Rejected(KubeError, ObjectRejected):
    def __init__(self, headline: str, what: str, detail: str, *, status: int,
                 reason: str | None) -> None:
        super().__init__(f"{headline}: {what}: {detail}", status=status, reason=reason)
        self.headline, self.detail = headline, detail

    def about(self, subject: str) -> str:
        return f"{self.headline}: {subject}: {self.detail}"


class Conflict(_Rejected):
    """409: a field owned by another manager, or a precondition (uid) that no longer holds."""

    conflict = True


class Invalid(_Rejected):
    """422/400: the server's validation (schema, immutable fields…) rejected the object."""


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _status_message(body: bytes) -> tuple[str, str | None]:
    try:
        status = json.loads(body)
    except ValueError:
        return _one_line(body.decode(errors="replace"))[:300] or "no message", None
    if not isinstance(status, dict):
        return str(status)[:300], None
    return _one_line(str(status.get("message") or "no message")), status.get("reason")


def _error_for(status: int, body: bytes, what: str) -> KubeError:
    message, reason = _status_message(body)
    text = f"{what}: {message}" if what else message
    if status == 401:
        return Unauthorized(
            f"401 Unauthorized: the API server rejected the credentials of "
            f"the kubeconfig user ({message})",
            status=status,
            reason=reason,
        )
    if status == 403:
        return Forbidden(f"403 Forbidden: {text}", status=status, reason=reason)
    if status == 404:
        return NotFound(f"404 Not Found: {text}", status=status, reason=reason)
    if status == 409:
        return Conflict("409 Conflict", what, message, status=status, reason=reason)
    if status in (400, 422):
        return Invalid(f"{status} Invalid", what, message, status=status, reason=reason)
    if status in _RETRY_STATUS:
        return _Busy(f"{status} {reason or 'server busy'}: {text}", status=status, reason=reason)
    return KubeError(f"{status} {reason or 'error'}: {text}", status=status, reason=reason)


def _connection_reason(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        reason = getattr(seen, "reason", None)
        if isinstance(reason, BaseException) and reason is not seen:
            seen = reason
            continue
        break
    text = str(seen or exc)
    match = re.search(r"\[Errno -?\d+\] ([^')\"]+)", text)
    if match:
        return match.group(1).strip().lower()
    if isinstance(seen, urllib3.exceptions.ConnectTimeoutError):
        return "connection timed out"
    if isinstance(seen, urllib3.exceptions.ReadTimeoutError):
        return "read timed out"
    return _one_line(text)[:200]


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


class _Throttled:
    """Call a token-refresh hook at most once per ``seconds`` (exec-plugin and file tokens
    live for minutes; re-reading them on every request costs ~1 ms of CPU each)."""

    def __init__(self, hook: Any, seconds: float) -> None:
        self._hook, self._seconds = hook, seconds
        self._lock = threading.Lock()
        self._last = float("-inf")

    def __call__(self, configuration: Any) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last < self._seconds:
                return
            self._last = now
            self._hook(configuration)
            installed = configuration.refresh_api_key_hook
            if installed is not self:  # kubeconfig's hook installs a fresh copy of itself
                self._hook = installed
                configuration.refresh_api_key_hook = self


def _list_items(page: dict[str, Any], api_version: str, kind: str) -> list[dict[str, Any]]:
    items = page.get("items") or []
    for item in items:  # a list's items do not carry apiVersion/kind; give them back
        item["apiVersion"], item["kind"] = api_version, kind
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
    ) -> None:
        self._api = api_client
        self._host = str(api_client.configuration.host)  # a property that reads the env
        hook = getattr(api_client.configuration, "refresh_api_key_hook", None)
        if hook is not None and not isinstance(hook, _Throttled):
            # kubeconfig's hook re-applies the whole configuration on every request
            api_client.configuration.refresh_api_key_hook = _Throttled(hook, TOKEN_REFRESH)
        self.field_manager = field_manager
        self._timeout = timeout
        self._attempts = attempts
        self._lock = threading.Lock()
        self._discovery: dict[str, dict[str, ApiResource]] = {}
        self._discovery_locks: dict[str, threading.Lock] = {}
        self.requests: Counter[str] = Counter()
        self.writes: list[tuple[str, str]] = []
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
        configuration = k8s_client.Configuration()
        # called through Any: the client's functions are unannotated
        load_kube_config: Any = k8s_config.load_kube_config
        load_incluster_config: Any = k8s_config.load_incluster_config
        try:
            try:
                load_kube_config(
                    config_file=kubeconfig,
                    context=context,
                    client_configuration=configuration,
                    persist_config=False,
                )
            except ConfigException:
                if kubeconfig is not None or context is not None:
                    raise
                load_incluster_config(client_configuration=configuration)
        except (ConfigException, OSError, ValueError, TypeError) as exc:
            where = kubeconfig or "the default kubeconfig"
            raise KubeConfigError(
                f"cannot load {where}"
                f"{f' (context {context!r})' if context else ''}: "
                f"{_one_line(str(exc))}"
            ) from exc
        configuration.connection_pool_maxsize = pool_size
        configuration.retries = False  # ours are bounded and explicit (tenacity)
        api_client: Any = k8s_client.ApiClient(configuration=configuration)
        if impersonate:
            api_client.set_default_header("Impersonate-User", impersonate)
        return cls(api_client, **kwargs)

    @property
    def server(self) -> str:
        return self._host

    @property
    def write_calls(self) -> int:
        return self._write_calls

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> KubeTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP --

    def _headers(self, content_type: str | None, accept: str | None = None
                 ) -> dict[str, str]:
        """Default headers (impersonation…), credentials, and ours. Credentials come from
        the client's configuration on every call, so exec plugins and token files refresh."""
        headers = dict(self._api.default_headers)
        auth = self._api.configuration.auth_settings().get("BearerToken")
        if auth and auth.get("value"):
            headers[str(auth["key"])] = str(auth["value"])
        headers["Accept"] = accept or "application/json"
        headers["Accept-Encoding"] = "gzip"  # big lists shrink ~10x; zlib is cheap
        headers["User-Agent"] = USER_AGENT
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _send(self, method: str, path: str, query: list[tuple[str, str]], body: bytes | None,
              content_type: str | None, what: str, accept: str | None = None
              ) -> tuple[int, bytes]:
        """One request on the client's own connection pool (its TLS, client certificates and
        proxy settings), without its model layer: bodies are JSON bytes both ways."""
        url = self.server + path + (f"?{urlencode(query)}" if query else "")
        try:
            response = self._api.rest_client.pool_manager.request(
                method, url, body=body, headers=self._headers(content_type, accept),
                timeout=urllib3.Timeout(connect=self._timeout[0], read=self._timeout[1]),
                retries=False, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            raise Unreachable(f"cannot reach the Kubernetes API server at {self.server}: "
                              f"{_connection_reason(exc)}") from exc
        status, data = int(response.status), bytes(response.data or b"")
        if status >= 400:
            raise _error_for(status, data, what)
        return status, data

    def _request(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
                 body: bytes | None = None, content_type: str | None = None,
                 what: str = "", accept: str | None = None) -> Any:
        with self._lock:
            self.requests[method] += 1
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            retry=retry_if_exception_type((Unreachable, _Busy)),
            reraise=True,
        )
        try:
            _, data = retrying(self._send, method, path, query or [], body, content_type, what,
                               accept)
        except _Busy as exc:
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
    def _crd_hint(api_version: str) -> str:
        return "; are Istio's CRDs installed?" if "istio.io" in api_version else ""

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

    def namespaced(self, api_version: str, kind: str) -> bool:
        return self.resource(api_version, kind).namespaced

    # -- the Target port --

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        res = self.resource(api_version, kind)
        what = f"{kind}/{namespace + '/' if namespace else ''}{name}"
        try:
            obj = self._request("GET", res.path(namespace, name), what=what)
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

    def remove_fields(self, api_version: str, kind: str, namespace: str, name: str,
                      fields: list[tuple[tuple[str, ...], Any]], *, dry_run: bool = False
                      ) -> dict[str, Any]:
        """A JSON patch: ``test`` that each field still has the value we saw, then
        ``remove`` it — all or nothing, attributed to our field manager (an Update)."""
        res = self.resource(api_version, kind)
        what = f"{kind}/{namespace + '/' if namespace else ''}{name}"
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
        result = self._request("PATCH", res.path(namespace, name), query=query,
                               body=json.dumps(ops).encode(),
                               content_type="application/json-patch+json", what=what)
        return dict(result) if isinstance(result, dict) else {}

    def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        dry_run: bool = False,
    ) -> None:
        res = self.resource(api_version, kind)
        what = f"{kind}/{namespace + '/' if namespace else ''}{name}"
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
                res.path(namespace, name),
                query=query,
                body=json.dumps(options).encode(),
                content_type="application/json",
                what=what,
            )
        except NotFound:
            return

    def list(self, api_version: str, kind: str, namespace: str | None = None, *,
             metadata_only: bool = False, cached: bool = False) -> list[dict[str, Any]]:
        """Every object of a kind (in a namespace).

        By default a consistent read from etcd, in pages of :data:`PAGE_SIZE`. ``cached``
        lets the API server answer from its watch cache (``resourceVersion=0``: one
        response, several times cheaper, possibly a moment behind). ``metadata_only`` asks
        for ``PartialObjectMetadata`` — no spec, less to encode and to decode.
        """
        res = self.resource(api_version, kind)
        what = f"list {res.plural}{f' in {namespace}' if namespace else ''}"
        accept = _METADATA_LIST if metadata_only else None
        if cached:
            page = self._request("GET", res.path(namespace), query=[("resourceVersion", "0")],
                                 what=what, accept=accept) or {}
            return _list_items(page, api_version, kind)
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = [("limit", str(PAGE_SIZE))] + ([("continue", token)] if token else [])
            page = self._request("GET", res.path(namespace), query=query, what=what,
                                 accept=accept) or {}
            items += _list_items(page, api_version, kind)
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return items

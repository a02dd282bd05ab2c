"""HTTP to a Kubernetes API server, and the errors of the Kubernetes target.

The official client supplies what is hard to get right — kubeconfig parsing, contexts,
tokens, exec plugins, client certificates — through its ``Configuration``. The requests
themselves are sent here, without the client's model layer: a reconcile of 5,000 objects
makes 10,000 requests, and the client's own path costs about 2 ms of CPU each. So requests
go over keep-alive ``http.client`` connections (about 1 ms), built from the same
``Configuration``; configurations this path does not handle (an HTTP proxy, a TLS server
name override) go through the client's urllib3 pool instead.

The connections are a bounded pool shared by all threads (:class:`_Pool`), not one per
thread: a request borrows an idle connection (or opens one) and gives it back; at most
``pool_size`` idle connections are kept and the rest are closed. A reconciler that runs for
months on short-lived worker threads thus holds at most ``pool_size`` + (requests in
flight) sockets, never one per thread that ever ran.

Failures become one :class:`KubeError` subclass each, with a one-line message:
:class:`Unreachable`, :class:`Unauthorized`, :class:`Forbidden`, :class:`NotFound`,
:class:`Conflict` (409) and :class:`Invalid` (422/400).
"""

from __future__ import annotations

import gzip
import http.client
import json
import re
import ssl
import threading
import time
from collections import deque
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3

from reconciler.ports import ObjectRejected, TargetError

__all__ = [
    "Conflict",
    "Forbidden",
    "Invalid",
    "KubeConfigError",
    "KubeError",
    "NotFound",
    "Transport",
    "Unauthorized",
    "Unreachable",
]

USER_AGENT = "meshdsl/0.1 (meshctl)"
TOKEN_REFRESH = 10.0  # seconds between credential refreshes
RETRY_STATUS = (429, 503, 504)


# --- errors ----------------------------------------------------------------------------------


class KubeError(TargetError):
    """Root of the Kubernetes target's errors; ``str()`` is one line for the user."""

    def __init__(self, message: str, *, status: int | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


class KubeConfigError(KubeError):
    """No usable kubeconfig/context (or in-cluster configuration)."""


class Unreachable(KubeError):
    """The API server did not answer (connection refused, timeout, TLS failure…)."""

    transient = True


class Busy(KubeError):
    """429/503/504: worth retrying; surfaces as a plain KubeError when retries run out."""

    transient = True


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


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _status_message(body: bytes) -> tuple[str, str | None]:
    try:
        status = json.loads(body)
    except ValueError:
        return one_line(body.decode(errors="replace"))[:300] or "no message", None
    if not isinstance(status, dict):
        return str(status)[:300], None
    return one_line(str(status.get("message") or "no message")), status.get("reason")


def error_for(status: int, body: bytes, what: str) -> KubeError:
    """The error for an HTTP status and the API server's ``Status`` body."""
    message, reason = _status_message(body)
    text = f"{what}: {message}" if what else message
    if status == 401:
        return Unauthorized("401 Unauthorized: the API server rejected the credentials of "
                            f"the kubeconfig user ({message})", status=status, reason=reason)
    if status == 403:
        return Forbidden(f"403 Forbidden: {text}", status=status, reason=reason)
    if status == 404:
        return NotFound(f"404 Not Found: {text}", status=status, reason=reason)
    if status == 409:
        return Conflict("409 Conflict", what, message, status=status, reason=reason)
    if status in (400, 422):
        return Invalid(f"{status} Invalid", what, message, status=status, reason=reason)
    if status in RETRY_STATUS:
        return Busy(f"{status} {reason or 'server busy'}: {text}", status=status,
                    reason=reason)
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
    if isinstance(seen, urllib3.exceptions.ConnectTimeoutError | TimeoutError):
        return "connection timed out"
    if isinstance(seen, urllib3.exceptions.ReadTimeoutError):
        return "read timed out"
    return one_line(text)[:200] or type(seen or exc).__name__


# --- credentials -----------------------------------------------------------------------------


class _Throttled:
    """Call a token-refresh hook at most once per ``seconds``: kubeconfig's hook re-applies
    the whole configuration on every call (~1 ms of CPU per request otherwise), while
    exec-plugin and file tokens live for minutes."""

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


# --- the transport ---------------------------------------------------------------------------


class _Pool:
    """Idle keep-alive connections, newest first; at most ``size`` kept."""

    def __init__(self, size: int) -> None:
        self._size = max(1, size)
        self._idle: deque[http.client.HTTPConnection] = deque()
        self._lock = threading.Lock()
        self.opened = 0   # connections made since start (for tests and benchmarks)
        self.closed = False

    def take(self) -> http.client.HTTPConnection | None:
        """An idle connection, or ``None`` (the caller opens one; counted)."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.opened += 1
            return None

    def give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self.closed and len(self._idle) < self._size and conn.sock is not None:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            idle, self._idle = list(self._idle), deque()
        for conn in idle:
            conn.close()

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)


class Transport:
    """Requests to the API server of an official-client ``ApiClient``; thread-safe."""

    def __init__(self, api_client: Any, *, timeout: tuple[float, float],
                 pool_size: int = 16) -> None:
        self._api = api_client
        config = api_client.configuration
        self._config = config
        self.server = str(config.host).rstrip("/")  # a property that reads the environment
        hook = getattr(config, "refresh_api_key_hook", None)
        if hook is not None and not isinstance(hook, _Throttled):
            config.refresh_api_key_hook = _Throttled(hook, TOKEN_REFRESH)
        self._timeout = timeout
        url = urlsplit(self.server)
        self._scheme, self._prefix = url.scheme, url.path.rstrip("/")
        self._host, self._port = url.hostname or "", url.port
        self._direct = (url.scheme in ("http", "https") and not getattr(config, "proxy", None)
                        and not getattr(config, "tls_server_name", None))
        self._pool = _Pool(pool_size)
        self._lock = threading.Lock()
        self._tls: tuple[tuple[Any, ...], ssl.SSLContext] | None = None

    @property
    def idle_connections(self) -> int:
        """Keep-alive connections kept for reuse now (bounded by the pool size)."""
        return self._pool.idle

    @property
    def connections_opened(self) -> int:
        return self._pool.opened

    def close(self) -> None:
        self._pool.close()
        self._api.close()

    def headers(self, content_type: str | None, accept: str | None) -> dict[str, str]:
        """Default headers (impersonation…), credentials (refreshed), and ours."""
        headers = dict(self._api.default_headers)
        auth = self._config.auth_settings().get("BearerToken")
        if auth and auth.get("value"):
            headers[str(auth["key"])] = str(auth["value"])
        headers["Accept"] = accept or "application/json"
        headers["Accept-Encoding"] = "gzip"  # big lists shrink ~10x; zlib is cheap
        headers["User-Agent"] = USER_AGENT
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def send(self, method: str, path: str, query: list[tuple[str, str]], body: bytes | None,
             *, content_type: str | None = None, accept: str | None = None
             ) -> tuple[int, bytes]:
        """One request; returns (status, body). Raises :class:`Unreachable` when the server
        does not answer — never for an HTTP error status."""
        target = path + (f"?{urlencode(query)}" if query else "")
        headers = self.headers(content_type, accept)
        if not self._direct:
            return self._via_pool(method, target, body, headers)
        for attempt in (1, 2):
            conn = self._connection()
            reused = conn.sock is not None
            try:
                if conn.sock is None:
                    conn.connect()
                    if conn.sock is not None:
                        conn.sock.settimeout(self._timeout[1])
                conn.request(method, self._prefix + target, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as exc:
                conn.close()
                if reused and attempt == 1:
                    continue  # the server closed an idle keep-alive connection
                raise self._unreachable(exc) from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise self._unreachable(exc) from exc
            except BaseException:
                conn.close()
                raise
            if response.will_close:
                conn.close()
            else:
                self._pool.give_back(conn)
            if response.getheader("Content-Encoding") == "gzip":
                data = gzip.decompress(data)
            return int(response.status), data
        raise AssertionError("unreachable")  # pragma: no cover

    def _unreachable(self, exc: BaseException) -> Unreachable:
        return Unreachable(f"cannot reach the Kubernetes API server at {self.server}: "
                           f"{_connection_reason(exc)}")

    def _context(self) -> ssl.SSLContext:
        """TLS as the configuration says; rebuilt when an exec plugin renews certificates."""
        c = self._config
        key = (c.ssl_ca_cert, getattr(c, "ca_cert_data", None), c.cert_file, c.key_file,
               c.verify_ssl, c.assert_hostname)
        with self._lock:
            if self._tls is not None and self._tls[0] == key:
                return self._tls[1]
            context = ssl.create_default_context(cafile=c.ssl_ca_cert or None)
            if key[1]:
                data = key[1]
                context.load_verify_locations(
                    cadata=data.decode() if isinstance(data, bytes) else data)
            if c.cert_file:
                context.load_cert_chain(c.cert_file, c.key_file or None)
            if not c.verify_ssl:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif c.assert_hostname is False:
                context.check_hostname = False
            self._tls = (key, context)
            return context

    def _connection(self) -> http.client.HTTPConnection:
        """An idle keep-alive connection from the pool, else a new (unconnected) one."""
        conn = self._pool.take()
        if conn is not None:
            return conn
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port,
                                               timeout=self._timeout[0],
                                               context=self._context())
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout[0])

    def _via_pool(self, method: str, target: str, body: bytes | None,
                  headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            response = self._api.rest_client.pool_manager.request(
                method, self.server + target, body=body, headers=headers,
                timeout=urllib3.Timeout(connect=self._timeout[0], read=self._timeout[1]),
                retries=False, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            raise self._unreachable(exc) from exc
        return int(response.status), bytes(response.data or b"")

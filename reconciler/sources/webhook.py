"""The push receiver: who may say "there is a new commit", and the HTTP server around it.

Three ways to prove a request comes from the Git server, each checked in constant time:

- **GitHub**: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``;
- **GitLab**: ``X-Gitlab-Token: <secret>`` (GitLab sends the secret itself);
- **generic** (``scripts/post-receive`` and anything else): ``X-Meshdsl-Signature:
  t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`` — the timestamp is signed
  too, so a captured request cannot be replayed after ``tolerance`` seconds.

The verification functions are pure (bytes in, a :class:`DeliveryCheck` out) and
table-tested; the server only moves bytes. A request with a missing or wrong signature
gets 401 and triggers nothing; bodies are bounded (413) and must declare their length
(411; a malformed one is 400). A delivery is accepted once (:mod:`.replay`), and a
GitHub/GitLab signature only over a body that is not a generic-signed string, so a
generic delivery re-signed as GitHub's is refused. Connections are capped and each has an
overall deadline (slow headers). The server answers ``GET /healthz`` (liveness),
``GET /readyz`` (readiness: the leader, loop running) and ``GET /metrics`` (Prometheus
text format), so one port serves a Deployment's probes, its Service and Prometheus.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reconciler.sources.replay import ReplayCache, delivery_key

__all__ = [
    "GENERIC_HEADER",
    "MAX_BODY",
    "DeliveryCheck",
    "Provider",
    "PushEvent",
    "WebhookServer",
    "parse_push",
    "sign_generic",
    "sign_github",
    "verify_request",
]

GITHUB_HEADER = "X-Hub-Signature-256"
GITLAB_HEADER = "X-Gitlab-Token"
GENERIC_HEADER = "X-Meshdsl-Signature"
MAX_BODY = 1 << 20
TOLERANCE = 300.0
MAX_CONNECTIONS = 32
REQUEST_DEADLINE = 15.0
_LENGTH = re.compile(r"[0-9]{1,12}")
_GENERIC_SIGNED = re.compile(rb"[0-9]+\.")


class Provider(StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"
    GENERIC = "generic"
    NONE = "none"          # no secret configured (explicitly insecure)


@dataclass(frozen=True)
class DeliveryCheck:
    """Whether a push request proved it comes from the Git server, by which provider's
    signature, and why not (``reason``)."""

    ok: bool
    provider: Provider
    reason: str = ""


def _hmac(secret: bytes, data: bytes) -> str:
    return hmac.new(secret, data, hashlib.sha256).hexdigest()


def sign_github(secret: bytes, body: bytes) -> str:
    return f"sha256={_hmac(secret, body)}"


def sign_generic(secret: bytes, body: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={_hmac(secret, str(timestamp).encode() + b'.' + body)}"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _generic_signed(body: bytes) -> bool:
    """Whether ``body`` is shaped like what a generic signature covers (``"<t>." + body``).
    A generic signature *is* a valid GitHub-style HMAC over that string, so a captured
    generic delivery could be replayed as a GitHub one forever; refusing such bodies binds
    each signature to the format it was made for."""
    return _GENERIC_SIGNED.match(body) is not None


def _verify_github(secret: bytes, body: bytes, header: str) -> DeliveryCheck:
    scheme, _, given = header.strip().partition("=")
    if scheme != "sha256" or not given:
        return DeliveryCheck(False, Provider.GITHUB, f"malformed {GITHUB_HEADER}")
    ok = hmac.compare_digest(given.lower().encode(), _hmac(secret, body).encode())
    if ok and _generic_signed(body):
        return DeliveryCheck(False, Provider.GITHUB, "the body is a generic-format signed "
                             "string, not a GitHub payload")
    return DeliveryCheck(ok, Provider.GITHUB, "" if ok else "signature does not match")


def _verify_gitlab(secret: bytes, header: str) -> DeliveryCheck:
    ok = hmac.compare_digest(header.encode(), secret)
    return DeliveryCheck(ok, Provider.GITLAB, "" if ok else "token does not match")


def _verify_generic(secret: bytes, body: bytes, header: str, *, now: float,
                    tolerance: float) -> DeliveryCheck:
    fields: dict[str, str] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, value)
    stamp, given = fields.get("t", ""), fields.get("v1", "")
    if not stamp.isdigit() or not given:
        return DeliveryCheck(False, Provider.GENERIC, f"malformed {GENERIC_HEADER}")
    expected = _hmac(secret, stamp.encode() + b"." + body)
    if not hmac.compare_digest(given.lower().encode(), expected.encode()):
        return DeliveryCheck(False, Provider.GENERIC, "signature does not match")
    if abs(now - int(stamp)) > tolerance:
        return DeliveryCheck(False, Provider.GENERIC,
                             f"timestamp is more than {tolerance:.0f} s away (replayed?)")
    return DeliveryCheck(True, Provider.GENERIC)


def signature_of(headers: Mapping[str, str], provider: Provider) -> str:
    """The header value that authenticated a request of ``provider``."""
    name = {Provider.GITHUB: GITHUB_HEADER, Provider.GITLAB: GITLAB_HEADER,
            Provider.GENERIC: GENERIC_HEADER}.get(provider)
    return (_header(headers, name) or "") if name else ""


def verify_request(headers: Mapping[str, str], body: bytes, secret: bytes | None, *,
                   now: float, tolerance: float = TOLERANCE) -> DeliveryCheck:
    """Check a push request. ``secret=None`` means verification was explicitly disabled.

    The provider is recognised by its header; with several present, the strongest
    (generic, then GitHub, then GitLab) decides.
    """
    if secret is None:
        return DeliveryCheck(True, Provider.NONE)
    if not secret:
        return DeliveryCheck(False, Provider.NONE, "the configured secret is empty")
    generic = _header(headers, GENERIC_HEADER)
    if generic is not None:
        return _verify_generic(secret, body, generic, now=now, tolerance=tolerance)
    github = _header(headers, GITHUB_HEADER)
    if github is not None:
        return _verify_github(secret, body, github)
    gitlab = _header(headers, GITLAB_HEADER)
    if gitlab is not None:
        return _verify_gitlab(secret, gitlab)
    return DeliveryCheck(False, Provider.NONE, f"no signature ({GENERIC_HEADER}, "
                         f"{GITHUB_HEADER} or {GITLAB_HEADER})")


@dataclass(frozen=True)
class PushEvent:
    """What a push request says happened. ``ref`` is empty when the payload names none
    (a bare "something changed" ping), and then every tracked ref is looked at."""

    ref: str = ""
    after: str = ""
    repository: str = ""
    event: str = "push"


def parse_push(headers: Mapping[str, str], body: bytes) -> PushEvent:
    """Read the ref and new commit from a GitHub, GitLab or generic push payload.

    GitHub's ``ping`` (sent when a hook is created) parses as event ``ping``. A body that is
    not JSON is a push of unknown ref.
    """
    event = (_header(headers, "X-GitHub-Event") or _header(headers, "X-Gitlab-Event")
             or _header(headers, "X-Meshdsl-Event") or "push").strip().lower()
    if event in ("push hook", "tag push hook"):
        event = "push"
    try:
        payload: Any = json.loads(body) if body.strip() else {}
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    repo = payload.get("repository") or payload.get("project") or {}
    name = ""
    if isinstance(repo, dict):
        name = str(repo.get("full_name") or repo.get("path_with_namespace")
                   or repo.get("name") or "")
    return PushEvent(ref=str(payload.get("ref") or ""),
                     after=str(payload.get("after") or payload.get("checkout_sha") or ""),
                     repository=name, event=event)


# --- the server ----------------------------------------------------------------------------


Health = Callable[[], tuple[bool, str]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the reconciler logs what matters as JSON."""

    def _send(self, status: int, body: bytes | str | dict[str, Any],
              content_type: str = "application/json") -> None:
        if isinstance(body, dict):
            raw = (json.dumps(body, sort_keys=True) + "\n").encode()
        else:
            raw = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    def do_GET(self) -> None:
        hooks = self.server.hooks
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            ok, why = hooks.health()
            self._send(200 if ok else 503, (why or "ok") + "\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            ok, why = hooks.ready()
            self._send(200 if ok else 503, (why or "ok") + "\n", "text/plain; charset=utf-8")
        elif path == "/metrics" and hooks.metrics is not None:
            data, content_type = hooks.metrics()
            self._send(200, data, content_type)
        else:
            self._send(404, {"error": f"no such endpoint: GET {path}"})

    do_HEAD = do_GET

    def do_POST(self) -> None:
        hooks = self.server.hooks
        path = self.path.split("?", 1)[0]
        if path != hooks.path:
            self.close_connection = True
            self._send(404, {"error": f"no such endpoint: POST {path} (pushes go to "
                                      f"{hooks.path})"})
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.close_connection = True
            self._send(411, {"error": "Content-Length required"})
            return
        if not _LENGTH.fullmatch(length_header.strip()):
            self.close_connection = True
            self._send(400, {"error": "malformed Content-Length"})
            return
        length = int(length_header)
        if length > hooks.max_body:
            self.close_connection = True
            self._send(413, {"error": f"body larger than {hooks.max_body} bytes"})
            return
        body = self.rfile.read(length)
        headers = {k: v for k, v in self.headers.items()}
        check = verify_request(headers, body, hooks.secret, now=time.time())
        if check.ok and check.provider is not Provider.NONE:
            key = delivery_key(check.provider.value,
                               signature_of(headers, check.provider), body)
            with hooks.replay_lock:
                fresh = hooks.replays.first_time(key, time.monotonic())
            if not fresh:
                check = DeliveryCheck(False, check.provider, "replayed delivery")
        if not check.ok:
            hooks.on_rejected(check)
            self._send(401, {"error": f"unauthorized: {check.reason}"})
            return
        event = parse_push(headers, body)
        if event.event == "ping":
            self._send(200, {"pong": True})
            return
        accepted, why = hooks.on_push(event)
        self._send(202 if accepted else 200, {"triggered": accepted, "detail": why})


class _Server(ThreadingHTTPServer):
    """At most ``max_connections`` at a time (more are closed at once), and each one cut
    after ``deadline`` seconds however slowly its client sends headers or body."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], hooks: WebhookServer) -> None:
        self.hooks = hooks
        self._slots = threading.BoundedSemaphore(hooks.max_connections)
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line, never a traceback (a client that hung up is the usual cause)."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            print(f"webhook: request from {client_address[0]} failed: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        timer = threading.Timer(self.hooks.deadline, _cut, (request,))
        timer.daemon = True
        timer.start()
        try:
            super().process_request_thread(request, client_address)
        finally:
            timer.cancel()
            self._slots.release()


def _cut(request: socket.socket) -> None:
    """The deadline passed: end the connection (a blocked read returns at once)."""
    with contextlib.suppress(OSError):
        request.shutdown(socket.SHUT_RDWR)


class WebhookServer:
    """Serve the push endpoint and the probes on ``host:port`` (``port=0``: any free one).

    ``on_push(event)`` returns (triggered?, detail); ``secret=None`` disables verification
    (only on explicit request). ``health``/``ready`` return (ok, reason); ``metrics`` returns
    the exposition bytes and their content type.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, secret: bytes | None,
                 on_push: Callable[[PushEvent], tuple[bool, str]],
                 on_rejected: Callable[[DeliveryCheck], None] = lambda _: None,
                 health: Health = lambda: (True, ""), ready: Health | None = None,
                 metrics: Callable[[], tuple[bytes, str]] | None = None,
                 path: str = "/webhook", max_body: int = MAX_BODY,
                 max_connections: int = MAX_CONNECTIONS,
                 deadline: float = REQUEST_DEADLINE) -> None:
        self.host, self.port = host, port
        self.secret, self.on_push, self.on_rejected = secret, on_push, on_rejected
        self.health, self.ready = health, ready or health
        self.metrics, self.path, self.max_body = metrics, path, max_body
        self.max_connections, self.deadline = max_connections, deadline
        self.replays, self.replay_lock = ReplayCache(), threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> WebhookServer:
        self._server = _Server((self.host, self.port), self)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name="meshdsl-webhook", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

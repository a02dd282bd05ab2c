"""Push signatures (table-driven) and the receiver's HTTP behaviour on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from reconciler.sources.webhook import (
    GENERIC_HEADER,
    Provider,
    PushEvent,
    WebhookServer,
    parse_push,
    sign_generic,
    sign_github,
    verify_request,
)

SECRET = b"It's a Secret to Everybody"
BODY = b"Hello, World!"
NOW = 1_700_000_000


def test_github_signature_matches_githubs_documented_example() -> None:
    # docs.github.com "Validating webhook deliveries": this secret and payload give this.
    assert sign_github(SECRET, BODY) == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")


GOOD_GENERIC = sign_generic(SECRET, BODY, NOW)

CASES = [
    # (name, headers, body, secret, ok, provider)
    ("github ok", {"X-Hub-Signature-256": sign_github(SECRET, BODY)}, BODY, SECRET, True,
     Provider.GITHUB),
    ("github header case", {"x-hub-signature-256": sign_github(SECRET, BODY)}, BODY, SECRET,
     True, Provider.GITHUB),
    ("github uppercase hex", {"X-Hub-Signature-256": sign_github(SECRET, BODY).upper()
                              .replace("SHA256", "sha256")}, BODY, SECRET, True,
     Provider.GITHUB),
    ("github wrong secret", {"X-Hub-Signature-256": sign_github(b"other", BODY)}, BODY, SECRET,
     False, Provider.GITHUB),
    ("github body changed", {"X-Hub-Signature-256": sign_github(SECRET, BODY)}, BODY + b" ",
     SECRET, False, Provider.GITHUB),
    ("github sha1 form", {"X-Hub-Signature-256": "sha1=" + hmac.new(
        SECRET, BODY, hashlib.sha1).hexdigest()}, BODY, SECRET, False, Provider.GITHUB),
    ("github empty", {"X-Hub-Signature-256": ""}, BODY, SECRET, False, Provider.GITHUB),
    ("gitlab ok", {"X-Gitlab-Token": SECRET.decode()}, BODY, SECRET, True, Provider.GITLAB),
    ("gitlab wrong", {"X-Gitlab-Token": "guess"}, BODY, SECRET, False, Provider.GITLAB),
    ("gitlab prefix", {"X-Gitlab-Token": SECRET.decode()[:-1]}, BODY, SECRET, False,
     Provider.GITLAB),
    ("generic ok", {GENERIC_HEADER: GOOD_GENERIC}, BODY, SECRET, True, Provider.GENERIC),
    ("generic fields reordered", {GENERIC_HEADER: ",".join(reversed(GOOD_GENERIC.split(",")))},
     BODY, SECRET, True, Provider.GENERIC),
    ("generic timestamp swapped", {GENERIC_HEADER: GOOD_GENERIC.replace(
        f"t={NOW}", f"t={NOW + 1}")}, BODY, SECRET, False, Provider.GENERIC),
    ("generic replayed later", {GENERIC_HEADER: sign_generic(SECRET, BODY, NOW - 3600)}, BODY,
     SECRET, False, Provider.GENERIC),
    ("generic from the future", {GENERIC_HEADER: sign_generic(SECRET, BODY, NOW + 3600)}, BODY,
     SECRET, False, Provider.GENERIC),
    ("generic within tolerance", {GENERIC_HEADER: sign_generic(SECRET, BODY, NOW - 200)}, BODY,
     SECRET, True, Provider.GENERIC),
    ("generic malformed", {GENERIC_HEADER: "v1=abc"}, BODY, SECRET, False, Provider.GENERIC),
    ("generic beats a good github", {GENERIC_HEADER: "t=1,v1=00",
                                     "X-Hub-Signature-256": sign_github(SECRET, BODY)},
     BODY, SECRET, False, Provider.GENERIC),
    ("no signature at all", {}, BODY, SECRET, False, Provider.NONE),
    ("empty secret refuses", {"X-Gitlab-Token": ""}, BODY, b"", False, Provider.NONE),
    ("verification disabled", {}, BODY, None, True, Provider.NONE),
]


@pytest.mark.parametrize(("headers", "body", "secret", "ok", "provider"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_verify_request(headers: dict[str, str], body: bytes, secret: bytes | None, ok: bool,
                        provider: Provider) -> None:
    check = verify_request(headers, body, secret, now=NOW)
    assert check.ok is ok
    assert check.provider is provider
    assert bool(check.reason) is (not ok)


@pytest.mark.parametrize(("headers", "payload", "expected"), [
    ({"X-GitHub-Event": "push"}, {"ref": "refs/heads/main", "after": "a" * 40,
                                  "repository": {"full_name": "acme/mesh"}},
     PushEvent("refs/heads/main", "a" * 40, "acme/mesh", "push")),
    ({"X-GitHub-Event": "ping"}, {"zen": "Design for failure."},
     PushEvent("", "", "", "ping")),
    ({"X-Gitlab-Event": "Push Hook"}, {"ref": "refs/heads/main", "checkout_sha": "b" * 40,
                                       "project": {"path_with_namespace": "acme/mesh"}},
     PushEvent("refs/heads/main", "b" * 40, "acme/mesh", "push")),
    ({}, {"ref": "refs/tags/v1", "after": "c" * 40, "repository": {"name": "mesh"}},
     PushEvent("refs/tags/v1", "c" * 40, "mesh", "push")),
])
def test_parse_push(headers: dict[str, str], payload: dict[str, object],
                    expected: PushEvent) -> None:
    assert parse_push(headers, json.dumps(payload).encode()) == expected


def test_parse_push_tolerates_garbage() -> None:
    assert parse_push({}, b"\xff not json") == PushEvent()
    assert parse_push({}, b"[1, 2]") == PushEvent()


# --- the server ------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.pushes: list[PushEvent] = []
        self.rejected = 0
        self.lock = threading.Lock()

    def on_push(self, event: PushEvent) -> tuple[bool, str]:
        with self.lock:
            self.pushes.append(event)
        return event.ref in ("", "refs/heads/main"), "ok"

    def on_rejected(self, _: object) -> None:
        self.rejected += 1


@pytest.fixture
def server() -> Iterator[tuple[WebhookServer, Recorder]]:
    recorder = Recorder()
    srv = WebhookServer(secret=SECRET, on_push=recorder.on_push,
                        on_rejected=recorder.on_rejected, max_body=1000,
                        metrics=lambda: (b"meshdsl_up 1\n", "text/plain; version=0.0.4"),
                        ready=lambda: (False, "standby"))
    srv.start()
    yield srv, recorder
    srv.stop()


def _post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=5) as client:
        return client.post(url, content=body, headers=headers)


def test_signed_push_is_accepted(server: tuple[WebhookServer, Recorder]) -> None:
    srv, rec = server
    body = json.dumps({"ref": "refs/heads/main", "after": "d" * 40}).encode()
    response = _post(f"{srv.url}/webhook", body,
                     {GENERIC_HEADER: sign_generic(SECRET, body, int(time.time()))})
    assert response.status_code == 202
    assert response.json()["triggered"] is True
    assert rec.pushes == [PushEvent("refs/heads/main", "d" * 40, "", "push")]


def test_push_to_another_branch_is_acknowledged_not_triggered(
        server: tuple[WebhookServer, Recorder]) -> None:
    srv, _ = server
    body = json.dumps({"ref": "refs/heads/feature"}).encode()
    response = _post(f"{srv.url}/webhook", body,
                     {"X-Hub-Signature-256": sign_github(SECRET, body)})
    assert response.status_code == 200
    assert response.json()["triggered"] is False


def test_forged_signature_gets_401_and_triggers_nothing(
        server: tuple[WebhookServer, Recorder]) -> None:
    srv, rec = server
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    for headers in ({"X-Hub-Signature-256": sign_github(b"guessed", body)},
                    {"X-Gitlab-Token": "guessed"}, {}):
        response = _post(f"{srv.url}/webhook", body, headers)
        assert response.status_code == 401, headers
    assert rec.pushes == []
    assert rec.rejected == 3


def test_body_limits(server: tuple[WebhookServer, Recorder]) -> None:
    srv, rec = server
    big = b"x" * 1001
    response = _post(f"{srv.url}/webhook", big, {"X-Hub-Signature-256": sign_github(SECRET, big)})
    assert response.status_code == 413
    # no Content-Length at all (raw socket: clients always add one)
    with socket.create_connection((srv.host, srv.port), timeout=5) as sock:
        sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 411")
    assert rec.pushes == []


def test_probes_metrics_and_unknown_paths(server: tuple[WebhookServer, Recorder]) -> None:
    srv, _ = server
    with httpx.Client(trust_env=False, timeout=5) as client:
        assert client.get(f"{srv.url}/healthz").status_code == 200
        ready = client.get(f"{srv.url}/readyz")
        assert (ready.status_code, ready.text.strip()) == (503, "standby")
        metrics = client.get(f"{srv.url}/metrics")
        assert metrics.status_code == 200 and b"meshdsl_up 1" in metrics.content
        assert client.get(f"{srv.url}/nope").status_code == 404
        assert client.post(f"{srv.url}/other", content=b"{}").status_code == 404


def test_github_ping_is_answered(server: tuple[WebhookServer, Recorder]) -> None:
    srv, rec = server
    body = b'{"zen": "Keep it logically awesome."}'
    response = _post(f"{srv.url}/webhook", body, {"X-GitHub-Event": "ping",
                                                  "X-Hub-Signature-256": sign_github(SECRET,
                                                                                     body)})
    assert response.status_code == 200 and response.json() == {"pong": True}
    assert rec.pushes == []


# --- hostile deliveries ----------------------------------------------------------------------


def test_a_delivery_is_accepted_once(server: tuple[WebhookServer, Recorder]) -> None:
    srv, rec = server
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    for headers in ({GENERIC_HEADER: sign_generic(SECRET, body, int(time.time()))},
                    {"X-Hub-Signature-256": sign_github(SECRET, body)},
                    {"X-Gitlab-Token": SECRET.decode()}):
        assert _post(f"{srv.url}/webhook", body, headers).status_code == 202
        again = _post(f"{srv.url}/webhook", body, {**headers, "X-GitHub-Delivery": "new-id"})
        assert again.status_code == 401 and "replayed" in again.json()["error"]
    assert len(rec.pushes) == 3


def test_a_generic_delivery_re_signed_as_github_is_refused(
        server: tuple[WebhookServer, Recorder]) -> None:
    srv, rec = server
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    stamp = int(time.time()) - 10_000            # long expired as a generic delivery
    generic = sign_generic(SECRET, body, stamp)
    v1 = generic.split("v1=")[1]
    forged_body = str(stamp).encode() + b"." + body
    assert sign_github(SECRET, forged_body) == f"sha256={v1}"   # the same HMAC
    response = _post(f"{srv.url}/webhook", forged_body, {"X-Hub-Signature-256": f"sha256={v1}"})
    assert response.status_code == 401 and "generic-format" in response.json()["error"]
    assert rec.pushes == []


@pytest.mark.parametrize("length", [b"\xb2", b"-1", b"1e3", b"\xd9\xa3", b"99999999999999"])
def test_a_malformed_content_length_is_a_400(server: tuple[WebhookServer, Recorder],
                                             length: bytes) -> None:
    srv, rec = server
    with socket.create_connection((srv.host, srv.port), timeout=5) as sock:
        sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: " + length
                     + b"\r\n\r\n{}")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    assert rec.pushes == []


def test_slow_headers_are_cut_at_the_deadline_and_connections_are_capped() -> None:
    recorder = Recorder()
    srv = WebhookServer(secret=SECRET, on_push=recorder.on_push, max_connections=3,
                        deadline=1.0).start()
    try:
        slow = [socket.create_connection((srv.host, srv.port), timeout=5) for _ in range(3)]
        for sock in slow:
            sock.sendall(b"POST /webhook HTTP/1.1\r\n")
        time.sleep(0.3)
        with socket.create_connection((srv.host, srv.port), timeout=5) as extra:
            assert extra.recv(100) == b""                     # over the cap: closed at once
        started = time.monotonic()
        for sock in slow:
            while sock.recv(100):                              # dribbling never finishes
                pass
            sock.close()
        assert time.monotonic() - started < 3.0
        with httpx.Client(trust_env=False, timeout=5) as client:   # slots are free again
            assert client.get(f"{srv.url}/healthz").status_code == 200
    finally:
        srv.stop()

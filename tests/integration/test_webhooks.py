"""Rollout webhooks against a real HTTP server on 127.0.0.1: payload, retries, timeouts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from reconciler.delivery.actions import WebhookCall
from reconciler.ports import WebhookCaller
from reconciler.targets.webhooks import HttpWebhookCaller

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class Hooks:
    """A webhook receiver: ``script[path]`` lists the statuses of successive calls (the
    last repeats); ``/slow`` sleeps before answering."""

    def __init__(self) -> None:
        self.script: dict[str, list[int]] = {}
        self.received: list[tuple[str, dict[str, Any]]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                hooks.received.append((self.path, body))
                if self.path == "/slow":
                    time.sleep(1.0)
                if self.path.startswith("/trickle"):
                    self._trickle(headers=self.path == "/trickle-headers")
                    return
                statuses = hooks.script.get(self.path, [200])
                status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def _trickle(self, *, headers: bool) -> None:
                """A byte every 0.1 s for 5 s: no single read ever waits long."""
                head = b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\nx-pad: "
                if not headers:
                    self.wfile.write(head + b"x\r\n\r\n")
                    head = b""
                try:
                    for i in range(50):
                        self.wfile.write(head[i:i + 1] if i < len(head) else b"x")
                        self.wfile.flush()
                        time.sleep(0.1)
                except OSError:
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def calls(self, path: str) -> int:
        return sum(1 for p, _ in self.received if p == path)


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    receiver = Hooks()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def call(url: str, *, retries: int = 2, timeout: float = 2.0) -> WebhookCall:
    return WebhookCall(name="gate", kind="confirm-promotion", url=url, timeout=timeout,
                       retries=retries, payload={"name": "reviews", "phase": "halted",
                                                 "weights": {"v1": 0, "v2": 100}})


def test_post_json_payload(hooks: Hooks) -> None:
    with HttpWebhookCaller() as caller:
        assert isinstance(caller, WebhookCaller)
        result = caller.deliver(call(f"{hooks.url}/ok"))
    assert (result.ok, result.status, result.attempts) == (True, 200, 1)
    assert hooks.received == [("/ok", {"name": "reviews", "phase": "halted",
                                       "weights": {"v1": 0, "v2": 100}})]


def test_server_errors_are_retried_until_success(hooks: Hooks) -> None:
    hooks.script["/flaky"] = [503, 500, 200]
    with HttpWebhookCaller(backoff_max=0.05) as caller:
        result = caller.deliver(call(f"{hooks.url}/flaky", retries=2))
    assert (result.ok, result.attempts) == (True, 3)


def test_retries_are_bounded(hooks: Hooks) -> None:
    hooks.script["/down"] = [500]
    with HttpWebhookCaller(backoff_max=0.05) as caller:
        result = caller.deliver(call(f"{hooks.url}/down", retries=1))
    assert (result.ok, result.status, result.attempts) == (False, 500, 2)
    assert hooks.calls("/down") == 2


def test_a_4xx_is_an_answer_not_a_failure_to_retry(hooks: Hooks) -> None:
    hooks.script["/no"] = [403]
    with HttpWebhookCaller() as caller:
        assert caller.call(call(f"{hooks.url}/no")) is False
    assert hooks.calls("/no") == 1


def test_timeouts_fail_closed_within_the_bound(hooks: Hooks) -> None:
    started = time.monotonic()
    with HttpWebhookCaller(backoff_max=0.05) as caller:
        result = caller.deliver(call(f"{hooks.url}/slow", retries=1, timeout=0.2))
    assert not result.ok and result.attempts == 2
    assert "Timeout" in result.error
    assert time.monotonic() - started < 2.0


def test_unreachable_webhook_fails_after_retries() -> None:
    from reconciler.processes.ports import free_port
    with HttpWebhookCaller(backoff_max=0.05) as caller:
        result = caller.deliver(call(f"http://127.0.0.1:{free_port()}/x", retries=2))
    assert not result.ok and result.attempts == 3 and result.status is None
    assert "ConnectError" in result.error


@pytest.mark.parametrize("path", ["/trickle-body", "/trickle-headers"])
def test_a_trickling_webhook_is_cut_at_the_call_deadline(hooks: Hooks, path: str) -> None:
    """Every read gets a byte within its 0.5 s timeout, yet the call ends at its overall
    deadline ((retries + 1) * timeout = 1 s), as a failed gate."""
    with HttpWebhookCaller(backoff_max=0.05) as caller:
        started = time.monotonic()
        result = caller.deliver(call(f"{hooks.url}{path}", retries=1, timeout=0.5))
        took = time.monotonic() - started
    assert not result.ok
    assert took < 1.5, took        # the server would trickle for 5 s
    assert caller.deadline(call("x", retries=1, timeout=0.5)) == 1.0

"""Rollout webhooks over HTTP: POST the rollout state, bounded in time and retries.

The canary machine decides *which* webhook to call with *what* payload
(:class:`~reconciler.delivery.actions.WebhookCall`); this adapter only delivers it. A gate
(confirm-rollout, pre-rollout, rollout, confirm-promotion) is answered by the result:
2xx is yes, anything else — an error status, a timeout, a refused connection after all
retries — is no, so a broken gate holds the rollout rather than waving it through.

Retries (``Webhook.retries``) cover transport errors and 5xx/429 answers, with a short
exponential backoff; a 4xx other than 429 is a deliberate answer and is not retried.

**One deadline per call**, ``(retries + 1) * timeout``, covering every attempt, the backoff
and the reading of the answer — not a timeout per read, which a webhook that trickles its
headers or body a byte at a time would never trip. Each attempt gets what is left of it
(at most ``timeout``); the body is read in chunks, checked against it. The request runs on
a small pool of worker threads and the caller waits at most the deadline, so even a
trickle inside one read cannot hold the caller (the canary driver) past it: the call is a
*no* and the stuck request ends on its own at its next read timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import httpx

from reconciler.delivery.actions import WebhookCall
from reconciler.processes.lifecycle import Closeable

__all__ = ["HttpWebhookCaller", "WebhookResult"]

log = logging.getLogger(__name__)

_BODY_LIMIT = 64 * 1024     # an answer is a status; its body is read only to free the socket
_GRACE = 0.05               # seconds past the deadline before the caller gives up waiting


class _Retryable(Exception):
    """An attempt that may succeed if repeated (transport error, 5xx, 429)."""


@dataclass(frozen=True)
class WebhookResult:
    """What happened to one call: ``ok`` for 2xx, with the last status or error."""

    name: str
    ok: bool
    attempts: int
    status: int | None = None
    error: str = ""

    def describe(self) -> str:
        what = f"HTTP {self.status}" if self.status is not None else self.error
        return f"webhook {self.name}: {'ok' if self.ok else 'failed'} ({what}, " \
               f"{self.attempts} attempt(s))"


class HttpWebhookCaller(Closeable):
    """Delivers :class:`WebhookCall` s; implements :class:`reconciler.ports.WebhookCaller`."""

    def __init__(self, *, client: httpx.Client | None = None,
                 backoff_max: float = 2.0, workers: int = 4) -> None:
        self._client = client or httpx.Client(trust_env=False, follow_redirects=False)
        self._owns_client = client is None
        self._backoff_max = backoff_max
        self._runner = ThreadPoolExecutor(max_workers=max(1, workers),
                                          thread_name_prefix="meshdsl-webhook")
        self._lock = threading.Lock()

    def call(self, call: WebhookCall) -> bool:
        return self.deliver(call).ok

    @staticmethod
    def deadline(call: WebhookCall) -> float:
        """Seconds one call may take in all: every attempt and the waits between them."""
        return max(0.0, call.timeout) * (max(0, call.retries) + 1)

    def deliver(self, call: WebhookCall) -> WebhookResult:
        """POST ``call.payload`` as JSON within :meth:`deadline`; never raises for what the
        webhook does (a missed deadline is a failed call)."""
        budget = self.deadline(call)
        deadline = time.monotonic() + budget
        progress: list[WebhookResult] = []
        future = self._runner.submit(self._attempts, call, deadline, progress)
        try:
            result = future.result(timeout=budget + _GRACE)
        except FutureTimeout:
            future.cancel()
            with self._lock:
                tried = progress[-1] if progress else None
            result = WebhookResult(
                call.name, False, tried.attempts if tried else 0,
                tried.status if tried else None,
                f"no answer within the call's deadline of {budget:g} s")
        (log.info if result.ok else log.warning)("%s", result.describe())
        return result

    def _attempts(self, call: WebhookCall, deadline: float,
                  progress: list[WebhookResult]) -> WebhookResult:
        attempts, status, error = 0, None, ""
        for attempt in range(max(0, call.retries) + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                error = error or "deadline reached"
                break
            attempts += 1
            try:
                status = self._post(call, min(call.timeout, left), deadline)
                error = ""
            except _Retryable as exc:
                status, error = None, str(exc)
            with self._lock:
                progress.append(WebhookResult(call.name, False, attempts, status, error))
            if status is not None and not (status >= 500 or status == 429):
                return WebhookResult(call.name, 200 <= status < 300, attempts, status)
            if status is not None:
                error = f"HTTP {status}"
            pause = min(self._backoff_max, 0.1 * 2 ** attempt)
            if attempt < call.retries and time.monotonic() + pause < deadline:
                time.sleep(pause)
        return WebhookResult(call.name, False, attempts, status, error)

    def _post(self, call: WebhookCall, timeout: float, deadline: float) -> int:
        """One attempt; the status. The body is read in chunks against ``deadline``."""
        try:
            with self._client.stream("POST", call.url, json=dict(call.payload),
                                     timeout=timeout) as response:
                read = 0
                for chunk in response.iter_raw():
                    read += len(chunk)
                    if time.monotonic() > deadline:
                        raise _Retryable("the answer was still arriving at the deadline")
                    if read > _BODY_LIMIT:
                        break
                return response.status_code
        except httpx.HTTPError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._runner.shutdown(wait=False, cancel_futures=True)
        if self._owns_client:
            self._client.close()

"""Rollout webhooks over HTTP: POST the rollout state, bounded in time and retries.

The canary machine decides *which* webhook to call with *what* payload
(:class:`~reconciler.delivery.actions.WebhookCall`); this adapter only delivers it. A gate
(confirm-rollout, pre-rollout, rollout, confirm-promotion) is answered by the result:
2xx is yes, anything else — an error status, a timeout, a refused connection after all
retries — is no, so a broken gate holds the rollout rather than waving it through.

Retries (``Webhook.retries``, via tenacity) cover transport errors and 5xx/429 answers,
with a short exponential backoff; a 4xx other than 429 is a deliberate answer and is not
retried. The total time is bounded by ``(retries + 1) * timeout`` plus the backoff.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from reconciler.delivery.actions import WebhookCall

__all__ = ["HttpWebhookCaller", "WebhookResult"]

log = logging.getLogger(__name__)


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


class HttpWebhookCaller:
    """Delivers :class:`WebhookCall` s; implements :class:`reconciler.ports.WebhookCaller`."""

    def __init__(self, *, client: httpx.Client | None = None,
                 backoff_max: float = 2.0) -> None:
        self._client = client or httpx.Client(trust_env=False, follow_redirects=False)
        self._owns_client = client is None
        self._backoff_max = backoff_max

    def call(self, call: WebhookCall) -> bool:
        return self.deliver(call).ok

    def deliver(self, call: WebhookCall) -> WebhookResult:
        """POST ``call.payload`` as JSON; never raises for what the webhook does."""
        attempts = 0
        last: httpx.Response | None = None

        def attempt() -> httpx.Response:
            nonlocal attempts, last
            attempts += 1
            try:
                response = self._client.post(call.url, json=dict(call.payload),
                                             timeout=call.timeout)
            except httpx.HTTPError as exc:
                raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
            last = response
            if response.status_code >= 500 or response.status_code == 429:
                raise _Retryable(f"HTTP {response.status_code}")
            return response

        retrying = Retrying(
            stop=stop_after_attempt(call.retries + 1),
            wait=wait_exponential(multiplier=0.1, max=self._backoff_max),
            retry=retry_if_exception_type(_Retryable),
            reraise=False,
        )
        try:
            response = retrying(attempt)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            result = WebhookResult(call.name, False, attempts,
                                   None if last is None else last.status_code, str(cause))
        else:
            result = WebhookResult(call.name, response.is_success, attempts,
                                   response.status_code)
        (log.info if result.ok else log.warning)("%s", result.describe())
        return result

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

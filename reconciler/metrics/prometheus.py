"""Canary metrics from the Prometheus HTTP API (``/api/v1/query``).

One instant query per check, as Flagger's Prometheus provider does. The result must be a
single number: an empty vector is *no data* (``None``: Flagger's "no values found", which
halts the rollout), as is NaN (a 0/0 success rate when nothing was served). Several series
are an error, not a guess — a check query must aggregate (``sum(...)``) to one value.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from reconciler.delivery.queries import MetricQuery
from reconciler.ports import MetricsError
from reconciler.processes.lifecycle import Closeable

__all__ = ["PrometheusSource", "series_of", "value_of"]


def value_of(data: Any, promql: str) -> float | None:
    """The one number in a ``/api/v1/query`` ``data`` object, or None for no data."""
    try:
        kind, result = data["resultType"], data["result"]
        if kind == "scalar":
            raw = result[1]
        elif kind == "vector":
            if not result:
                return None
            if len(result) > 1:
                series = ", ".join(str(r.get("metric", {})) for r in result[:3])
                raise MetricsError(
                    f"query returned {len(result)} series ({series}, ...), not one number; "
                    f"aggregate it, e.g. sum(...): {promql}")
            raw = result[0]["value"][1]
        else:
            raise MetricsError(f"query returned a {kind}, not a number: {promql}")
        value = float(raw)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise MetricsError(f"unexpected Prometheus answer for {promql}: {exc!r}") from exc
    return value if math.isfinite(value) else None


def series_of(data: Any, promql: str) -> list[tuple[dict[str, str], float]]:
    """Every series of a vector answer as ``(labels, value)``; NaN (nothing served in the
    window) is left out."""
    try:
        if data["resultType"] != "vector":
            raise MetricsError(f"query returned a {data['resultType']}, not a vector: {promql}")
        out = []
        for item in data["result"]:
            value = float(item["value"][1])
            if not math.isnan(value):
                out.append((dict(item["metric"]), value))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise MetricsError(f"unexpected Prometheus answer for {promql}: {exc!r}") from exc
    return out


class PrometheusSource(Closeable):
    """A :class:`~reconciler.ports.MetricsSource` backed by one Prometheus server."""

    def __init__(self, url: str, *, timeout: float = 10.0,
                 client: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self._client = client or httpx.Client(base_url=self.url, timeout=timeout,
                                              trust_env=False)
        self._owns_client = client is None

    def describe(self) -> str:
        return f"Prometheus at {self.url}"

    def query(self, promql: str) -> float | None:
        """Evaluate ``promql`` now: its single value, or None when there is no data."""
        return value_of(self._answer(promql), promql)

    def vector(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """Evaluate ``promql`` now: every series it returns, with its labels."""
        return series_of(self._answer(promql), promql)

    def _answer(self, promql: str) -> Any:
        """The ``data`` of an instant query's answer; any failure is a MetricsError."""
        try:
            response = self._client.get(f"{self.url}/api/v1/query", params={"query": promql})
        except httpx.HTTPError as exc:
            raise MetricsError(f"Prometheus at {self.url} unreachable: {exc}") from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise MetricsError(f"Prometheus at {self.url} answered HTTP "
                               f"{response.status_code} without JSON: "
                               f"{response.text[:200]}") from exc
        if response.status_code != 200 or body.get("status") != "success":
            raise MetricsError(f"Prometheus rejected the query ({response.status_code} "
                               f"{body.get('errorType', '')}: {body.get('error', '')}): "
                               f"{promql}")
        return body.get("data")

    def measure(self, query: MetricQuery) -> float | None:
        return self.query(query.promql)

    def sample(self) -> None:
        """Nothing to do: Prometheus keeps its own history."""

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

"""Canary metrics straight from Envoy's admin ``/stats/prometheus`` — no Prometheus needed.

For the local mesh on a laptop, the builtin checks are computed here from two scrapes of
the proxies' counters, ``interval`` apart: the difference is what happened in the window,
exactly (no ``rate()`` extrapolation). Per Istio-style cluster of the canary
(``inbound|<port>|<version>|<service>...`` for the destination's view — what the builtin
queries use — or ``outbound|...`` for the callers' view; a plan judged on its waypoint,
in an ambient namespace, reads the waypoint's ``inbound-vip|...``):

- ``request-count``: responses in the window (``envoy_cluster_upstream_rq_xx``, all classes);
- ``request-success-rate``: percent of those not 5xx;
- ``request-duration``: p99 from ``envoy_cluster_upstream_rq_time_bucket``, interpolated
  inside the bucket like Prometheus' ``histogram_quantile`` (so "approximate" the same way).

Envoy merges histograms at each stats flush (every 5 s by default), so latency lags the
counters by up to one flush. Custom PromQL checks need Prometheus: they raise
:class:`~reconciler.ports.MetricsError` here.

The text parser is our own on purpose: ``prometheus_client``'s renames counters
(``envoy_cluster_upstream_rq`` → ``..._total``), colliding with Envoy's own ``_total``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import httpx

from reconciler.delivery.queries import MetricQuery
from reconciler.metrics.recording_rules import parse_cluster
from reconciler.ports import MetricsError

__all__ = ["EnvoyStatsSource", "Samples", "Scrape", "Window", "fetch_stats",
           "histogram_quantile", "increase", "parse_exposition", "window"]

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]

_LINE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_HISTORY = 256


def _labels(text: str) -> Labels:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _LABEL.match(text, pos)
        if match is None:
            raise ValueError(f"bad labels {text!r}")
        value = re.sub(r"\\[\\\"n]", lambda m: _UNESCAPE[m.group(0)], match.group(2))
        out.append((match.group(1), value))
        pos = match.end()
    return tuple(sorted(out))


def parse_exposition(text: str) -> Samples:
    """Prometheus text exposition → ``{(sample name, sorted labels): value}``."""
    samples: Samples = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        try:
            if match is None:
                raise ValueError("not a sample")
            samples[(match.group(1), _labels(match.group(2) or ""))] = float(match.group(3))
        except ValueError as exc:
            raise MetricsError(f"line {number} of the stats is not Prometheus text "
                               f"({exc}): {line[:120]}") from exc
    return samples


@dataclass(frozen=True)
class Scrape:
    at: float
    samples: Samples


@dataclass(frozen=True)
class Window:
    """What the canary's clusters did between two scrapes."""

    responses: float
    errors: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), sorted


def fetch_stats(client: httpx.Client, admin_url: str, *, only: str | None = None) -> str:
    """One proxy's ``/stats/prometheus`` text (``only``: Envoy's stats name filter regex)."""
    url = admin_url.rstrip("/")
    try:
        response = client.get(f"{url}/stats/prometheus",
                              params={"filter": only} if only else None)
    except httpx.HTTPError as exc:
        raise MetricsError(f"Envoy admin {url} unreachable: {exc}") from exc
    if response.status_code != 200:
        raise MetricsError(f"Envoy admin {url}/stats/prometheus answered HTTP "
                           f"{response.status_code}")
    return response.text


def increase(before: float | None, after: float) -> float:
    """Counter increase; a smaller value means Envoy restarted (count from zero)."""
    if before is None or after < before:
        return after
    return after - before


def _matches(labels: Labels, query: MetricQuery, reporter: str) -> bool:
    cluster = dict(labels).get("envoy_cluster_name", "")
    parsed = parse_cluster(cluster)
    return parsed is not None and parsed[0] == reporter and parsed[2:] == (
        query.version, query.service, query.namespace)


def window(before: Samples, after: Samples, query: MetricQuery, *,
           reporter: str = "destination") -> Window:
    """Sum the canary's clusters' increases between ``before`` and ``after``."""
    responses = errors = 0.0
    buckets: dict[float, float] = {}
    for (name, labels), value in after.items():
        if not _matches(labels, query, reporter):
            continue
        delta = increase(before.get((name, labels)), value)
        label = dict(labels)
        if name == "envoy_cluster_upstream_rq_xx":
            responses += delta
            if label.get("envoy_response_code_class") == "5":
                errors += delta
        elif name == "envoy_cluster_upstream_rq_time_bucket" and "le" in label:
            bound = float(label["le"])
            buckets[bound] = buckets.get(bound, 0.0) + delta
    return Window(responses, errors, tuple(sorted(buckets.items())))


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile`` on cumulative ``(le, count)`` buckets."""
    if not buckets or not math.isinf(buckets[-1][0]) or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for index, (upper, count) in enumerate(buckets):
        if count >= rank:
            if math.isinf(upper):
                return buckets[index - 1][0] if index > 0 else None
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return None


def _value(win: Window, builtin: str) -> float | None:
    if builtin == "request-count":
        return win.responses
    if builtin == "request-success-rate":
        return None if win.responses <= 0 else 100.0 * (win.responses - win.errors) / \
            win.responses
    return histogram_quantile(0.99, win.buckets)


class EnvoyStatsSource:
    """A :class:`~reconciler.ports.MetricsSource` reading Envoy admin endpoints directly.

    Keeps recent scrapes in memory; a query is answered from the newest scrape and the
    newest one at least the check's interval older (or, early on, the oldest one there
    is). The first query ever therefore has no window and answers None (no data); call
    :meth:`sample` when a stage starts to open its window.
    """

    def __init__(self, admin_urls: Iterable[str] | Callable[[], Iterable[str]], *,
                 reporter: str = "destination",
                 timeout: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 fetch: Callable[[str], str] | None = None, reuse_within: float = 0.5
                 ) -> None:
        if reporter not in ("source", "destination"):
            raise ValueError("reporter is 'source' (outbound clusters) or 'destination'")
        # A callable is asked before every scrape: a local mesh's proxies come and go
        # between revisions (a canary's new version starts its own Envoy).
        self._urls = admin_urls if callable(admin_urls) else list(admin_urls)
        self.reporter = reporter
        self._clock = clock
        self._client = httpx.Client(timeout=timeout, trust_env=False) if fetch is None \
            else None
        self._fetch = fetch or self._get
        self._reuse_within = reuse_within
        self._history: list[Scrape] = []

    @property
    def admin_urls(self) -> list[str]:
        urls = self._urls() if callable(self._urls) else self._urls
        return [u.rstrip("/") for u in urls]

    def describe(self) -> str:
        return f"Envoy stats of {len(self.admin_urls)} proxies ({self.reporter} view)"

    def _get(self, url: str) -> str:
        assert self._client is not None
        return fetch_stats(self._client, url)

    def sample(self) -> Scrape:
        """Scrape every proxy now (or reuse a scrape taken a moment ago) and remember it."""
        now = self._clock()
        if self._history and now - self._history[-1].at <= self._reuse_within:
            return self._history[-1]
        merged: Samples = {}
        for url in self.admin_urls:
            for (name, labels), value in parse_exposition(self._fetch(url)).items():
                key = (name, (*labels, ("instance", url)))
                merged[key] = value
        scrape = Scrape(now, merged)
        self._history = [*self._history, scrape][-_HISTORY:]
        return scrape

    def measure(self, query: MetricQuery) -> float | None:
        if query.builtin not in ("request-count", "request-success-rate", "request-duration"):
            raise MetricsError(f"check {query.check} is custom PromQL; Envoy stats only "
                               "compute the builtin checks — use a Prometheus source")
        current = self.sample()
        earlier = [s for s in self._history if s.at < current.at]
        if not earlier:
            return None
        full = [s for s in earlier if s.at <= current.at - query.interval_seconds]
        baseline = full[-1] if full else earlier[0]
        assert query.builtin is not None
        reporter = "waypoint" if query.reporter == "waypoint" else self.reporter
        return _value(window(baseline.samples, current.samples, query,
                             reporter=reporter), query.builtin)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

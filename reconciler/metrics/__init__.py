"""Metrics for canary analysis: where the numbers the canary machine judges come from.

The machine (``reconciler.delivery``) asks for :class:`~reconciler.delivery.queries.MetricQuery`
values; a :class:`~reconciler.ports.MetricsSource` answers them:

- :mod:`.prometheus` — the Prometheus HTTP API (real Istio, or the local mesh with a
  Prometheus scraping its Envoys), running each query's rendered PromQL;
- :mod:`.envoy_stats` — the local mesh *without* Prometheus: Envoy's own
  ``/stats/prometheus`` read directly, the builtin checks computed from two scrapes;
- :mod:`.recording_rules` — pure: the Prometheus scrape relabelling and recording rule that
  make the local mesh's plain ``envoy_cluster_*`` metrics look like Istio's, so the same
  queries serve both.

``None`` from a source means *no data*; :class:`~reconciler.ports.MetricsError` means the
source could not answer. Neither is ever a pass.
"""

from reconciler.metrics.envoy_stats import EnvoyStatsSource
from reconciler.metrics.prometheus import PrometheusSource
from reconciler.metrics.recording_rules import (
    istio_bridge_relabel_configs,
    istio_bridge_rule_groups,
    rules_file,
)
from reconciler.ports import MetricsError, MetricsSource

__all__ = [
    "EnvoyStatsSource",
    "MetricsError",
    "MetricsSource",
    "PrometheusSource",
    "istio_bridge_relabel_configs",
    "istio_bridge_rule_groups",
    "rules_file",
]

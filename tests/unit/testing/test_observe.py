"""The probes tests and benchmarks read a reconciler with."""

from __future__ import annotations

import socket

from reconciler.testing.observe import descriptors, metric_total

EXPOSITION = """\
# HELP meshdsl_reconciles_total Reconcile passes by result.
# TYPE meshdsl_reconciles_total counter
meshdsl_reconciles_total{result="applied",trigger="webhook"} 3
meshdsl_reconciles_total{result="applied",trigger="poll"} 2
meshdsl_reconciles_total{result="failed",trigger="webhook"} 1
meshdsl_reconciles_total_created{result="applied"} 1.7e9
meshdsl_webhook_requests_total{outcome="accepted"} 7
"""


def test_metric_total_sums_the_samples_that_carry_the_labels() -> None:
    assert metric_total(EXPOSITION, "meshdsl_reconciles_total", result="applied") == 5
    assert metric_total(EXPOSITION, "meshdsl_reconciles_total", result="applied",
                        trigger="poll") == 2
    assert metric_total(EXPOSITION, "meshdsl_reconciles_total") == 6
    assert metric_total(EXPOSITION, "meshdsl_reconciles_total", result="unchanged") == 0
    assert metric_total(EXPOSITION, "meshdsl_webhook_requests_total", outcome="accepted") == 7


def test_descriptors_count_the_sockets_this_process_opens() -> None:
    fds, sockets = descriptors()
    with socket.socket(), socket.socket():
        assert descriptors() == (fds + 2, sockets + 2)
    assert descriptors() == (fds, sockets)

"""What tests and benchmarks read off a running reconciler: its open descriptors and the
samples of its (or an Envoy's) Prometheus metrics."""

from __future__ import annotations

import os

from reconciler.metrics.envoy_stats import parse_exposition

__all__ = ["descriptors", "metric_total"]


def descriptors(pid: int | str = "self") -> tuple[int, int]:
    """(open descriptors, of which sockets) of process ``pid`` (Linux ``/proc``); OSError
    when the process is gone."""
    fds = sockets = 0
    for entry in os.scandir(f"/proc/{pid}/fd"):
        fds += 1
        try:
            if os.readlink(entry.path).startswith("socket:"):
                sockets += 1
        except OSError:   # closed between the listing and the look
            continue
    return fds, sockets


def metric_total(exposition: str, name: str, **labels: str) -> float:
    """The sum of metric ``name``'s samples whose labels include ``labels``, from the
    Prometheus text ``exposition``."""
    wanted = set(labels.items())
    return sum(value for (sample, sample_labels), value in parse_exposition(exposition).items()
               if sample == name and wanted <= set(sample_labels))

"""What a running reconciler tells the outside: Prometheus metrics and JSON log lines.

Metrics live in a registry per reconciler (not the process-global one), so several
reconcilers — or several tests — in one process do not collide:

- ``meshdsl_reconcile_duration_seconds{name,result}`` — histogram of reconciles;
- ``meshdsl_reconciles_total{name,result}``;
- ``meshdsl_applied_revision_info{name,revision,mesh}`` — 1 for the live revision;
- ``meshdsl_reconcile_errors_total{name,kind}`` — failures by kind (syntax, timeout,
  validation, unreachable, rejected, …);
- ``meshdsl_drift_objects{name}`` — objects found changed by someone else at the last check;
- ``meshdsl_suspended{name}``, ``meshdsl_leader{name}``,
  ``meshdsl_webhook_requests_total{name,outcome}``.

Logs are one JSON object per line on stderr; every reconcile logs its revision, trigger,
result and duration.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["JsonFormatter", "Telemetry", "configure_logging", "log"]

log = logging.getLogger("meshdsl.reconciler")

_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0)


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "msg", ...fields}``; fields come from ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, sort_keys=False, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        extra = " ".join(f"{k}={v}" for k, v in fields.items() if k != "event")
        return f"{record.levelname.lower():7} {record.getMessage()} {extra}".rstrip()


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else _TextFormatter())
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


class Telemetry:
    def __init__(self, name: str, registry: CollectorRegistry | None = None) -> None:
        self.name = name
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.duration = Histogram("meshdsl_reconcile_duration_seconds",
                                  "Time of one reconcile (fetch, run the program, apply).",
                                  ["name", "result"], buckets=_BUCKETS, registry=r)
        self.reconciles = Counter("meshdsl_reconciles", "Reconciles by result.",
                                  ["name", "result"], registry=r)
        self.revision = Gauge("meshdsl_applied_revision_info",
                              "The revision live on the target (value 1).",
                              ["name", "revision", "mesh"], registry=r)
        self.errors = Counter("meshdsl_reconcile_errors", "Failed reconciles by kind.",
                              ["name", "kind"], registry=r)
        self.drift = Gauge("meshdsl_drift_objects",
                           "Objects found changed by someone else at the last check.",
                           ["name"], registry=r)
        self.suspended = Gauge("meshdsl_suspended", "1 while auto-sync is suspended.",
                               ["name"], registry=r)
        self.leader = Gauge("meshdsl_leader", "1 while this replica holds the lease.",
                            ["name"], registry=r)
        self.webhooks = Counter("meshdsl_webhook_requests", "Push requests by outcome.",
                                ["name", "outcome"], registry=r)
        self.drift.labels(name).set(0)
        self.suspended.labels(name).set(0)

    def reconciled(self, result: str, seconds: float) -> None:
        self.duration.labels(self.name, result).observe(seconds)
        self.reconciles.labels(self.name, result).inc()

    def failed(self, kind: str) -> None:
        self.errors.labels(self.name, kind).inc()

    def applied(self, revision: str, mesh: str) -> None:
        self.revision.clear()
        self.revision.labels(self.name, revision, mesh).set(1)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def event(message: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """One structured log line."""
    log.log(level, message, extra={"fields": {"event": message, **fields}})

"""An in-memory Zipkin v2 span sink: the traces the local mesh's Envoys send the dashboard.

Envoy's Zipkin tracer posts JSON arrays of spans (``traceId``, ``id``, ``parentId``,
``name``, ``timestamp``/``duration`` in microseconds, ``localEndpoint.serviceName``,
``tags``). Spans are grouped by trace; the oldest traces are dropped past ``limit``. In a
cluster the user's Jaeger or Zipkin keeps traces; this is for a laptop.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["TraceStore"]


def _service(span: Mapping[str, Any]) -> str:
    return str((span.get("localEndpoint") or {}).get("serviceName") or "unknown")


class TraceStore:
    def __init__(self, limit: int = 500) -> None:
        self.limit = limit
        self._traces: OrderedDict[str, dict[str, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, spans: Iterable[Any]) -> int:
        added = 0
        with self._lock:
            for span in spans:
                if not isinstance(span, dict) or not span.get("traceId") or not span.get("id"):
                    continue
                trace = self._traces.setdefault(str(span["traceId"]), {})
                key = f"{span['id']}:{span.get('kind', '')}:{_service(span)}"
                trace[key] = span
                self._traces.move_to_end(str(span["traceId"]))
                added += 1
            while len(self._traces) > self.limit:
                self._traces.popitem(last=False)
        return added

    def services(self) -> dict[str, int]:
        """Traces per service name."""
        counts: dict[str, int] = {}
        with self._lock:
            for spans in self._traces.values():
                for name in {_service(s) for s in spans.values()}:
                    counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))

    def traces(self, service: str = "", limit: int = 50) -> list[dict[str, Any]]:
        """Newest first: one summary per trace touching ``service`` (any when empty)."""
        out = []
        with self._lock:
            items = list(self._traces.items())
        for trace_id, spans in reversed(items):
            names = sorted({_service(s) for s in spans.values()})
            if service and service not in names:
                continue
            starts = [int(s.get("timestamp") or 0) for s in spans.values()]
            ends = [int(s.get("timestamp") or 0) + int(s.get("duration") or 0)
                    for s in spans.values()]
            root = min(spans.values(), key=lambda s: int(s.get("timestamp") or 0))
            out.append({"trace_id": trace_id, "root": f"{_service(root)} {root.get('name', '')}",
                        "services": names, "spans": len(spans), "start_us": min(starts),
                        "duration_us": max(ends) - min(starts),
                        "error": any((s.get("tags") or {}).get("error") for s in spans.values())})
            if len(out) >= limit:
                break
        return out

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """The trace's spans in start order (for the waterfall)."""
        with self._lock:
            spans = list(self._traces.get(trace_id, {}).values())
        return sorted(spans, key=lambda s: (int(s.get("timestamp") or 0), str(s.get("id"))))

"""Istio's Telemetry API: tracing (provider, sampling %) and access logging, for the whole
mesh (root namespace), a namespace, or a service's workloads (a selector).

The most specific declaration wins, as in Istio: a workload's own Telemetry, else its
namespace's, else the mesh's.
"""

from __future__ import annotations

from pydantic import Field

from meshdsl.model.base import Declared, Frozen

__all__ = ["AccessLogging", "Telemetry", "Tracing"]


class Tracing(Frozen):
    """Send spans to ``provider`` (an extension provider of the mesh config, e.g. the
    ``zipkin`` Istio installs) for ``sampling`` percent of requests."""

    provider: str = "zipkin"
    sampling: float = Field(default=1.0, ge=0.0, le=100.0)
    disable_span_reporting: bool = False


class AccessLogging(Frozen):
    provider: str = "envoy"
    disabled: bool = False


class Telemetry(Declared):
    name: str
    namespace: str
    selector: dict[str, str] = Field(default_factory=dict)
    tracing: Tracing | None = None
    access_logging: AccessLogging | None = None

"""Per-workload local rate limiting: a token bucket in each sidecar (Envoy's
local_ratelimit filter, delivered to Istio as an EnvoyFilter)."""

from __future__ import annotations

from pydantic import Field

from meshdsl.model.base import Declared


class LocalRateLimit(Declared):
    """``max_tokens`` burst, refilled by ``tokens_per_fill`` every ``fill_interval``."""

    name: str
    namespace: str
    selector: dict[str, str]
    max_tokens: int = Field(ge=1)
    tokens_per_fill: int = Field(ge=1)
    fill_interval: str = "1s"
    enabled_percent: int = Field(default=100, ge=0, le=100)
    enforced_percent: int = Field(default=100, ge=0, le=100)
    stat_prefix: str = "http_local_rate_limiter"

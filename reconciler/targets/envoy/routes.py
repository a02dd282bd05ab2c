"""How each proxy of the local mesh receives its route tables, and when a config changed.

**Route tables: RDS while the file watches fit.** Envoy spends one inotify instance per
watched file — LDS, CDS and one per RDS route table — and Linux allows a user 128 instances
in total (``fs.inotify.max_user_instances``); Envoy *aborts* when it gets none. A sidecar
has a route table per service it can call, so bookinfo's 12 sidecars alone would need 124.
Route tables therefore travel by RDS (a route change reaches every open keep-alive
connection at its next request) while the whole mesh needs at most half the limit; beyond
that, sidecars carry them inline in their listeners (2 watches each: a route change
replaces the listener's filter chain, and open connections finish their current request,
are told ``Connection: close`` and reconnect), and gateways keep RDS if that still fits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from meshdsl.compile.envoy import ProxyConfig, ProxyKind

__all__ = ["RouteDelivery", "config_digest", "inline_routes", "watch_budget"]

_INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_instances")

RouteDelivery = Literal["auto", "rds", "inline"]


def inline_routes(configs: Mapping[str, ProxyConfig], delivery: RouteDelivery,
                  budget: int) -> set[str]:
    """The proxies that get their route tables inline: none while every watch fits in
    ``budget``, else the sidecars, else all (``delivery`` other than ``auto`` forces it)."""
    if delivery != "auto":
        return set(configs) if delivery == "inline" else set()
    sidecars = {pid for pid, c in configs.items() if c.kind is ProxyKind.SIDECAR}

    def watches(inline: set[str]) -> int:
        return sum(2 if pid in inline else 2 + len(c.routes) for pid, c in configs.items())

    for inline in (set(), sidecars):
        if watches(inline) <= budget:
            return inline
    return set(configs)


def watch_budget() -> int:
    """How many inotify instances the whole mesh may use: half the per-user limit (other
    programs of the user need some too). Unlimited where there is no such limit."""
    try:
        return int(_INOTIFY_LIMIT.read_text()) // 2
    except (OSError, ValueError):
        return 1 << 30


def config_digest(config: ProxyConfig, *, inline: bool) -> str:
    """What a proxy runs, as a hash: equal digests need no push."""
    text = json.dumps([config.listeners, config.clusters, config.routes, inline],
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()

"""The web dashboard: the mesh's graph (declared routes and seen traffic), its canaries and
traces, live in a browser — served by ``meshctl dashboard``, ``up``, ``reconcile`` and
``demo``.

- :mod:`reconciler.core.graph` builds the graph (pure); :mod:`reconciler.delivery.view`
  explains each rollout (pure);
- :mod:`.traffic` reads traffic from Prometheus (Kiali's queries) or the Envoys' stats;
- :mod:`.traces` keeps the Zipkin spans the local Envoys send;
- :mod:`.server` serves the page (``static/``, its libraries installed from the npm
  registry by ``scripts/fetch-web-assets``) and pushes a snapshot every ~2 s.

:func:`start` is the one call a command makes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.core.graph import gateway_id, workload_id
from reconciler.dashboard.server import Dashboard, DashboardError, Feeds, is_loopback
from reconciler.dashboard.traces import TraceStore
from reconciler.dashboard.traffic import EnvoyTraffic, PrometheusTraffic, TrafficSource
from reconciler.delivery.phases import RolloutState

__all__ = ["Dashboard", "DashboardError", "EnvoyTraffic", "Feeds", "PrometheusTraffic",
           "TraceStore", "TrafficSource", "is_loopback", "local_proxies", "parse_listen",
           "start"]

DEFAULT_LISTEN = "127.0.0.1:0"


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``; port 0: any free one) → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise DashboardError(f"--listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:8090")
    return host.strip("[]"), int(port)


def local_proxies(mesh: Any) -> Callable[[], list[tuple[str, str]]]:
    """Node id and admin URL of every Envoy of a running
    :class:`~reconciler.targets.envoy.mesh.LocalMesh`."""
    def proxies() -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if not mesh.generation:   # not started yet
            return out
        for row in mesh.table(live=False):
            node = (gateway_id(row.namespace, row.service) if row.kind == "gateway"
                    else workload_id(row.namespace, row.service, row.version))
            out.append((node, row.admin))
        return out
    return proxies


def start(feeds: Feeds, *, listen: str = DEFAULT_LISTEN, token: str | None = None,
          refresh: float = 2.0) -> Dashboard:
    """Serve the page now (in background threads); ``stop()`` it when done."""
    host, port = parse_listen(listen)
    return Dashboard(feeds, host=host, port=port, token=token, refresh=refresh).start()


def rollouts_of(store: Any) -> Callable[[], list[RolloutState]]:
    """The rollouts kept in a rollout store (disk or cluster), read at every refresh."""
    def read() -> list[RolloutState]:
        return [stored.state for stored in store.list_rollouts()]
    return read


__all__ += ["rollouts_of"]


def history_of(store: Any) -> Callable[[], list[dict[str, Any]]]:
    """The revisions applied, newest first, from a status store (``load_status()``)."""
    def read() -> list[dict[str, Any]]:
        status = store.load_status()
        if status is None:
            return []
        return [{"revision": a.revision, "result": a.result.value, "at": a.started_at,
                 "summary": a.summary, "trigger": a.trigger}
                for a in status.history]
    return read


__all__ += ["history_of"]

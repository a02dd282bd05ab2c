"""What the local mesh reports: a row per proxy for ``meshctl up``, and what an apply did."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from meshdsl.compile.envoy import LocalPlacement, ProxyConfig, ProxyKind, WorkloadKey
from meshdsl.compile.envoy.placement import gateway_workloads
from meshdsl.model.spec import MeshSpec
from reconciler.targets.envoy.allocation import local_run
from reconciler.targets.envoy.apps import LocalApp

__all__ = ["Applied", "Row", "gateway_scheme", "table_rows"]


@dataclass(frozen=True)
class Row:
    """One line of ``meshctl up``'s table: a proxy and, for a sidecar, the app behind it."""

    proxy: str
    kind: str
    namespace: str
    service: str
    version: str
    app: str
    app_state: str
    listen: tuple[str, ...]
    admin: str
    stats: str
    config: str

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["listen"] = list(self.listen)
        return out


@dataclass(frozen=True)
class Applied:
    """What one :meth:`~reconciler.targets.envoy.mesh.LocalMesh.apply` did, proxy ids per
    outcome."""

    generation: int
    started: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    stopped: tuple[str, ...] = ()
    apps_started: tuple[str, ...] = ()
    apps_stopped: tuple[str, ...] = ()
    notes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.started or self.updated or self.stopped or self.apps_started
                    or self.apps_stopped)

    def summary(self) -> dict[str, int]:
        return {"started": len(self.started), "updated": len(self.updated),
                "unchanged": len(self.unchanged), "stopped": len(self.stopped),
                "apps started": len(self.apps_started), "apps stopped": len(self.apps_stopped)}


def table_rows(spec: MeshSpec, placement: LocalPlacement,
               proxies: Mapping[str, tuple[ProxyConfig | None, str]],
               apps: Mapping[WorkloadKey, LocalApp], versions: Mapping[str, str]) -> list[Row]:
    """A row per running proxy (``proxies``: its config and admin URL): gateways, then
    waypoints, then each workload's sidecar (or L4 proxy in an ambient namespace)."""
    rows: list[Row] = []
    for name, gateway in sorted(placement.gateways.items()):
        pid = next((p for p, (config, _) in proxies.items()
                    if config is not None and config.gateway == name), None)
        if pid is None:
            continue
        admin = proxies[pid][1]
        listen = tuple(f"{gateway_scheme(spec, name, n)}://127.0.0.1:{p}"
                       for n, p in sorted(gateway.ports.items()))
        rows.append(Row(pid, ProxyKind.GATEWAY.value, spec.root_namespace, name, "",
                        "", "", listen, admin, f"{admin}/stats/prometheus",
                        versions.get(pid, "")))
    for waypoint, placed in sorted(placement.waypoints.items()):
        if waypoint.proxy_id not in proxies:
            continue
        admin = proxies[waypoint.proxy_id][1]
        listen = tuple(f"127.0.0.1:{port} ({service}{f' {subset}' if subset else ''}:{number})"
                       for (service, number, subset), port in sorted(placed.listeners.items()))
        rows.append(Row(waypoint.proxy_id, ProxyKind.WAYPOINT.value, waypoint.namespace,
                        waypoint.name, "", "", "", listen, admin, f"{admin}/stats/prometheus",
                        versions.get(waypoint.proxy_id, "")))
    for key, where in sorted(placement.sidecars.items()):
        if key.proxy_id not in proxies:
            continue
        run = local_run(spec, key)
        app = apps.get(key)
        state = (f"pid {app.pid}" if app is not None and app.running()
                 else "external" if run is not None and run.address
                 else "exited" if app is not None else "no local run")
        config, admin = proxies[key.proxy_id]
        kind = config.kind if config is not None else ProxyKind.SIDECAR
        rows.append(Row(key.proxy_id, kind.value, key.namespace, key.service,
                        key.version, str(where.app), state, (str(where.inbound),), admin,
                        f"{admin}/stats/prometheus", versions.get(key.proxy_id, "")))
    return rows


def gateway_scheme(spec: MeshSpec, gateway: str, port: int) -> str:
    """``https`` when a server of ``gateway`` on ``port`` terminates TLS, else ``http``."""
    servers = [s for gw in gateway_workloads(spec).get(gateway, [])
               for s in gw.servers if s.port.number == port]
    return "https" if any(s.port.protocol == "HTTPS" for s in servers) else "http"

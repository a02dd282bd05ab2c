"""The files a local Envoy reads: its bootstrap and file-based xDS (LDS, RDS, CDS).

The local mesh feeds Envoy through the filesystem instead of an xDS server: the bootstrap
points ``dynamic_resources`` at ``lds.yaml`` and ``cds.yaml`` (``path_config_source``), and
each file holds a DiscoveryResponse (``version_info`` + ``resources`` with ``@type``). Envoy
watches those paths with inotify and reloads when a file is *moved onto* them, so every
write here is "temp file in the same directory, then ``os.replace``"; an in-place edit is
never seen.

Route tables can be inline in a listener (``route_config``) or delivered by RDS. Prefer
RDS: a new inline route table means a new filter chain, and keep-alive connections keep the
old routes until they drain, while an RDS update applies to the next request on every
connection. A listener's HTTP connection manager names its table with
``rds: {route_config_name: NAME}`` and no ``config_source``; :func:`bind_rds` then points it
at this Envoy's ``rds/<NAME>.yaml`` (one file per table: Envoy's RDS rejects a file with
more than one resource).

Everything here but :func:`write_atomic` is pure: dicts in, dicts out.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "CLUSTER_TYPE",
    "HCM_TYPE",
    "LISTENER_TYPE",
    "ROUTE_TYPE",
    "SECRET_TYPE",
    "STATS_FLUSH_INTERVAL",
    "Resource",
    "bind_rds",
    "bootstrap",
    "by_name",
    "discovery_response",
    "file_config_source",
    "http_connection_managers",
    "inline_rds",
    "rds_file_name",
    "referenced_route_names",
    "render",
    "static_bootstrap",
    "typed",
    "write_atomic",
]

Resource = dict[str, Any]
"""One Envoy v3 resource as plain JSON-like data (a Listener, Cluster, Secret, ...)."""

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
STATS_FLUSH_INTERVAL = "1s"
"""How often a local Envoy merges histograms for its admin stats (Envoy's default: 5 s)."""

HCM_TYPE = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)


def typed(type_url: str, resource: Mapping[str, Any]) -> Resource:
    """A copy of ``resource`` carrying ``@type`` (required inside a DiscoveryResponse).

    A resource that already names a different type is a caller bug (a Cluster in the LDS
    file), so it raises instead of silently relabelling.
    """
    existing = resource.get("@type")
    if existing is not None and existing != type_url:
        raise ValueError(f"resource {resource.get('name')!r} is {existing}, expected {type_url}")
    out: Resource = {"@type": type_url}
    out.update((k, copy.deepcopy(v)) for k, v in resource.items() if k != "@type")
    return out


def discovery_response(
    type_url: str, resources: Sequence[Mapping[str, Any]], version: str
) -> Resource:
    """The document Envoy expects in a ``path_config_source`` file."""
    return {"version_info": version, "resources": [typed(type_url, r) for r in resources]}


def render(document: Mapping[str, Any]) -> str:
    """Deterministic YAML (sorted keys), so the same config gives byte-identical files."""
    return yaml.safe_dump(dict(document), sort_keys=True, default_flow_style=False)


def write_atomic(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` in one rename, which is what Envoy's watcher sees."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def file_config_source(path: Path) -> Resource:
    """An xDS ConfigSource that reads DiscoveryResponses from ``path``."""
    return {"resource_api_version": "V3", "path_config_source": {"path": str(path)}}


def rds_file_name(route_config_name: str) -> str:
    """A safe, stable, collision-free file name for one route table.

    Names like ``reviews.default.svc.cluster.local:9080`` stay readable; anything outside
    ``[A-Za-z0-9._-]`` is replaced and a short hash keeps distinct names distinct.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", route_config_name)[:80]
    digest = hashlib.sha256(route_config_name.encode()).hexdigest()[:8]
    return f"{safe}-{digest}.yaml"


def bootstrap(
    *,
    node_id: str,
    node_cluster: str,
    lds_path: Path,
    cds_path: Path,
    secrets: Sequence[Mapping[str, Any]] = (),
    static_clusters: Sequence[Mapping[str, Any]] = (),
    admin_port: int = 0,
    stats_flush_interval: str = STATS_FLUSH_INTERVAL,
) -> Resource:
    """The bootstrap of a file-fed Envoy: admin on loopback, LDS and CDS from files.

    ``secrets`` become ``static_resources.secrets``; a TLS context then refers to one by
    name alone (``tls_certificate_sds_secret_configs: [{name: default}]``, no
    ``sds_config``), the way Istio's proxies refer to ``default`` and ``ROOTCA``.
    ``admin_port=0`` lets Envoy pick a port (read it back with ``--admin-address-path``).

    ``stats_flush_interval`` is how often Envoy merges its histograms into what
    ``/stats/prometheus`` shows (counters are live). Envoy's default of 5 s would leave a
    canary's latency check without data for up to 5 s after each step; a local sidecar has
    a few hundred stats, so merging every second costs nothing measurable.
    """
    return {
        "node": {"id": node_id, "cluster": node_cluster},
        "stats_flush_interval": stats_flush_interval,
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "dynamic_resources": {
            "lds_config": file_config_source(lds_path),
            "cds_config": file_config_source(cds_path),
        },
        "static_resources": {
            "clusters": [copy.deepcopy(dict(c)) for c in static_clusters],
            "secrets": [copy.deepcopy(dict(s)) for s in secrets],
        },
    }


def static_bootstrap(
    *,
    listeners: Sequence[Mapping[str, Any]],
    clusters: Sequence[Mapping[str, Any]],
    routes: Sequence[Mapping[str, Any]] = (),
    secrets: Sequence[Mapping[str, Any]] = (),
    node_id: str = "validate",
) -> Resource:
    """A bootstrap holding everything statically — what ``envoy --mode validate`` checks.

    RDS references are replaced by the matching route table from ``routes``.
    """
    return {
        "node": {"id": node_id, "cluster": node_id},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": inline_rds(listeners, routes),
            "clusters": [copy.deepcopy(dict(c)) for c in clusters],
            "secrets": [copy.deepcopy(dict(s)) for s in secrets],
        },
    }


def http_connection_managers(listener: Mapping[str, Any]) -> Iterator[Resource]:
    """Every HttpConnectionManager config in ``listener`` (all filter chains), for editing."""
    chains = list(listener.get("filter_chains", ()))
    if "default_filter_chain" in listener:
        chains.append(listener["default_filter_chain"])
    for chain in chains:
        for network_filter in chain.get("filters", ()):
            config = network_filter.get("typed_config")
            if isinstance(config, dict) and config.get("@type") == HCM_TYPE:
                yield config


def referenced_route_names(listeners: Sequence[Mapping[str, Any]]) -> set[str]:
    """Names of the route tables the listeners load through RDS."""
    names: set[str] = set()
    for listener in listeners:
        for hcm in http_connection_managers(listener):
            rds = hcm.get("rds")
            if isinstance(rds, dict) and "route_config_name" in rds:
                names.add(str(rds["route_config_name"]))
    return names


def bind_rds(
    listeners: Sequence[Mapping[str, Any]], path_for: Callable[[str], Path]
) -> list[Resource]:
    """Copies of ``listeners`` whose RDS references without a source read ``path_for(name)``.

    This keeps compiled listeners free of machine paths: the compiler names a route table,
    the target that owns the files decides where it lives.
    """
    out = [copy.deepcopy(dict(listener)) for listener in listeners]
    for listener in out:
        for hcm in http_connection_managers(listener):
            rds = hcm.get("rds")
            if isinstance(rds, dict) and "config_source" not in rds:
                rds["config_source"] = file_config_source(path_for(str(rds["route_config_name"])))
    return out


def inline_rds(
    listeners: Sequence[Mapping[str, Any]], routes: Sequence[Mapping[str, Any]]
) -> list[Resource]:
    """Copies of ``listeners`` with each RDS reference replaced by its route table."""
    by_name = {str(r["name"]): r for r in routes}
    out = [copy.deepcopy(dict(listener)) for listener in listeners]
    for listener in out:
        for hcm in http_connection_managers(listener):
            rds = hcm.get("rds")
            if not isinstance(rds, dict):
                continue
            name = str(rds.get("route_config_name"))
            if name not in by_name:
                raise ValueError(
                    f"listener {listener.get('name')!r} uses route table {name!r}, "
                    f"which is not among the routes given ({sorted(by_name)})"
                )
            del hcm["rds"]
            table = {k: copy.deepcopy(v) for k, v in by_name[name].items() if k != "@type"}
            hcm["route_config"] = table
    return out


def by_name(resources: Sequence[Mapping[str, Any]], kind: str) -> dict[str, Mapping[str, Any]]:
    """Resources keyed by their ``name``; a missing or repeated name is a ValueError that
    names the ``kind``."""
    out: dict[str, Mapping[str, Any]] = {}
    for resource in resources:
        name = resource.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"every {kind} needs a non-empty string 'name': {resource!r}")
        if name in out:
            raise ValueError(f"duplicate {kind} name {name!r}")
        out[name] = resource
    return out

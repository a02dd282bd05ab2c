"""Helpers for the Envoy compiler's unit tests: placements with made-up ports and file
names (the compiler never opens them), and quick access to one proxy's resources."""

from __future__ import annotations

import itertools
from typing import Any

from meshdsl.compile.envoy import CertFiles, LocalPlacement, ProxyConfig, allocate, compile_local
from meshdsl.compile.envoy.placement import WorkloadKey
from meshdsl.model.spec import MeshSpec

CA = "/pki/ca.crt"


def _identity(spiffe_id: str) -> CertFiles:
    stem = spiffe_id.removeprefix("spiffe://").replace("/", "_")
    return CertFiles(f"/pki/{stem}.crt", f"/pki/{stem}.key")


def _credential(name: str, hosts: list[str]) -> CertFiles:
    return CertFiles(f"/pki/{name}.crt", f"/pki/{name}.key", CA)


def placement(spec: MeshSpec, *, pki: bool = True,
              workloads: list[WorkloadKey] | None = None) -> LocalPlacement:
    """Ports counting up from 20000, certificates under /pki (when ``pki``)."""
    return allocate(spec, itertools.count(20000), workloads=workloads,
                    ca_cert=CA if pki else None, identity=_identity if pki else None,
                    credential=_credential)


def proxies(spec: MeshSpec, *, pki: bool = True, **kwargs: Any) -> dict[str, ProxyConfig]:
    return compile_local(spec, placement(spec, pki=pki), **kwargs)


def routes_of(proxy: ProxyConfig, table: str) -> list[dict[str, Any]]:
    """The routes of the single virtual host of a route table."""
    hosts = proxy.route_table(table)["virtual_hosts"]
    assert len(hosts) == 1
    return list(hosts[0]["routes"])


def hcm(listener: dict[str, Any], chain: int = 0) -> dict[str, Any]:
    """The HTTP connection manager config of a listener's filter chain."""
    return dict(listener["filter_chains"][chain]["filters"][0]["typed_config"])


def http_filter_names(listener: dict[str, Any], chain: int = 0) -> list[str]:
    return [f["name"] for f in hcm(listener, chain)["http_filters"]]


def http_filter(listener: dict[str, Any], name: str, index: int = 0) -> dict[str, Any]:
    found = [f["typed_config"] for f in hcm(listener)["http_filters"] if f["name"] == name]
    return dict(found[index])

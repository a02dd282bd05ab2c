"""Host names as Istio compares them: FQDN resolution and wildcard matching."""

from __future__ import annotations

from meshdsl.model.spec import MeshSpec


def fqdn(mesh: MeshSpec, host: str, namespace: str) -> str:
    """The cluster-local FQDN a short or namespaced service host stands for."""
    ns, name = mesh.resolve_host(host, namespace)
    return f"{name}.{ns}.svc.cluster.local" if ns else host


def matches(pattern: str, host: str) -> bool:
    """Does a gateway/server host pattern (maybe ``*`` or ``*.example.com``) cover host?"""
    if pattern == "*" or pattern == host:
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) or (host.startswith("*.") and
                                              host.endswith(pattern[1:]))
    if host.startswith("*.") and pattern.endswith(host[1:]):
        return True
    return host == "*"


def overlap(a: str, b: str) -> bool:
    return matches(a, b) or matches(b, a)


def server_host(host: str) -> str:
    """A Gateway server host may be ``namespace/host``; the namespace part does not match."""
    return host.split("/", 1)[1] if "/" in host else host

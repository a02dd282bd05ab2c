"""istioctl's Service port name analyzer, on the input objects.

A Service port whose protocol Istio cannot tell gets protocol sniffing (IST0118, MD146).
Istio reads the protocol from ``appProtocol`` when it is set, else from the port name's
prefix before ``-`` (``http``, ``http2``, ``https``, ``grpc``, ``grpc-web``, ``tcp``,
``tls``, ``udp``, ``mongo``, ``redis``, ``mysql``, ``http_proxy``; any case), with
``kubernetes.io/h2c``, ``kubernetes.io/ws`` and ``kubernetes.io/wss`` understood as
``appProtocol``; UDP ports and the well-known ports 25, 53, 3306 and 27017 need no name.
Skipped as istioctl skips them: Istio's own Services (an ``istio`` label, or
``release: istio``), Services of Istio-managed gateways and waypoints
(``gateway.istio.io/managed``), and ``ExternalName`` Services (istioctl has another
message for those).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshdsl.analyzers.gateways import labels
from meshdsl.analyzers.registry import Registry, dicts
from meshdsl.validate.findings import Finding, info

_PROTOCOLS = frozenset({"tcp", "udp", "grpc", "grpc-web", "http", "http_proxy", "http2",
                        "https", "tls", "mongo", "redis", "mysql"})
_KUBERNETES = frozenset({"kubernetes.io/h2c", "kubernetes.io/ws", "kubernetes.io/wss"})
_WELL_KNOWN = frozenset({25, 53, 3306, 27017})
_MANAGED = frozenset({"istio.io-gateway-controller", "istio.io-mesh-controller",
                      "istio.io-eastwest-controller"})


def named(port: dict[str, Any]) -> bool:
    """Whether Istio knows the port's protocol (``kube.ConvertProtocol`` is supported)."""
    if port.get("protocol") == "UDP":
        return True
    name = str(port.get("name", ""))
    if "appProtocol" in port and port["appProtocol"] is not None:
        name = str(port["appProtocol"])
        if name in _KUBERNETES:
            return True
    if name[:8].lower() == "grpc-web":
        return True
    return name.partition("-")[0].lower() in _PROTOCOLS or port.get("port") in _WELL_KNOWN


def check(registry: Registry) -> Iterator[Finding]:
    for svc in registry.of("Service"):
        tags = labels(svc.metadata.get("labels"))
        if "istio" in tags or tags.get("release") == "istio" or \
                tags.get("gateway.istio.io/managed") in _MANAGED or \
                svc.spec.get("type") == "ExternalName":
            continue
        for i, port in enumerate(dicts(svc.spec.get("ports"))):
            if not named(port):
                yield info("MD146", f"{svc} ports[{i}]",
                           f"Port name {port.get('name', '')!r} (port {port.get('port')}) "
                           "names no protocol: Istio sniffs it; name it like 'http-web' or "
                           "set appProtocol", svc.doc.where(("spec", "ports", i)))

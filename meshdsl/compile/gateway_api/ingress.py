"""An Istio ingress Gateway of an ambient namespace as a Gateway API ``Gateway``.

Class ``istio``: Istio deploys the gateway itself (the classic ``selector`` naming an
existing deployment has no equivalent and is dropped). Each server host becomes a
listener — ``*`` means no hostname — named after the server port (``http``, ``http-1``…);
HTTPS terminates with the server's credential as a Secret reference, TLS passthrough
becomes a TLS listener in ``Passthrough`` mode. Routes from other namespaces are admitted
(``allowedRoutes: All``) only when some route of the mesh in another namespace binds.
An HTTP server with ``https_redirect`` gets an HTTPRoute answering 301 to https.
"""

from __future__ import annotations

from typing import Any

from meshdsl.compile.gateway_api.refs import API, GROUP, obj
from meshdsl.model.gateway import Gateway, Server
from meshdsl.model.spec import MeshSpec

Manifest = dict[str, Any]
_PROTOCOLS = {"HTTP": "HTTP", "HTTP2": "HTTP", "GRPC": "HTTP", "HTTPS": "HTTPS",
              "TCP": "TCP", "TLS": "TLS", "MONGO": "TCP"}
SUPPORTED_TLS = (None, "SIMPLE", "PASSTHROUGH")


def _bound_from_elsewhere(mesh: MeshSpec, gw: Gateway) -> bool:
    full = f"{gw.namespace}/{gw.name}"
    return any(vs.namespace != gw.namespace and full in vs.gateways
               for vs in mesh.virtual_services)


def _listener(server: Server, host: str, name: str, cross: bool) -> dict[str, Any]:
    protocol = _PROTOCOLS[server.port.protocol]
    tls_mode = server.tls.mode if server.tls is not None else None
    if protocol == "HTTPS" and tls_mode == "PASSTHROUGH":
        protocol = "TLS"
    out: dict[str, Any] = {"name": name}
    if host != "*":
        out["hostname"] = host.split("/")[-1]
    out["port"] = server.port.number
    out["protocol"] = protocol
    if protocol == "TLS" or (protocol == "HTTPS" and server.tls is not None):
        tls: dict[str, Any] = {"mode": "Passthrough" if tls_mode == "PASSTHROUGH"
                               else "Terminate"}
        if tls["mode"] == "Terminate" and server.tls is not None and server.tls.credential_name:
            tls["certificateRefs"] = [{"group": "", "kind": "Secret",
                                       "name": server.tls.credential_name}]
        out["tls"] = tls
    if cross:
        out["allowedRoutes"] = {"namespaces": {"from": "All"}}
    return out


def listener_names(gw: Gateway) -> list[tuple[Server, str, str]]:
    """(server, host, listener name) in declaration order, names unique."""
    out: list[tuple[Server, str, str]] = []
    used: set[str] = set()
    for server in gw.servers:
        for host in server.hosts:
            base = (server.name or server.port.name).lower().replace("_", "-")
            name, n = base, 0
            while name in used:
                n += 1
                name = f"{base}-{n}"
            used.add(name)
            out.append((server, host, name))
    return out


def gateway(mesh: MeshSpec, gw: Gateway, owned: dict[str, str]) -> list[Manifest]:
    cross = _bound_from_elsewhere(mesh, gw)
    named = listener_names(gw)
    spec = {"gatewayClassName": "istio",
            "listeners": [_listener(s, h, n, cross) for s, h, n in named]}
    out = [obj(API, "Gateway", gw.name, gw.namespace, owned, spec)]
    redirects = [n for s, _, n in named if s.tls is not None and s.tls.https_redirect]
    if redirects:
        route = {"parentRefs": [{"group": GROUP, "kind": "Gateway", "name": gw.name,
                                 "sectionName": n} for n in redirects],
                 "rules": [{"filters": [{"type": "RequestRedirect", "requestRedirect": {
                     "scheme": "https", "statusCode": 301}}]}]}
        out.append(obj(API, "HTTPRoute", f"{gw.name}-https-redirect", gw.namespace, owned,
                       route))
    return out

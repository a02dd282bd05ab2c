"""The edge of the mesh (Istio's Gateway): which ports, protocols, hosts and TLS."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from meshdsl.model.base import Declared, Frozen

# The label Istio puts on the pods it deploys for a Gateway API Gateway: a policy that
# selects it is the gateway's own, attached by ``targetRefs`` in an ambient namespace.
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"

Protocol = Literal["HTTP", "HTTPS", "HTTP2", "GRPC", "TCP", "TLS", "MONGO"]
ServerTlsMode = Literal["PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL"]


class ServerPort(Frozen):
    number: int = Field(ge=1, le=65535)
    name: str
    protocol: Protocol


class ServerTls(Frozen):
    mode: ServerTlsMode | None = None
    credential_name: str | None = None
    https_redirect: bool | None = None
    min_protocol_version: str | None = None


class Server(Frozen):
    port: ServerPort
    hosts: list[str] = Field(min_length=1)
    tls: ServerTls | None = None
    name: str | None = None


class Gateway(Declared):
    name: str
    namespace: str
    selector: dict[str, str] = Field(default_factory=lambda: {"istio": "ingressgateway"})
    servers: list[Server] = Field(default_factory=list)

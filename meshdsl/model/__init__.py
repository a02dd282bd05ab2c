"""The typed model of a mesh: frozen values (``*Spec`` and Istio-shaped objects) and the
builders (``Mesh``, ``Service``, …) that a mesh program uses to declare them."""

from meshdsl.model.base import SourceLocation
from meshdsl.model.builder import (
    Authorization,
    GatewayBuilder,
    Mesh,
    Namespace,
    Routes,
    Service,
    SubsetRef,
)
from meshdsl.model.canary import (
    CanaryPlan,
    HeaderStage,
    LatencyP99,
    MetricCheck,
    MirrorStage,
    Step,
    SuccessRate,
    Webhook,
)
from meshdsl.model.gateway import Gateway, Server, ServerPort, ServerTls
from meshdsl.model.matching import (
    Authority,
    Caller,
    Header,
    L4Match,
    Match,
    Method,
    Port,
    Query,
    StringMatch,
    Uri,
    WithoutHeader,
)
from meshdsl.model.policy import (
    ClientTls,
    ConnectionPool,
    ConsistentHash,
    DestinationRule,
    HttpCookie,
    HttpPool,
    LoadBalancer,
    OutlierDetection,
    Subset,
    TcpPool,
    TrafficPolicy,
)
from meshdsl.model.ratelimit import LocalRateLimit
from meshdsl.model.routing import (
    Abort,
    Cors,
    Delay,
    Destination,
    Fault,
    HeaderOps,
    Headers,
    HttpRoute,
    Redirect,
    Retries,
    Rewrite,
    TcpRoute,
    VirtualService,
)
from meshdsl.model.security import (
    AuthorizationPolicy,
    From,
    PeerAuthentication,
    Rule,
    ServiceRef,
    To,
    When,
)
from meshdsl.model.service import LocalRun, NamespaceSpec, ServicePort, ServiceSpec, Version, Workload
from meshdsl.model.spec import MeshSpec

__all__ = [
    "Abort", "Authority", "Authorization", "AuthorizationPolicy", "CanaryPlan", "Caller",
    "ClientTls", "ConnectionPool", "ConsistentHash", "Cors", "Delay", "Destination",
    "DestinationRule", "Fault", "From", "Gateway", "GatewayBuilder", "Header", "HeaderOps",
    "HeaderStage", "Headers", "HttpCookie", "HttpPool", "HttpRoute", "L4Match",
    "LatencyP99", "LoadBalancer", "LocalRateLimit", "LocalRun", "Match", "Mesh", "MeshSpec",
    "Method", "MetricCheck", "MirrorStage", "Namespace", "NamespaceSpec", "OutlierDetection",
    "PeerAuthentication", "Port", "Query", "Redirect", "Retries", "Rewrite", "Routes", "Rule",
    "Server", "ServerPort", "ServerTls", "Service", "ServicePort", "ServiceRef", "ServiceSpec",
    "SourceLocation", "Step", "StringMatch", "Subset", "SubsetRef", "SuccessRate", "TcpPool",
    "TcpRoute", "To", "TrafficPolicy", "Uri", "Version", "VirtualService", "Webhook", "When",
    "WithoutHeader", "Workload",
]

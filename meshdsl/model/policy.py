"""How clients connect to a service (Istio's DestinationRule): connection pools, load
balancing, outlier detection, client TLS, and the subsets that versions become."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from meshdsl.model.base import Declared, Frozen


class TcpPool(Frozen):
    max_connections: int | None = Field(default=None, ge=1)
    connect_timeout: str | None = None


class HttpPool(Frozen):
    http1_max_pending_requests: int | None = Field(default=None, ge=1)
    http2_max_requests: int | None = Field(default=None, ge=1)
    max_requests_per_connection: int | None = Field(default=None, ge=0)
    max_retries: int | None = Field(default=None, ge=0)
    idle_timeout: str | None = None


class ConnectionPool(Frozen):
    tcp: TcpPool | None = None
    http: HttpPool | None = None


class HttpCookie(Frozen):
    name: str
    ttl: str | None = None
    path: str | None = None


class ConsistentHash(Frozen):
    """Sticky sessions: exactly one of cookie, header, source IP or query parameter."""

    http_cookie: HttpCookie | None = None
    http_header_name: str | None = None
    use_source_ip: bool | None = None
    http_query_parameter_name: str | None = None
    minimum_ring_size: int | None = None

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        keys = [self.http_cookie, self.http_header_name, self.use_source_ip,
                self.http_query_parameter_name]
        if sum(k is not None for k in keys) != 1:
            raise ValueError(
                "consistent hash needs exactly one of http_cookie=, http_header_name=, "
                "use_source_ip=, http_query_parameter_name="
            )
        return self


LbAlgorithm = Literal["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "PASSTHROUGH", "UNSPECIFIED"]


class LoadBalancer(Frozen):
    simple: LbAlgorithm | None = None
    consistent_hash: ConsistentHash | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.simple is None) == (self.consistent_hash is None):
            raise ValueError("a load balancer is either simple= or consistent_hash=, exactly one")
        return self


class OutlierDetection(Frozen):
    consecutive_5xx_errors: int | None = Field(
        default=None, ge=0, alias="consecutive5xxErrors")
    consecutive_gateway_errors: int | None = Field(default=None, ge=0)
    interval: str | None = None
    base_ejection_time: str | None = None
    max_ejection_percent: int | None = Field(default=None, ge=0, le=100)
    min_health_percent: int | None = Field(default=None, ge=0, le=100)


ClientTlsMode = Literal["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]


class ClientTls(Frozen):
    mode: ClientTlsMode
    credential_name: str | None = None
    sni: str | None = None
    subject_alt_names: list[str] = Field(default_factory=list)


class TrafficPolicy(Frozen):
    connection_pool: ConnectionPool | None = None
    load_balancer: LoadBalancer | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTls | None = None

    def is_empty(self) -> bool:
        """No setting at all: every field None (what a dump without None would say,
        without making the dump)."""
        return all(value is None for value in self.__dict__.values())


class Subset(Frozen):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    traffic_policy: TrafficPolicy | None = None


class DestinationRule(Declared):
    name: str
    namespace: str
    host: str
    traffic_policy: TrafficPolicy | None = None
    subsets: list[Subset] = Field(default_factory=list)
    export_to: list[str] = Field(default_factory=list)

"""What happens to a matched request: destinations, retries, timeouts, faults, mirroring,
rewrites, redirects, header changes and CORS (Istio's HTTPRoute and TCPRoute)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from meshdsl.model.base import Declared, Frozen
from meshdsl.model.matching import L4Match, Match, StringMatch


class Destination(Frozen):
    """A service (by name or FQDN), optionally a subset and port, optionally a weight."""

    host: str
    subset: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    weight: int | None = None


class Retries(Frozen):
    attempts: int = Field(ge=0)
    per_try_timeout: str | None = None
    retry_on: str | None = None
    retry_remote_localities: bool | None = None


class Delay(Frozen):
    """Inject a fixed delay into ``percent`` of requests (all when unset)."""

    fixed: str
    percent: float | None = Field(default=None, ge=0, le=100)


class Abort(Frozen):
    """Answer ``percent`` of requests (all when unset) with an HTTP status, upstream untouched."""

    status: int = Field(ge=200, le=599)
    percent: float | None = Field(default=None, ge=0, le=100)


class Fault(Frozen):
    delay: Delay | None = None
    abort: Abort | None = None


class HeaderOps(Frozen):
    set: dict[str, str] = Field(default_factory=dict)
    add: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


class Headers(Frozen):
    request: HeaderOps | None = None
    response: HeaderOps | None = None


class Rewrite(Frozen):
    uri: str | None = None
    authority: str | None = None


class Redirect(Frozen):
    uri: str | None = None
    authority: str | None = None
    scheme: str | None = None
    port: int | None = None
    redirect_code: int | None = Field(default=None, ge=300, le=399)


class Cors(Frozen):
    allow_origins: list[StringMatch] = Field(default_factory=list)
    allow_methods: list[str] = Field(default_factory=list)
    allow_headers: list[str] = Field(default_factory=list)
    expose_headers: list[str] = Field(default_factory=list)
    max_age: str | None = None
    allow_credentials: bool | None = None


class HttpRoute(Declared):
    """One entry of a VirtualService's ``http`` list; order matters, first match wins."""

    name: str | None = None
    match: list[Match] = Field(default_factory=list)
    to: list[Destination] = Field(default_factory=list)
    timeout: str | None = None
    retries: Retries | None = None
    fault: Fault | None = None
    mirror: Destination | None = None
    mirror_percent: float | None = Field(default=None, ge=0, le=100)
    rewrite: Rewrite | None = None
    redirect: Redirect | None = None
    headers: Headers | None = None
    cors: Cors | None = None

    @model_validator(mode="after")
    def _route_or_redirect(self) -> Self:
        if self.redirect is not None and self.to:
            raise ValueError("a route either redirects or sends traffic 'to' a destination, not both")
        if self.redirect is None and not self.to:
            raise ValueError("a route needs 'to=' (a destination) or 'redirect='")
        return self

    def is_catch_all(self) -> bool:
        for match in self.match:
            if match.is_catch_all():
                return True
        return not self.match


class TcpRoute(Declared):
    match: list[L4Match] = Field(default_factory=list)
    to: list[Destination] = Field(min_length=1)


class VirtualService(Declared):
    """Routing for a set of hosts, in the mesh or behind gateways."""

    name: str
    namespace: str
    hosts: list[str] = Field(min_length=1)
    gateways: list[str] = Field(default_factory=list)
    http: list[HttpRoute] = Field(default_factory=list)
    tcp: list[TcpRoute] = Field(default_factory=list)
    export_to: list[str] = Field(default_factory=list)

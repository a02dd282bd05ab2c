"""Who may talk to whom: mutual TLS (PeerAuthentication) and AuthorizationPolicy.

``From(services=[orders])`` names calling services; the compiler turns them into SPIFFE
principals ``<trust-domain>/ns/<namespace>/sa/<service account>``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from meshdsl.model.base import Declared, Frozen

MtlsMode = Literal["STRICT", "PERMISSIVE", "DISABLE", "UNSET"]
Action = Literal["ALLOW", "DENY", "AUDIT", "CUSTOM"]


class PeerAuthentication(Declared):
    """Mesh-wide (root namespace, no selector), namespace-wide, or for one workload."""

    name: str
    namespace: str
    mode: MtlsMode | None = None
    selector: dict[str, str] = Field(default_factory=dict)
    port_level_mtls: dict[int, MtlsMode] = Field(default_factory=dict)


class ServiceRef(Frozen):
    """A calling service, resolved to a principal at compile time."""

    name: str
    namespace: str | None = None


class From(Frozen):
    principals: list[str] = Field(default_factory=list)
    not_principals: list[str] = Field(default_factory=list)
    services: list[ServiceRef] = Field(default_factory=list)
    request_principals: list[str] = Field(default_factory=list)
    not_request_principals: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list)
    not_namespaces: list[str] = Field(default_factory=list)
    ip_blocks: list[str] = Field(default_factory=list)
    not_ip_blocks: list[str] = Field(default_factory=list)
    remote_ip_blocks: list[str] = Field(default_factory=list)
    not_remote_ip_blocks: list[str] = Field(default_factory=list)


class To(Frozen):
    hosts: list[str] = Field(default_factory=list)
    not_hosts: list[str] = Field(default_factory=list)
    ports: list[int | str] = Field(default_factory=list)
    not_ports: list[int | str] = Field(default_factory=list)
    methods: list[str] = Field(default_factory=list)
    not_methods: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    not_paths: list[str] = Field(default_factory=list)


class When(Frozen):
    key: str
    values: list[str] = Field(default_factory=list)
    not_values: list[str] = Field(default_factory=list)


class Rule(Frozen):
    """Sources (any of), operations (any of) and conditions (all of)."""

    from_: list[From] = Field(default_factory=list, alias="from")
    to: list[To] = Field(default_factory=list)
    when: list[When] = Field(default_factory=list)


class AuthorizationPolicy(Declared):
    name: str
    namespace: str
    action: Action | None = None
    selector: dict[str, str] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
    provider: str | None = None

"""Security consistency: STRICT mTLS against DestinationRules that turn TLS off, and
authorization rules that use HTTP-only fields for workloads that only speak TCP."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from meshdsl.model.policy import DestinationRule, TrafficPolicy
from meshdsl.model.security import PeerAuthentication
from meshdsl.model.service import ServiceSpec
from meshdsl.model.spec import MeshSpec
from meshdsl.validate.findings import Finding, error

_HTTP_ONLY_TO = ("hosts", "not_hosts", "methods", "not_methods", "paths", "not_paths")
_HTTP_ONLY_FROM = ("request_principals", "not_request_principals")


def effective_mtls(mesh: MeshSpec, svc: ServiceSpec,
                   by_namespace: Mapping[str, Sequence[PeerAuthentication]] | None = None
                   ) -> str | None:
    """The PeerAuthentication mode that applies to a service's workloads (most specific).

    ``by_namespace`` (from :func:`peer_auths_by_namespace`) spares a scan of every policy
    per service; the answer is the same."""
    selector = {svc.app_label: svc.name}
    by_scope: dict[int, str] = {}
    candidates = mesh.peer_authentications if by_namespace is None else [
        *by_namespace.get(svc.namespace, ()),
        *(by_namespace.get(mesh.root_namespace, ()) if svc.namespace != mesh.root_namespace
          else ())]
    for pa in candidates:
        if pa.mode is None:
            continue
        if pa.namespace == svc.namespace and pa.selector:
            if all(selector.get(k) == v for k, v in pa.selector.items()):
                by_scope[0] = pa.mode
        elif pa.namespace == svc.namespace:
            by_scope[1] = pa.mode
        elif pa.namespace == mesh.root_namespace and not pa.selector:
            by_scope[2] = pa.mode
    for scope in (0, 1, 2):
        if scope in by_scope:
            return by_scope[scope]
    return None


def peer_auths_by_namespace(mesh: MeshSpec) -> dict[str, list[PeerAuthentication]]:
    """The mesh's PeerAuthentications by namespace, in declaration order."""
    index: dict[str, list[PeerAuthentication]] = {}
    for pa in mesh.peer_authentications:
        index.setdefault(pa.namespace, []).append(pa)
    return index


def _tls_disabled(policy: TrafficPolicy | None) -> bool:
    return policy is not None and policy.tls is not None and policy.tls.mode == "DISABLE"


def _policies(dr: DestinationRule) -> Iterator[tuple[str, TrafficPolicy | None]]:
    """(where, policy) of a DestinationRule's traffic policies, its subsets' after its own."""
    yield "trafficPolicy", dr.traffic_policy
    for subset in dr.subsets:
        if subset.traffic_policy is not None:
            yield f"subsets[{subset.name}]", subset.traffic_policy


def _tcp_only(svc: ServiceSpec) -> bool:
    for port in svc.ports:
        if port.is_http:
            return False
    return bool(svc.ports)


def _selected(mesh: MeshSpec, namespace: str, selector: dict[str, str]) -> list[ServiceSpec]:
    if len(selector) == 1 and "app" in selector:  # the common case: one service's workloads
        svc = mesh.service(namespace, selector["app"])
        return [svc] if svc is not None and svc.app_label == "app" else []
    return [s for s in mesh.services if s.namespace == namespace
            and all({s.app_label: s.name}.get(k) == v for k, v in selector.items())]


def check(mesh: MeshSpec) -> Iterator[Finding]:
    by_namespace = peer_auths_by_namespace(mesh)
    for dr in mesh.destination_rules:
        disabled = [where for where, policy in _policies(dr) if _tls_disabled(policy)]
        if not disabled:
            continue  # the common case, answered before resolving the host
        ns, name = mesh.resolve_host(dr.host, dr.namespace)
        svc = mesh.service(ns, name)
        if svc is None or effective_mtls(mesh, svc, by_namespace) != "STRICT":
            continue
        for where in disabled:
            yield error("MD110", f"DestinationRule {dr.namespace}/{dr.name} {where}.tls",
                        f"TLS is DISABLEd toward {name!r}, whose workloads require STRICT "
                        "mTLS: every request would be refused; use ISTIO_MUTUAL or drop "
                        "the tls setting", dr.source)
    for ap in mesh.authorization_policies:
        targets = _selected(mesh, ap.namespace, ap.selector) if ap.selector else []
        tcp_only = [s for s in targets if _tcp_only(s)]
        if not tcp_only:
            continue
        for i, rule in enumerate(ap.rules):
            fields = [f for op in rule.to for f in _HTTP_ONLY_TO if getattr(op, f)]
            fields += [f for src in rule.from_ for f in _HTTP_ONLY_FROM if getattr(src, f)]
            if fields:
                yield error("MD111", f"AuthorizationPolicy {ap.namespace}/{ap.name} rules[{i}]",
                            f"{', '.join(sorted(set(fields)))} only apply to HTTP, but "
                            f"{', '.join(s.name for s in tcp_only)} serves TCP only; Istio "
                            "would ignore this rule (for ALLOW: deny all). Use ports or "
                            "principals, or name the port http-*", ap.source)

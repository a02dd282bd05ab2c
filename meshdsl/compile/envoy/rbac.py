"""AuthorizationPolicy as Envoy's RBAC filter, with Istio's evaluation order.

A workload is governed by the policies in its namespace whose selector matches it (no
selector: all) and by those in the root namespace. Like istiod, we emit up to three RBAC
filters, in order: DENY (any matching rule rejects with 403), ALLOW (when any ALLOW policy
exists, a request must match one of its rules; an ALLOW policy without rules allows
nothing), and LOG for AUDIT policies. CUSTOM policies need an external authorizer that the
local mesh does not have; they are enforced as DENY (fail closed) and noted.

Sources are SPIFFE identities taken from the peer certificate of the mTLS connection:
``principals`` match ``spiffe://<principal>`` (``*`` wildcards as prefix/suffix), namespaces
match ``.*/ns/<ns>/.*``. Ports name the workload's own ports; the local inbound listener has
a loopback port of its own, so a policy port of this workload matches that listener and any
other port never matches.

Conditions (``when``) supported: ``request.headers[<name>]``, ``source.namespace``,
``source.principal``, ``source.ip``, ``remote.ip``, ``destination.port``,
``connection.sni``. Anything else (JWT ``request.auth.*`` and request principals among
them) is handled as Istio handles fields it cannot apply: an ALLOW rule using it never
matches, a DENY rule ignores it — both err on the side of denying.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from meshdsl.compile.envoy import protos
from meshdsl.compile.envoy.protos import Resource
from meshdsl.compile.envoy.topology import selects
from meshdsl.model.security import AuthorizationPolicy, From, Rule, To, When
from meshdsl.model.spec import MeshSpec

_HEADER_KEY = re.compile(r"^request\.headers\[(.+)\]$")
_ANY: Resource = {"any": True}
_NEVER: Resource = {"not_rule": {"any": True}}


class _Unsupported(Exception):
    """A field this compiler cannot express; the caller decides how to fail closed."""


def applicable(spec: MeshSpec, namespace: str,
               labels: Mapping[str, str]) -> list[AuthorizationPolicy]:
    """Policies that govern a workload (its namespace's and the root namespace's)."""
    return [ap for ap in spec.authorization_policies
            if ap.namespace in (namespace, spec.root_namespace)
            and (not ap.selector or selects(ap.selector, labels))]


def wildcard(value: str, *, prefix: str = "") -> Resource:
    """Istio's string form: ``*`` (present), ``abc*`` (prefix), ``*abc`` (suffix), exact."""
    if value == "*":
        return {"safe_regex": {"regex": ".+"}}
    if value.endswith("*"):
        return {"prefix": prefix + value[:-1]}
    if value.startswith("*"):
        return {"suffix": value[1:]}
    return {"exact": prefix + value}


def _either(kind: str, items: Sequence[Resource]) -> Resource:
    key = "ids" if kind == "or_ids" else "rules"
    return items[0] if len(items) == 1 else {kind: {key: list(items)}}


def _all(kind: str, items: Sequence[Resource]) -> Resource:
    key = "ids" if kind == "and_ids" else "rules"
    if not items:
        return dict(_ANY)
    return items[0] if len(items) == 1 else {kind: {key: list(items)}}


def _principal(value: str) -> Resource:
    return {"authenticated": {"principal_name": wildcard(value, prefix="spiffe://")}}


def _namespace(value: str) -> Resource:
    pattern = ".*" if value == "*" else re.escape(value).replace(r"\*", "[^/]*")
    return {"authenticated": {"principal_name": {"safe_regex": {
        "regex": f".*/ns/{pattern}/.*"}}}}


def _cidr(block: str) -> Resource:
    net = ipaddress.ip_network(block, strict=False)
    return {"address_prefix": str(net.network_address), "prefix_len": net.prefixlen}


def _direct_ip(block: str) -> Resource:
    return {"direct_remote_ip": _cidr(block)}


def _remote_ip(block: str) -> Resource:
    return {"remote_ip": _cidr(block)}


def _header(name: str, value: str) -> Resource:
    return {"header": {"name": name, "string_match": wildcard(value)}}


@dataclass(frozen=True)
class _Scope:
    """The workload's side of the match: its own ports and its inbound listener port."""

    own_ports: Collection[int]
    listener_port: int

    def port(self, value: int | str) -> Resource:
        number = int(value)
        return {"destination_port": self.listener_port} if number in self.own_ports else _NEVER


def _field(kind: str, values: Sequence[str], make: Callable[[str], Resource],
           negate: bool) -> list[Resource]:
    if not values:
        return []
    either = _either(kind, [make(v) for v in values])
    if not negate:
        return [either]
    return [{"not_id": either}] if kind == "or_ids" else [{"not_rule": either}]


def _source(frm: From, spec: MeshSpec, namespace: str) -> Resource:
    if frm.request_principals or frm.not_request_principals:
        raise _Unsupported("request principals (JWT)")
    principals = list(frm.principals)
    for ref in frm.services:
        ns = ref.namespace or namespace
        svc = spec.service(ns, ref.name)
        principals.append(f"{spec.trust_domain}/ns/{ns}/sa/{svc.account if svc else ref.name}")
    ids = _field("or_ids", principals, _principal, False)
    ids += _field("or_ids", frm.not_principals, _principal, True)
    ids += _field("or_ids", frm.namespaces, _namespace, False)
    ids += _field("or_ids", frm.not_namespaces, _namespace, True)
    ids += _field("or_ids", frm.ip_blocks, _direct_ip, False)
    ids += _field("or_ids", frm.not_ip_blocks, _direct_ip, True)
    ids += _field("or_ids", frm.remote_ip_blocks, _remote_ip, False)
    ids += _field("or_ids", frm.not_remote_ip_blocks, _remote_ip, True)
    return _all("and_ids", ids)


def _path(value: str) -> Resource:
    if value == "*":
        return dict(_ANY)
    return {"url_path": {"path": wildcard(value)}}


def _host(value: str) -> Resource:
    return {"header": {"name": ":authority",
                       "string_match": {**wildcard(value), "ignore_case": True}}}


def _operation(op: To, scope: _Scope) -> Resource:
    rules = _field("or_rules", op.hosts, _host, False)
    rules += _field("or_rules", op.not_hosts, _host, True)
    rules += _field("or_rules", [str(p) for p in op.ports], scope.port, False)
    rules += _field("or_rules", [str(p) for p in op.not_ports], scope.port, True)
    rules += _field("or_rules", op.methods, lambda m: _header(":method", m), False)
    rules += _field("or_rules", op.not_methods, lambda m: _header(":method", m), True)
    rules += _field("or_rules", op.paths, _path, False)
    rules += _field("or_rules", op.not_paths, _path, True)
    return _all("and_rules", rules)


def _condition(when: When, scope: _Scope) -> tuple[str, list[Resource]]:
    """One ``when`` as ("ids", principals) or ("rules", permissions)."""
    header = _HEADER_KEY.match(when.key)
    makers: dict[str, tuple[str, Callable[[str], Resource]]] = {
        "source.namespace": ("or_ids", _namespace),
        "source.principal": ("or_ids", _principal),
        "source.ip": ("or_ids", _direct_ip),
        "remote.ip": ("or_ids", _remote_ip),
        "destination.port": ("or_rules", scope.port),
        "connection.sni": ("or_rules", lambda v: {"requested_server_name": wildcard(v)}),
    }
    if header is not None:
        name = header.group(1).strip("'\"").lower()
        kind, make = "or_ids", lambda v: _header(name, v)
    elif when.key in makers:
        kind, make = makers[when.key]
    else:
        raise _Unsupported(f"condition key {when.key!r}")
    found = _field(kind, when.values, make, False) + _field(kind, when.not_values, make, True)
    return ("ids" if kind == "or_ids" else "rules"), found


def _sources(rule: Rule, spec: MeshSpec, namespace: str) -> tuple[str, list[Resource]]:
    return "ids", [_either("or_ids", [_source(f, spec, namespace) for f in rule.from_])]


def _operations(rule: Rule, scope: _Scope) -> tuple[str, list[Resource]]:
    return "rules", [_either("or_rules", [_operation(o, scope) for o in rule.to])]


def _rule(rule: Rule, ap: AuthorizationPolicy, spec: MeshSpec, scope: _Scope,
          lenient: bool, notes: list[str]) -> Resource | None:
    """One Envoy policy; None when an ALLOW rule cannot be expressed (it never matches)."""
    parts: list[tuple[str, Callable[[], tuple[str, list[Resource]]]]] = []
    if rule.from_:
        parts.append(("from", partial(_sources, rule, spec, ap.namespace)))
    if rule.to:
        parts.append(("to", partial(_operations, rule, scope)))
    parts += [(f"when {w.key}", partial(_condition, w, scope)) for w in rule.when]
    ids: list[Resource] = []
    rules: list[Resource] = []
    for label, build in parts:
        try:
            side, found = build()
        except _Unsupported as err:
            where = f"AuthorizationPolicy {ap.namespace}/{ap.name} ({label})"
            if not lenient:
                notes.append(f"{where}: {err} is not supported locally; the rule never matches")
                return None
            notes.append(f"{where}: {err} is not supported locally; ignored, so the DENY "
                         "rule applies more broadly")
            continue
        (ids if side == "ids" else rules).extend(found)
    return {"permissions": [_all("and_rules", rules)], "principals": [_all("and_ids", ids)]}


def _policies(aps: Sequence[AuthorizationPolicy], spec: MeshSpec, scope: _Scope,
              lenient: bool, notes: list[str]) -> Resource:
    out: Resource = {}
    for ap in aps:
        for index, rule in enumerate(ap.rules):
            compiled = _rule(rule, ap, spec, scope, lenient, notes)
            if compiled is not None:
                out[f"ns[{ap.namespace}]-policy[{ap.name}]-rule[{index}]"] = compiled
    return out


def _filter(action: str, policies: Resource) -> Resource:
    return protos.filter_entry(protos.RBAC_FILTER, protos.RBAC,
                               rules={"action": action, "policies": policies})


def filters(spec: MeshSpec, namespace: str, labels: Mapping[str, str], *,
            own_ports: Collection[int], listener_port: int,
            notes: list[str]) -> list[Resource]:
    """The RBAC HTTP filters of one workload's inbound side (empty when no policy applies)."""
    return policy_filters(applicable(spec, namespace, labels), spec, own_ports=own_ports,
                          listener_port=listener_port, notes=notes)


def l4_allow(name: str, principals: Sequence[str]) -> Resource:
    """A network RBAC filter admitting only these peers (``<trust domain>/ns/../sa/..``),
    as ztunnel enforces an L4 ALLOW policy: a plaintext connection has no principal."""
    policy = {"permissions": [dict(_ANY)],
              "principals": [_either("or_ids", [_principal(p) for p in principals])]}
    return protos.filter_entry(protos.NETWORK_RBAC_FILTER, protos.NETWORK_RBAC,
                               stat_prefix=f"{name}.", rules={"action": "ALLOW",
                                                              "policies": {name: policy}})


def policy_filters(governing: Sequence[AuthorizationPolicy], spec: MeshSpec, *,
                   own_ports: Collection[int], listener_port: int,
                   notes: list[str]) -> list[Resource]:
    """The RBAC HTTP filters for the policies that govern one listener."""
    scope = _Scope(own_ports, listener_port)
    custom = [ap for ap in governing if ap.action == "CUSTOM"]
    for ap in custom:
        notes.append(f"AuthorizationPolicy {ap.namespace}/{ap.name}: CUSTOM (provider "
                     f"{ap.provider or 'unset'}) has no local authorizer; its rules deny")
    deny = [ap for ap in governing if ap.action == "DENY"] + custom
    allow = [ap for ap in governing if ap.action in (None, "ALLOW")]
    audit = [ap for ap in governing if ap.action == "AUDIT"]
    out: list[Resource] = []
    if deny:
        out.append(_filter("DENY", _policies(deny, spec, scope, True, notes)))
    if allow:
        out.append(_filter("ALLOW", _policies(allow, spec, scope, False, notes)))
    if audit:
        out.append(_filter("LOG", _policies(audit, spec, scope, True, notes)))
    return out

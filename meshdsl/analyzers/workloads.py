"""istioctl's Gateway, DestinationRule and Service analyzers, on the input objects.

- Gateways with the same workload selector and port whose server hosts overlap conflict
  (IST0145, MD108); each of them is reported.
- A Gateway port that no Service in front of its workloads exposes is unreachable
  (IST0104 in istioctl 1.x, IST0162 later; MD143). Workloads are the Pods and the pod
  templates of Deployments, StatefulSets and DaemonSets in the input; a Gateway whose
  selector matches none of them is not judged (the input does not show its workloads).
- A DestinationRule with TLS mode SIMPLE or MUTUAL and no ``caCertificates`` does not
  verify the server (IST0128 for the traffic policy, IST0129 per port; MD144, MD145).
- A Service port whose name (or ``appProtocol``) names no protocol gets protocol
  sniffing (IST0118, MD146); system namespaces and Istio's own Services are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshdsl.analyzers.registry import Obj, Registry, dicts, host_matches, strings
from meshdsl.validate.findings import Finding, error, info, warning

_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
_SYSTEM = frozenset({"kube-system", "kube-public", "kube-node-lease", "local-path-storage"})
_PROTOCOLS = frozenset({"tcp", "udp", "sctp", "grpc", "grpc-web", "http", "http_proxy",
                        "http2", "https", "tls", "mongo", "redis", "mysql"})


def _labels(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _selector(gw: Obj) -> dict[str, str]:
    return _labels(gw.spec.get("selector"))


def _selector_text(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def _pods(registry: Registry) -> list[tuple[str, dict[str, str]]]:
    """(namespace, labels) of every workload the input declares."""
    out = [(p.namespace, _labels(p.metadata.get("labels"))) for p in registry.of("Pod")]
    for wl in registry.of(*_WORKLOADS):
        template = wl.spec.get("template")
        meta = template.get("metadata") if isinstance(template, dict) else None
        if isinstance(meta, dict):
            out.append((wl.namespace, _labels(meta.get("labels"))))
    return out


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _server_port(server: dict[str, Any]) -> int | None:
    port = server.get("port")
    number = port.get("number") if isinstance(port, dict) else None
    return number if isinstance(number, int) else None


def _conflicts(registry: Registry) -> Iterator[Finding]:
    gateways = registry.of("Gateway")
    # (selector, port) -> gateway -> hosts of its last server on that port (as istioctl)
    index: dict[tuple[str, int], dict[str, list[str]]] = {}
    for gw in gateways:
        for server in dicts(gw.spec.get("servers")):
            port = _server_port(server)
            if port is not None:
                index.setdefault((_selector_text(_selector(gw)), port), {})[gw.full_name] = \
                    strings(server.get("hosts"))
    for gw in gateways:
        selector = _selector_text(_selector(gw))
        for i, server in enumerate(dicts(gw.spec.get("servers"))):
            port = _server_port(server)
            hosts = strings(server.get("hosts"))
            rivals = {name: theirs for name, theirs in
                      index.get((selector, port or -1), {}).items()
                      if name != gw.full_name and any(host_matches(h, t) for h in hosts
                                                      for t in theirs)}
            if not rivals:
                continue
            message = (f"Conflict with gateways {','.join(sorted(rivals))} (workload "
                       f"selector {selector}, port {port}, hosts {','.join(hosts)})")
            where = gw.doc.where(("spec", "servers", i))
            if any(set(hosts) & set(theirs) for theirs in rivals.values()):
                yield error("MD108", f"{gw} servers[{i}]", message, where)
            else:
                yield warning("MD108", f"{gw} servers[{i}]", message + ": the hosts overlap "
                              "through a wildcard, so which gateway answers depends on "
                              "Istio's merge order", where)


def _ports(registry: Registry) -> Iterator[Finding]:
    pods = _pods(registry)
    services = registry.of("Service")
    for gw in registry.of("Gateway"):
        selector = _selector(gw)
        chosen = [(ns, labels) for ns, labels in pods if _selects(selector, labels)]
        if not chosen:
            continue
        exposed = {p.get("port") for svc in services for ns, labels in chosen
                   if svc.namespace == ns and _labels(svc.spec.get("selector"))
                   and _selects(_labels(svc.spec.get("selector")), labels)
                   for p in dicts(svc.spec.get("ports")) if p.get("protocol", "TCP") == "TCP"}
        for i, server in enumerate(dicts(gw.spec.get("servers"))):
            port = _server_port(server)
            if port is not None and port not in exposed:
                yield warning("MD143", f"{gw} servers[{i}]",
                              f"The gateway listens on port {port}, which no Service in "
                              f"front of its workloads ({_selector_text(selector)}) exposes",
                              gw.doc.where(("spec", "servers", i, "port")))


def _tls(registry: Registry) -> Iterator[Finding]:
    for dr in registry.of("DestinationRule"):
        policy = dr.spec.get("trafficPolicy")
        policy = policy if isinstance(policy, dict) else {}
        tls = policy.get("tls")
        host = dr.spec.get("host")
        if isinstance(tls, dict) and tls.get("mode") in ("SIMPLE", "MUTUAL") and \
                not tls.get("caCertificates"):
            yield warning("MD144", f"{dr} trafficPolicy.tls",
                          f"TLS mode {tls['mode']} without caCertificates: the identity of "
                          f"{host!r} is not verified", dr.doc.where(
                              ("spec", "trafficPolicy", "tls")))
        for i, setting in enumerate(dicts(policy.get("portLevelSettings"))):
            tls = setting.get("tls")
            if isinstance(tls, dict) and tls.get("mode") in ("SIMPLE", "MUTUAL") and \
                    not tls.get("caCertificates"):
                port = setting.get("port")
                number = port.get("number") if isinstance(port, dict) else port
                yield warning("MD145", f"{dr} trafficPolicy.portLevelSettings[{i}].tls",
                              f"TLS mode {tls['mode']} without caCertificates: the identity "
                              f"of {host!r} at port {number} is not verified", dr.doc.where(
                                  ("spec", "trafficPolicy", "portLevelSettings", i, "tls")))


def _named(port: dict[str, Any]) -> bool:
    if str(port.get("protocol", "TCP")).upper() == "UDP":
        return True
    app = str(port.get("appProtocol", "")).lower()
    if app:
        return app.rpartition("/")[2] in _PROTOCOLS | {"h2c", "ws", "wss"}
    return str(port.get("name", "")).lower().partition("-")[0] in _PROTOCOLS or \
        str(port.get("name", "")).lower() == "grpc-web"


def _port_names(registry: Registry) -> Iterator[Finding]:
    for svc in registry.of("Service"):
        labels = _labels(svc.metadata.get("labels"))
        if svc.namespace in _SYSTEM or labels.get("istio") in ("pilot", "istiod") or \
                svc.spec.get("type") == "ExternalName":
            continue
        for i, port in enumerate(dicts(svc.spec.get("ports"))):
            if not _named(port):
                yield info("MD146", f"{svc} ports[{i}]",
                           f"Port name {port.get('name', '')!r} (port {port.get('port')}) "
                           "names no protocol: Istio sniffs it; name it like 'http-web' or "
                           "set appProtocol", svc.doc.where(("spec", "ports", i)))


def check(registry: Registry) -> Iterator[Finding]:
    yield from _conflicts(registry)
    yield from _ports(registry)
    yield from _tls(registry)
    yield from _port_names(registry)

"""istioctl's Gateway analyzers, on the input objects (Istio Gateways only).

- Gateways whose workload selectors are the same, with servers on the same port that
  list the same host (the same string, with the same ``bind``), conflict (IST0145, MD108);
  each of them is reported, once per server. Hosts that only overlap through a wildcard
  (``*.example.com`` and ``api.example.com``) do not: istioctl's ``CheckDuplicates``
  compares the strings, and Envoy answers the more specific name. Two selectors count as
  the same when they are equal or, as istioctl has it, when one's text contains the
  other's and a workload matches both. Of a gateway with several servers on one port,
  the last server's hosts are what the others are compared with (istioctl keeps one host
  table per gateway and port). istioctl's ``CheckDuplicates`` also writes a server's
  hosts into the rival's table when it finds none in common, which makes some of its
  answers depend on Go's map order; that side effect is not reproduced.
- A Gateway port that no Service in front of its workloads reaches is unreachable
  through the Service (IST0162, formerly IST0104; MD143). A port is reached when a TCP
  Service port or its ``targetPort`` is that number, as in istioctl since 1.19; a Service
  without a selector selects every workload of its namespace, as a Kubernetes label
  selector does. Workloads are the Pods and the pod templates of Deployments,
  StatefulSets, DaemonSets, ReplicaSets and Jobs in the input (a cluster that holds them
  runs those Pods). A Gateway whose selector matches none of them is not judged: its
  workloads (usually Istio's own ingress gateway) are not in the input, where istioctl
  would report the selector (IST0101) or use the ingress Service it assumes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshdsl.analyzers.registry import Registry, dicts, strings
from meshdsl.validate.findings import Finding, error, warning

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")

Labels = dict[str, str]


def labels(value: Any) -> Labels:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def selector_text(selector: Labels) -> str:
    """The selector as Kubernetes prints it (``labels.SelectorFromSet(...).String()``)."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def selects(selector: Labels, pod: Labels) -> bool:
    return all(pod.get(k) == v for k, v in selector.items())


def workloads(registry: Registry) -> list[tuple[str, Labels]]:
    """(namespace, labels) of every workload the input declares."""
    out = [(p.namespace, labels(p.metadata.get("labels"))) for p in registry.of("Pod")]
    for wl in registry.of(*WORKLOADS):
        template = wl.spec.get("template")
        meta = template.get("metadata") if isinstance(template, dict) else None
        if isinstance(meta, dict):
            out.append((wl.namespace, labels(meta.get("labels"))))
    return out


def _port(server: dict[str, Any]) -> int | None:
    """A server's port number: None without a port, 0 for a port without a number."""
    port = server.get("port")
    if not isinstance(port, dict):
        return None
    number = port.get("number")
    return number if isinstance(number, int) else 0


def _parse(text: str) -> Labels:
    pairs = (pair.split("=") for pair in text.split(","))
    return {p[0]: p[1] for p in pairs if len(p) == 2}


def _same_workloads(mine: str, theirs: str, pods: list[tuple[str, Labels]]) -> bool:
    if mine == theirs:
        return True
    if mine not in theirs and theirs not in mine:
        return False
    a, b = _parse(mine), _parse(theirs)
    return any(selects(a, pod) and selects(b, pod) for _, pod in pods)


def _conflicts(registry: Registry) -> Iterator[Finding]:
    gateways = registry.of("Gateway")
    pods = workloads(registry)
    # (selector, port) -> gateway -> {host: bind} of its last server on that port
    tables: dict[tuple[str, int], dict[str, dict[str, str]]] = {}
    for gw in gateways:
        for server in dicts(gw.spec.get("servers")):
            bind = str(server.get("bind", ""))
            tables.setdefault((selector_text(labels(gw.spec.get("selector"))),
                               _port(server) or 0), {})[gw.full_name] = \
                {host: bind for host in strings(server.get("hosts"))}
    for gw in gateways:
        selector = selector_text(labels(gw.spec.get("selector")))
        for i, server in enumerate(dicts(gw.spec.get("servers"))):
            port, bind = _port(server) or 0, str(server.get("bind", ""))
            hosts = strings(server.get("hosts"))
            rivals = sorted({name for (theirs, number), table in tables.items()
                             if number == port and _same_workloads(selector, theirs, pods)
                             for name, known in table.items() if name != gw.full_name
                             and any(h in known and known[h] == bind for h in hosts)})
            if rivals:
                yield error("MD108", f"{gw} servers[{i}]",
                            f"Conflict with gateways {','.join(rivals)} (workload selector "
                            f"{selector}, port {port}, hosts {','.join(hosts)})",
                            gw.doc.where(("spec", "servers", i)))


def _target(value: Any) -> int:
    """``intstr.IntValue()``: a number, or a string of digits, else 0."""
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else 0


def _reached(registry: Registry, chosen: list[tuple[str, Labels]]) -> set[int]:
    """The gateway ports the Services in front of these workloads reach."""
    reached: set[int] = set()
    for ns, pod in chosen:
        for svc in registry.of("Service"):
            if svc.namespace != ns or not selects(labels(svc.spec.get("selector")), pod):
                continue
            for port in dicts(svc.spec.get("ports")):
                if port.get("protocol", "TCP") == "TCP" and isinstance(port.get("port"), int):
                    reached.add(port["port"])
                    reached.add(_target(port.get("targetPort")) or port["port"])
    return reached


def _ports(registry: Registry) -> Iterator[Finding]:
    pods = workloads(registry)
    for gw in registry.of("Gateway"):
        selector = labels(gw.spec.get("selector"))
        chosen = [(ns, pod) for ns, pod in pods if selects(selector, pod)]
        if not chosen:
            continue
        reached = _reached(registry, chosen)
        for i, server in enumerate(dicts(gw.spec.get("servers"))):
            port = _port(server)
            if port is not None and port not in reached:
                yield warning("MD143", f"{gw} servers[{i}]",
                              f"The gateway listens on port {port}, which no Service in "
                              f"front of its workloads ({selector_text(selector)}) reaches "
                              "(as a port or a targetPort)",
                              gw.doc.where(("spec", "servers", i, "port")))


def check(registry: Registry) -> Iterator[Finding]:
    yield from _conflicts(registry)
    yield from _ports(registry)

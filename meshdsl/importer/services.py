"""Services of the mesh, from Kubernetes objects and from the hosts Istio objects name.

A service exists in the model when a Service or a Deployment (by its ``app`` label)
declares it, when a VirtualService or DestinationRule routes to it, or (``to_model``)
when a policy selects its workloads by ``{app: name}`` — Istio YAML is
often kept apart from the application's manifests, and the validator should still know
``reviews`` is a service. Each service keeps its ports even when its Service object has to
be carried raw (the ports tell the validator which protocol it speaks), with
``kube_service`` set so the DSL does not emit a second Service object.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from meshdsl.compile import kube
from meshdsl.compile.compare import normalize
from meshdsl.importer.fields import Problem, add_new, build, pick, tree_diff
from meshdsl.importer.manifests import Resource, expected
from meshdsl.importer.workloads import deployment, dig, strings
from meshdsl.importer.yamlsource import YamlPath
from meshdsl.model.base import SourceLocation
from meshdsl.model.service import NamespaceSpec, ServicePort, ServiceSpec, Version, Workload

Key = tuple[str, str]  # (namespace, name)


def service_key(host: str, namespace: str, namespaces: set[str]) -> Key | None:
    """The service a host names: ``reviews``, ``reviews.ns`` (a namespace of the input) or
    ``reviews.ns.svc[.cluster.local]``; None for external hosts and wildcards."""
    if not host or "*" in host or "/" in host:
        return None
    parts = host.split(".")
    if len(parts) == 1:
        return namespace, host
    if len(parts) == 2 and parts[1] in namespaces:
        return parts[1], parts[0]
    if len(parts) >= 3 and parts[2] == "svc":
        return parts[1], parts[0]
    return None


def _hosts_in(value: Any, path: YamlPath) -> Iterator[tuple[str, YamlPath]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("destination", "mirror") and isinstance(item, dict) and isinstance(
                    item.get("host"), str):
                yield item["host"], (*path, key, "host")
            yield from _hosts_in(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _hosts_in(item, (*path, i))


def referenced_hosts(res: Resource) -> list[tuple[str, YamlPath]]:
    """Hosts a VirtualService or DestinationRule names (also when it is carried raw)."""
    spec = res.manifest.get("spec")
    if not isinstance(spec, dict):
        return []
    if res.kind == "DestinationRule":
        host = spec.get("host")
        return [(host, ("spec", "host"))] if isinstance(host, str) else []
    hosts = spec.get("hosts")
    hosts = hosts if isinstance(hosts, list) else []
    own = [(h, ("spec", "hosts", i)) for i, h in enumerate(hosts) if isinstance(h, str)]
    return own + list(_hosts_in(spec, ("spec",)))


def destination_ports(res: Resource) -> list[tuple[str, int, bool]]:
    """(host, port, TCP-only) of every destination of a VirtualService that names a port."""
    spec = res.manifest.get("spec")
    out = []
    for kind in ("http", "tcp", "tls"):
        routes = spec.get(kind) if isinstance(spec, dict) else None
        for host, path in _hosts_in(routes if isinstance(routes, list) else [], ()):
            port = dig(routes, *path[:-1], "port", "number")
            if isinstance(port, int) and not isinstance(port, bool):
                out.append((host, port, kind != "http"))
    return out


def inferred_ports(found: list[tuple[Key, int, bool]]) -> dict[Key, list[ServicePort]]:
    """Ports of services known only from routes: the port numbers their routes name,
    ``http`` unless only TCP/TLS routes use them."""
    tcp_only: dict[Key, dict[int, bool]] = {}
    for key, port, tcp in found:
        ports = tcp_only.setdefault(key, {})
        ports[port] = ports.get(port, True) and tcp
    out = {}
    for key, ports in tcp_only.items():
        out[key] = [ServicePort(number=n, name=("tcp" if tcp else "http") + (
            f"-{n}" if i else "")) for i, (n, tcp) in enumerate(ports.items())]
    return out


@dataclass
class KubeModel:
    """What the Kubernetes objects contribute: services, namespaces, and which objects
    the model now reproduces exactly (``exact``, by ``id``) or not (``problems``)."""

    services: list[ServiceSpec] = field(default_factory=list)
    namespaces: list[NamespaceSpec] = field(default_factory=list)
    exact: set[int] = field(default_factory=set)
    problems: dict[int, list[Problem]] = field(default_factory=dict)

    def judge(self, res: Resource, problems: list[Problem], want: Any, got: Any) -> bool:
        add_new(problems, tree_diff(want, normalize(got)))
        if problems:
            self.problems[id(res)] = problems
            return False
        self.exact.add(id(res))
        return True


def _namespace(res: Resource, out: KubeModel) -> None:
    problems: list[Problem] = []
    if any(ns.name == res.name for ns in out.namespaces):
        out.problems[id(res)] = [((), "a second Namespace of this name is not expressible")]
        return
    ns = build(res, NamespaceSpec, {"name": res.name,
                                    "labels": res.manifest["metadata"].get("labels", {})},
               ("metadata",), problems, locs={"labels": ("metadata", "labels")}, fitted=True)
    if ns is not None:
        ns = ns.model_copy(update={"source": res.where()})
        if out.judge(res, problems, expected(res), kube.namespace(ns, {})):
            out.namespaces.append(ns)
            return
    out.problems[id(res)] = problems


def _ports(res: Resource, problems: list[Problem]) -> list[ServicePort]:
    ports = []
    for i, value in enumerate(res.listing(res.spec.get("ports"), ("spec", "ports"))):
        here: YamlPath = ("spec", "ports", i)
        if isinstance(value, dict) and value.get("protocol") == "TCP":
            value = {k: v for k, v in value.items() if k != "protocol"}  # the default
        data, locs = pick(res, value, here, {"port": "number", "name": "name",
                                             "targetPort": "target_port",
                                             "appProtocol": "protocol"}, problems)
        if isinstance(data.get("target_port"), str):
            problems.append(((*here, "targetPort"), "a named target port is not "
                             "expressible in the DSL"))
            data.pop("target_port")
        port = build(res, ServicePort, data, here, problems, locs=locs, fitted=True)
        if port is not None:
            ports.append(port)
    return [*ports]


def kube_model(resources: list[Resource], referenced: dict[Key, SourceLocation],
               routed: dict[Key, list[ServicePort]], versions: dict[Key, list[Version]]
               ) -> KubeModel:
    """Services (with ``versions`` from their DestinationRules, which label their pods),
    namespaces, and which Kubernetes objects they reproduce exactly."""
    out = KubeModel()
    keys: dict[Key, SourceLocation] = {}
    services: dict[Key, tuple[Resource, list[ServicePort], list[Problem]]] = {}
    deployments: dict[Key, list[tuple[Resource, Workload | None, Any, list[Problem]]]] = {}
    accounts: dict[Key, Resource] = {}
    for res in resources:
        key = (res.namespace, res.name)
        if res.kind == "Namespace":
            _namespace(res, out)
        elif res.kind == "Service":
            problems: list[Problem] = []
            ports = _ports(res, problems)
            if key in services:
                problems.append(((), "a second Service of this name is not expressible"))
                out.problems[id(res)] = problems
                continue
            services[key] = (res, ports, problems)
            keys.setdefault(key, res.where())
        elif res.kind == "Deployment":
            problems = []
            app, workload, account = deployment(res, problems)
            if app is None:
                out.problems[id(res)] = problems
                continue
            deployments.setdefault((res.namespace, app), []).append(
                (res, workload, account, problems))
            keys.setdefault((res.namespace, app), res.where())
        elif res.kind == "ServiceAccount":
            accounts.setdefault(key, res)
    for key, where in referenced.items():
        keys.setdefault(key, where)
    for (namespace, name), where in keys.items():
        out.services.append(_service(out, namespace, name, where, services.get(
            (namespace, name)), deployments.get((namespace, name), []), accounts,
            routed.get((namespace, name), []), versions.get((namespace, name), [])))
    return out


def _service_type(res: Resource | None) -> Any:
    """The Service's type when it is one the DSL writes (else the comparison names it)."""
    kind = res.spec.get("type") if res is not None else None
    return kind if kind in ("ClusterIP", "NodePort", "LoadBalancer") else None


def _service(out: KubeModel, namespace: str, name: str, where: SourceLocation,
             declared: tuple[Resource, list[ServicePort], list[Problem]] | None,
             deployments: list[tuple[Resource, Workload | None, Any, list[Problem]]],
             accounts: dict[Key, Resource], routed: list[ServicePort],
             versions: list[Version]) -> ServiceSpec:
    ports = declared[1] if declared else routed
    names = {account for _, _, account, _ in deployments}
    account = next(iter(names)) if len(names) == 1 and isinstance(next(iter(names)), str) \
        else None
    account_doc = accounts.pop((namespace, account), None) if account else None
    meta = normalize(declared[0].manifest)["metadata"] if declared else {}
    account_meta = normalize(account_doc.manifest)["metadata"] if account_doc else {}
    base = ServiceSpec(name=name, namespace=namespace, ports=ports, service_account=account,
                       versions=versions, source=declared[0].where() if declared else where,
                       labels=strings(meta.get("labels")) or {},
                       annotations=strings(meta.get("annotations")) or {},
                       account_labels=strings(account_meta.get("labels")) or {},
                       service_type=_service_type(declared[0] if declared else None))
    missing = "which the input does not have"
    if account_doc is not None:  # shared by the versions: typed once, with the service
        left: list[Problem] = []
        add_new(left, tree_diff(expected(account_doc), normalize(
            kube.service_account(base, {}))))
        if left:
            out.problems[id(account_doc)] = left
            account_doc, missing = None, "which the input has in another shape (raw)"
    workloads = []
    for res, workload, _, problems in deployments:
        if workload is not None and account and account_doc is None:
            problems.append((("spec", "template", "spec", "serviceAccountName"),
                             f"the DSL would also declare ServiceAccount {account}, "
                             + missing))
        if workload is None or problems:
            out.problems[id(res)] = problems
        elif out.judge(res, problems, expected(res), kube.deployment(base, workload, {})):
            if workload.container_ports == kube.default_container_ports(base):
                workload = workload.model_copy(update={"container_port": None})  # default
            workloads.append(workload)
    if account_doc is not None and workloads:
        out.exact.add(id(account_doc))
    exact = declared is not None and out.judge(declared[0], declared[2],
                                               expected(declared[0]), kube.service(base, {}))
    default = bool(workloads) and bool(ports)
    return base.model_copy(update={"workloads": workloads,
                                   "kube_service": None if exact == default else exact})

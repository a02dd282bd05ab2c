"""MeshSpec → a readable mesh program in the DSL's own vocabulary.

The program declares namespaces and services first (versions, ports, Deployments), then
gateways, then each service's routes, policy, mTLS, authorization and rate limit grouped
under it, then what stands alone, and last ``mesh.raw(...)`` for what the DSL cannot
say. Running it gives back the same spec: where a short builder call would build
something else (a VirtualService named unlike its service, a DestinationRule for an
external host), the generic call (``ns.routes(...)``, ``ns.destination_rule(...)``) is
used, and what no builder can write raises :class:`NotExpressible`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from meshdsl.importer.errors import NotExpressible
from meshdsl.importer.external import call as external_call
from meshdsl.importer.external import entry_call
from meshdsl.importer.pyexpr import Call, Code, Expr, ListOf, literal, statement
from meshdsl.importer.pysecurity import PolicySections
from meshdsl.importer.pyvalues import Names, Values
from meshdsl.importer.shapes import (
    is_mesh_mtls,
    is_service_dr,
    is_service_vs,
    scoped_namespaces,
)
from meshdsl.model.dataplane import DEFAULT_WAYPOINT
from meshdsl.model.gateway import Gateway, Server, ServerTls
from meshdsl.model.routing import Destination, HttpRoute, TcpRoute, VirtualService
from meshdsl.model.service import NamespaceSpec, ServicePort, ServiceSpec, Workload
from meshdsl.model.spec import MeshSpec

_ROUTE_FIELDS = ("name", "match", "to", "redirect", "rewrite", "timeout", "retries", "fault",
                 "mirror", "mirror_percent", "headers", "cors")


class _Program(PolicySections):
    def __init__(self, spec: MeshSpec, namespace: str) -> None:
        self.spec, self.namespace = spec, namespace
        self.names = Names()
        self.lines: list[str] = []
        self.scopes: dict[str, str] = {namespace: "mesh"}
        services: dict[tuple[str, str], tuple[ServiceSpec, str, bool]] = {}
        by_name: dict[str, int] = {}
        for svc in spec.services:
            by_name[svc.name] = by_name.get(svc.name, 0) + 1
        for svc in spec.services:
            key = (svc.namespace, svc.name)
            if key in services:
                raise NotExpressible(f"service {svc.namespace}/{svc.name} is declared twice")
            var = self.names.new(svc.name if by_name[svc.name] == 1 else
                                 f"{svc.name}_{svc.namespace}", f"{svc.name}_{svc.namespace}",
                                 f"{svc.name}_svc")
            services[key] = (svc, var, self._explicit_port(svc))
        self.values = Values(services)
        self.gateways: dict[tuple[str, str], str] = {}
        self.used_drs: set[int] = set()

    # -- output -----------------------------------------------------------------------
    def emit(self, expr: Expr, target: str | None = None) -> None:
        self.lines.append(statement(expr, target))

    def blank(self) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines.append("")

    def scope(self, namespace: str) -> str:
        return self.scopes[namespace]

    def service_var(self, namespace: str, name: str) -> str | None:
        found = self.values.services.get((namespace, name))
        return found[1] if found else None

    # -- decisions --------------------------------------------------------------------
    def _explicit_port(self, svc: ServiceSpec) -> bool:
        """Give the service ``explicit_port=True`` when every route names its first port."""
        if not svc.ports:
            return False
        ports = []
        for vs in self.spec.virtual_services:
            written = svc.name if vs.namespace == svc.namespace else \
                f"{svc.name}.{svc.namespace}.svc.cluster.local"
            dests: list[Destination] = [d for r in vs.http for d in r.to]
            dests += [r.mirror for r in vs.http if r.mirror is not None]
            dests += [d for r in vs.tcp for d in r.to]
            ports += [d.port for d in dests if d.host == written]
        return bool(ports) and all(p == svc.ports[0].number for p in ports)

    # -- sections ---------------------------------------------------------------------
    def mesh(self) -> None:
        kwargs: list[tuple[str, Expr]] = []
        if self.namespace != "default":
            kwargs.append(("namespace", literal(self.namespace)))
        mesh_mtls = next((pa for pa in self.spec.peer_authentications
                          if is_mesh_mtls(pa, self.spec.root_namespace)), None)
        self.mesh_mtls = mesh_mtls
        if mesh_mtls is not None:
            kwargs.append(("mtls", literal(mesh_mtls.mode)))
        if self.spec.trust_domain != "cluster.local":
            kwargs.append(("trust_domain", literal(self.spec.trust_domain)))
        if self.spec.root_namespace != "istio-system":
            kwargs.append(("root_namespace", literal(self.spec.root_namespace)))
        if self.spec.data_plane.default != "sidecar":
            kwargs.append(("mode", literal(self.spec.data_plane.default)))
        self.emit(Call("Mesh", (literal(self.spec.name),), kwargs), "mesh")

    def namespaces(self) -> None:
        specs: dict[str, NamespaceSpec] = {}
        for ns in self.spec.namespaces:
            if ns.name in specs:
                raise NotExpressible(f"namespace {ns.name} is declared twice")
            specs[ns.name] = ns
        needed = scoped_namespaces(self.spec, self.namespace)
        for name in [*specs, *[n for n in needed if n not in specs]]:
            ns = specs.get(name) or NamespaceSpec(name=name, create=False)
            labels = dict(ns.labels)
            injection = {"enabled": True, "disabled": False}.get(
                labels.get("istio-injection", ""))
            if injection is not None:
                labels.pop("istio-injection")
            kwargs: list[tuple[str, Expr]] = []
            if injection is not True:
                kwargs.append(("injection", literal(injection)))
            if labels:
                kwargs.append(("labels", literal(labels)))
            if not ns.create:
                kwargs.append(("create", literal(False)))
            kwargs += self._mode(name)
            call = Call("mesh.namespace", (literal(name),), kwargs)
            if name in needed:
                self.scopes[name] = self.names.new(name, f"{name}_ns")
                self.emit(call, self.scopes[name])
            else:
                self.emit(call)

    def _mode(self, name: str) -> list[tuple[str, Expr]]:
        declared = self.spec.data_plane.namespaces.get(name)
        if declared is None:
            return []
        out: list[tuple[str, Expr]] = [("mode", literal(declared.mode))]
        if declared.mode == "ambient" and declared.waypoint != DEFAULT_WAYPOINT:
            out.append(("waypoint", literal(declared.waypoint)))
        return out

    def service(self, svc: ServiceSpec, var: str, explicit: bool) -> None:
        if (svc.app_label, svc.version_label) != ("app", "version"):
            raise NotExpressible(f"service {svc.name}: custom app/version labels")
        kwargs: list[tuple[str, Expr]] = []
        if svc.ports:
            ports = [literal(p.number) if p == ServicePort(number=p.number)
                     else self.values.model(p) for p in svc.ports]
            kwargs.append(("port", ports[0] if len(ports) == 1 else ListOf(ports)))
        if svc.versions:
            kwargs.append(("versions", ListOf([
                literal(v.name) if not v.labels and v.traffic_policy is None else
                Call(self.values.use("Version"), (literal(v.name),), [
                    (k, self.values.value(getattr(v, k))) for k in ("labels", "traffic_policy")
                    if getattr(v, k)]) for v in svc.versions])))
        if explicit:
            kwargs.append(("explicit_port", literal(True)))
        for key in ("service_account", "kube_service"):
            if getattr(svc, key) is not None:
                kwargs.append((key, literal(getattr(svc, key))))
        kwargs += [(k, literal(getattr(svc, k))) for k in (
            "labels", "annotations", "service_type", "account_labels") if getattr(svc, k)]
        self.emit(Call(f"{self.scope(svc.namespace)}.service", (literal(svc.name),), kwargs),
                  var)
        for wl in svc.workloads:
            self.emit(Call(f"{var}.deploy", (literal(wl.version),), [
                (k, self.values.value(getattr(wl, k))) for k, f in Workload.model_fields.items()
                if k not in ("version", "source")
                and getattr(wl, k) != f.get_default(call_default_factory=True)]))
        for version, run in svc.local.items():
            self.emit(Call(f"{var}.run_locally", (literal(version),) if version else (),
                           [(k, self.values.value(getattr(run, k))) for k in
                            ("command", "address", "env") if getattr(run, k)]))

    def gateway(self, gw: Gateway) -> None:
        var = self.names.new(gw.name, f"{gw.name}_gateway", f"{gw.name}_{gw.namespace}")
        self.gateways[(gw.namespace, gw.name)] = var
        kwargs = [] if gw.selector == {"istio": "ingressgateway"} else [
            ("selector", literal(gw.selector))]
        if not gw.selector:
            raise NotExpressible(f"gateway {gw.name}: an empty selector")
        self.emit(Call(f"{self.scope(gw.namespace)}.gateway", (literal(gw.name),), kwargs), var)
        for server in gw.servers:
            self.emit(self._server(var, server))

    def _server(self, var: str, s: Server) -> Call:
        if s.name is not None:
            raise NotExpressible("gateway server names")
        hosts = [literal(h) for h in s.hosts]
        port = s.port
        if port.protocol == "HTTP" and s.tls in (None, ServerTls(https_redirect=True)):
            kwargs = [(k, literal(v)) for k, v, d in (
                ("port", port.number, 80), ("name", port.name, "http"),
                ("https_redirect", s.tls is not None, False)) if v != d]
            return Call(f"{var}.http", hosts, kwargs)
        tls = s.tls
        if (port.protocol == "HTTPS" and tls is not None and tls.mode is not None
                and tls.credential_name is not None and tls == ServerTls(
                    mode=tls.mode, credential_name=tls.credential_name)):
            kwargs = [("credential", literal(tls.credential_name))]
            kwargs += [(k, literal(v)) for k, v, d in (
                ("port", port.number, 443), ("name", port.name, "https"),
                ("mode", tls.mode, "SIMPLE")) if v != d]
            return Call(f"{var}.https", hosts, kwargs)
        kwargs = [("port", literal(port.number)), ("name", literal(port.name)),
                  ("protocol", literal(port.protocol)), ("hosts", ListOf(hosts))]
        if tls is not None:
            kwargs.append(("tls", self.values.model(tls)))
        return Call(f"{var}.server", (), kwargs)

    # -- routing ----------------------------------------------------------------------
    def _route(self, target: str, route: HttpRoute, scope: str) -> Call:
        kwargs: list[tuple[str, Expr]] = []
        for key in _ROUTE_FIELDS:
            value = getattr(route, key)
            if value is None or value == []:
                continue
            if key == "match":
                expr = self.values.value(value[0] if len(value) == 1 else value)
            elif key == "to":
                expr = self.values.destinations(value, scope)
            elif key == "mirror":
                expr = self.values.reference(value, scope)
            else:
                expr = self.values.value(value)
            kwargs.append((key, expr))
        return Call(f"{target}.route", (), kwargs)

    def _tcp_route(self, target: str, route: TcpRoute, scope: str) -> Call:
        kwargs = [("to", self.values.destinations(route.to, scope))]
        if len(route.match) == 1 and route.match[0].model_dump(exclude_defaults=True) == {
                "port": route.match[0].port}:
            kwargs.append(("port", literal(route.match[0].port)))
        elif route.match:
            kwargs.append(("match", self.values.value(route.match)))
        return Call(f"{target}.tcp_route", (), kwargs)

    def routes(self, vs: VirtualService, owner: str | None) -> None:
        if vs.export_to or (not vs.http and not vs.tcp):
            raise NotExpressible(f"VirtualService {vs.name}: exportTo, or no routes")
        target = owner
        if target is None:
            target = self.names.new(vs.name, f"{vs.name}_routes", f"{vs.name}_{vs.namespace}")
            gws = [self._gateway_ref(g, vs.namespace) for g in vs.gateways]
            hosts = ("hosts", ListOf([literal(h) for h in vs.hosts]))
            gw_var = gws[0].flat() if len(gws) == 1 else ""
            if gw_var in self.gateways.values():
                gw_ns = next(k[0] for k, v in self.gateways.items() if v == gw_var)
                extra = [] if gw_ns == vs.namespace else [("namespace", literal(vs.namespace))]
                self.emit(Call(f"{gw_var}.routes", (literal(vs.name),), [hosts, *extra]),
                          target)
            else:
                kwargs = [hosts] + ([("gateways", ListOf(gws))] if gws else [])
                self.emit(Call(f"{self.scope(vs.namespace)}.routes", (literal(vs.name),),
                               kwargs), target)
        for route in vs.http:
            self.emit(self._route(target, route, vs.namespace))
        for tcp in vs.tcp:
            self.emit(self._tcp_route(target, tcp, vs.namespace))

    def _gateway_ref(self, ref: str, namespace: str) -> Expr:
        """A gateway variable where the builder would write ``ref`` exactly."""
        gw_ns, _, name = ref.rpartition("/")
        var = self.gateways.get((gw_ns or namespace, name))
        written = name if (gw_ns or namespace) == namespace else ref
        return Code(var) if var is not None and written == ref else literal(ref)

    def destination_rule(self, svc_var: str | None, dr_index: int) -> None:
        dr = self.spec.destination_rules[dr_index]
        if svc_var is not None:
            if dr.traffic_policy is not None:
                self.emit(Call(f"{svc_var}.policy", (), [
                    (k, self.values.value(getattr(dr.traffic_policy, k))) for k in
                    ("connection_pool", "load_balancer", "outlier_detection", "tls")
                    if getattr(dr.traffic_policy, k) is not None]))
            return
        if dr.export_to:
            raise NotExpressible(f"DestinationRule {dr.name}: exportTo")
        kwargs = [("host", literal(dr.host))]
        if dr.traffic_policy is not None:
            kwargs.append(("traffic_policy", self.values.model(dr.traffic_policy)))
        if dr.subsets:
            kwargs.append(("subsets", self.values.value(dr.subsets)))
        self.emit(Call(f"{self.scope(dr.namespace)}.destination_rule", (literal(dr.name),),
                       kwargs))

    # -- the whole program ------------------------------------------------------------
    def _owned(self) -> tuple[dict[int, str], dict[int, str]]:
        """Which VirtualService and DestinationRule each service's builder writes."""
        vs_owner: dict[int, str] = {}
        dr_owner: dict[int, str] = {}
        for svc, var, _ in self.values.services.values():
            vs = next((i for i, v in enumerate(self.spec.virtual_services)
                       if i not in vs_owner and is_service_vs(svc, v)), None)
            if vs is not None:
                vs_owner[vs] = var
            dr = next((i for i, d in enumerate(self.spec.destination_rules)
                       if i not in dr_owner and is_service_dr(svc, d)), None)
            if dr is not None:
                dr_owner[dr] = var
            elif svc.versions:
                raise NotExpressible(f"service {svc.name} has versions but no DestinationRule "
                                     "declares them as subsets")
        return vs_owner, dr_owner

    def body(self, notes: Sequence[str]) -> None:
        spec = self.spec
        self.mesh()
        self.namespaces()
        self.blank()
        order = list(dict.fromkeys([self.namespace, *self.scopes,
                                    *(s.namespace for s in spec.services)]))
        services = sorted(self.values.services.values(), key=lambda s: order.index(
            s[0].namespace))
        for i, (svc, var, explicit) in enumerate(services):
            if i and services[i - 1][0].namespace != svc.namespace:
                self.blank()
            self.service(svc, var, explicit)
        self.blank()
        for gw in spec.gateways:
            self.gateway(gw)
        for se in spec.service_entries:
            self.emit(external_call(se, self.scope(se.namespace), self.values))
        for we in spec.workload_entries:
            self.emit(entry_call(we, self.scope(we.namespace)))
        vs_owner, dr_owner = self._owned()
        pa_done = {i for i, pa in enumerate(spec.peer_authentications) if pa is self.mesh_mtls}
        ap_done: set[int] = set()
        rl_done: set[int] = set()
        for svc, var, _ in services:
            self.blank()
            for i, vs in enumerate(spec.virtual_services):
                if vs_owner.get(i) == var:
                    self.routes(vs, var)
            for i in range(len(spec.destination_rules)):
                if dr_owner.get(i) == var:
                    self.destination_rule(var, i)
            mine = {"app": svc.name}
            for i, pa in enumerate(spec.peer_authentications):
                if i not in pa_done and (pa.namespace, pa.selector) == (svc.namespace, mine):
                    pa_done.add(i)
                    self.mtls(i)
            for i, ap in enumerate(spec.authorization_policies):
                if (ap.namespace, ap.selector) == (svc.namespace, mine):
                    ap_done.add(i)
                    self.authorization(ap)
            for i, rl in enumerate(spec.rate_limits):
                if (rl.namespace, rl.selector) == (svc.namespace, mine):
                    rl_done.add(i)
                    self.rate_limit(i)
            for plan in spec.canaries:
                if (plan.namespace, plan.service) == (svc.namespace, svc.name):
                    self.canary(plan)
        self.blank()
        for i, vs in enumerate(spec.virtual_services):
            if i not in vs_owner:
                self.blank()
                self.routes(vs, None)
        self.blank()
        for i in range(len(spec.destination_rules)):
            if i not in dr_owner:
                self.destination_rule(None, i)
        for i in range(len(spec.peer_authentications)):
            if i not in pa_done:
                self.mtls(i)
        for i, ap in enumerate(spec.authorization_policies):
            if i not in ap_done:
                self.authorization(ap)
        for i in range(len(spec.rate_limits)):
            if i not in rl_done:
                self.rate_limit(i)
        self._raw(notes)

    def _raw(self, notes: Sequence[str]) -> None:
        if not self.spec.raw:
            return
        self.blank()
        self.lines.append("# --- carried through unchanged: what the DSL cannot express ---")
        for i, manifest in enumerate(self.spec.raw):
            if i < len(notes):
                self.lines += textwrap.wrap(notes[i], 98, initial_indent="# ",
                                            subsequent_indent="#   ")
            self.emit(Call("mesh.raw", (literal(manifest),)))


def to_python(spec: MeshSpec, *, namespace: str = "default", title: str | None = None,
              notes: Sequence[str] = ()) -> str:
    """The source of a program whose mesh is ``spec``.

    ``namespace`` is the mesh's own namespace (``Mesh(namespace=...)``), ``title`` the
    first line of the module docstring, ``notes`` one comment per ``spec.raw`` entry.
    """
    program = _Program(spec, namespace)
    program.body(notes)
    while program.lines and program.lines[-1] == "":
        program.lines.pop()
    names = sorted(program.values.imports)
    imports = f"from meshdsl import {', '.join(names)}"
    if len(imports) > 100:
        imports = "from meshdsl import (\n" + "".join(f"    {n},\n" for n in names) + ")"
    doc = title or f"The {spec.name} mesh."
    if spec.raw:
        doc += ("\n\nObjects the DSL cannot express are carried through unchanged with "
                "mesh.raw(...) at the end.")
    doc = doc.replace("\\", "\\\\").replace('"', '\\"')  # file names are not code
    return f'"""{doc}"""\n\n{imports}\n\n{chr(10).join(program.lines)}\n'

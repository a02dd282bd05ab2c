"""Input objects → :class:`MeshSpec`: every object typed where the DSL can say it exactly,
carried through ``MeshSpec.raw`` (with a warning per field) where it cannot.

An object is typed only if compiling its typed form gives back exactly the input (as
``meshdsl.compile.compare.differences`` sees it) and the builders can write it; so
rendering the generated program reproduces the input by construction. Two specs come
out: ``spec`` for the generated program, and ``analysis`` — every object as far as the
model understands it, even those carried raw — for ``meshctl analyze``, so that a
DestinationRule carried raw for one odd field still defines its subsets to the validator
(and the raw objects that stand for pods are kept, for the workload selectors).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from meshdsl.compile import external as compile_external
from meshdsl.compile import istio
from meshdsl.compile.compare import normalize
from meshdsl.compile.manifest import Manifest
from meshdsl.importer import external, policies, routes
from meshdsl.importer.errors import ImporterWarning, InputError
from meshdsl.importer.fields import Problem, add_new, most_precise, tree_diff
from meshdsl.importer.manifests import Resource, dotted, expected, resource
from meshdsl.importer.services import (
    Key,
    destination_ports,
    inferred_ports,
    kube_model,
    referenced_hosts,
    service_key,
)
from meshdsl.importer.shapes import app_of, scoped_namespaces, versions_from
from meshdsl.importer.yamlsource import Document
from meshdsl.model.base import SourceLocation
from meshdsl.model.security import AuthorizationPolicy, ServiceRef
from meshdsl.model.service import NamespaceSpec, ServiceSpec, Version
from meshdsl.model.spec import MeshSpec
from meshdsl.validate.external import raw_labels

Converter = Callable[[Resource, list[Problem]], Any]
_CONVERTERS: dict[str, Converter] = {
    "VirtualService": routes.virtual_service, "DestinationRule": policies.destination_rule,
    "Gateway": policies.gateway, "PeerAuthentication": policies.peer_authentication,
    "AuthorizationPolicy": policies.authorization_policy, "EnvoyFilter": policies.rate_limit,
    "ServiceEntry": external.service_entry, "WorkloadEntry": external.workload_entry,
}
_COMPILERS: dict[str, Callable[[Any, MeshSpec], Manifest]] = {
    "VirtualService": lambda m, _: istio.virtual_service(m, {}),
    "DestinationRule": lambda m, _: istio.destination_rule(m, {}),
    "Gateway": lambda m, _: istio.gateway(m, {}),
    "PeerAuthentication": lambda m, _: istio.peer_authentication(m, {}),
    "AuthorizationPolicy": lambda m, mesh: istio.authorization_policy(m, mesh, {}),
    "EnvoyFilter": lambda m, _: istio.local_rate_limit(m, {}),
    "ServiceEntry": lambda m, _: compile_external.service_entry(m, {}),
    "WorkloadEntry": lambda m, _: compile_external.workload_entry(m, {}),
}
_FIELDS = {"VirtualService": "virtual_services", "DestinationRule": "destination_rules",
           "Gateway": "gateways", "PeerAuthentication": "peer_authentications",
           "AuthorizationPolicy": "authorization_policies", "EnvoyFilter": "rate_limits",
           "ServiceEntry": "service_entries", "WorkloadEntry": "workload_entries"}
_BUILDERS = "not expressible with the DSL's builders"


@dataclass(frozen=True)
class ImportResult:
    spec: MeshSpec  # what the generated program declares
    analysis: MeshSpec  # every object as far as the model understands it (and raw pods)
    warnings: tuple[ImporterWarning, ...]
    manifests: tuple[Manifest, ...]  # the input as the cluster sees it: what must render
    notes: tuple[str, ...]  # why each ``spec.raw`` entry is raw, in the same order
    namespace: str  # where objects without a namespace live (the mesh's own namespace)


def _principals_to_services(ap: AuthorizationPolicy, services: Sequence[ServiceSpec],
                            trust_domain: str) -> AuthorizationPolicy:
    """Name calling services instead of SPIFFE principals where one service has that
    identity (``From(services=...)`` compiles back to the same principals, first)."""
    by_account: dict[Key, list[ServiceSpec]] = {}
    for svc in services:
        by_account.setdefault((svc.namespace, svc.account), []).append(svc)
    rules = []
    for rule in ap.rules:
        sources = []
        for frm in rule.from_:
            refs: list[ServiceRef] = []
            for principal in frm.principals:
                parts = principal.split("/")
                owners = by_account.get((parts[2], parts[4]), []) if len(parts) == 5 and (
                    parts[0], parts[1], parts[3]) == (trust_domain, "ns", "sa") else []
                if len(owners) != 1:
                    break
                refs.append(ServiceRef(name=owners[0].name, namespace=owners[0].namespace))
            sources.append(frm.model_copy(update={"services": refs,
                                                  "principals": frm.principals[len(refs):]}))
        rules.append(rule.model_copy(update={"from_": sources}))
    return ap.model_copy(update={"rules": rules})


def _selected_app(res: Resource) -> tuple[str, tuple[str, ...]] | None:
    """The service an EnvoyFilter or policy selects by ``{app: name}``, and where."""
    if not res.modelled or res.kind not in ("EnvoyFilter", "PeerAuthentication",
                                            "AuthorizationPolicy"):
        return None
    path = ("spec", "workloadSelector", "labels") if res.kind == "EnvoyFilter" else (
        "spec", "selector", "matchLabels")
    value: Any = res.manifest
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    app = app_of(value) if isinstance(value, dict) else None
    return (app, path) if isinstance(app, str) else None


def _rehome(res: Resource, known: dict[Key, ServiceSpec]) -> bool:
    """Move an object written without a namespace to the namespace of the one service it
    selects, when that service is not in the default namespace but in exactly one other
    (guides often leave the namespace out of a policy for one app)."""
    found = _selected_app(res)
    if found is None or "namespace" in res.manifest["metadata"]:
        return False
    homes = [ns for ns, name in known if name == found[0]]
    if (res.namespace, found[0]) in known or len(homes) != 1:
        return False
    res.namespace = homes[0]
    res.manifest["metadata"]["namespace"] = homes[0]  # raw or typed, it now lives there
    return True


def _builder_checks(res: Resource, model: Any, problems: list[Problem],
                    known: dict[Key, ServiceSpec]) -> None:
    """What the model can hold but no builder call writes."""
    if res.kind == "PeerAuthentication" and model.selector:
        app = app_of(model.selector)
        if app is None or (model.namespace, app) not in known:
            problems.append((("spec", "selector"), "a selector other than one service's "
                             f"{{app: <name>}} is {_BUILDERS}"))
    elif res.kind == "PeerAuthentication" and model.mode is None:
        problems.append((("spec", "mtls"), f"a namespace-wide policy without a mode is "
                         f"{_BUILDERS}"))
    elif res.kind == "EnvoyFilter":
        app = app_of(model.selector)
        if app is None or (model.namespace, app) not in known:
            problems.append((("spec", "workloadSelector"), "a rate limit for workloads other "
                             f"than one service's {{app: <name>}} is {_BUILDERS}"))
        if (model.enabled_percent, model.enforced_percent, model.stat_prefix) != (
                100, 100, "http_local_rate_limiter"):
            problems.append((("spec", "configPatches"), "a rate limit that is not fully "
                             f"enabled and enforced, or has its own stat_prefix, is {_BUILDERS}"))


def _verify(res: Resource, model: Any, problems: list[Problem], known: dict[Key, ServiceSpec],
            context: MeshSpec) -> bool:
    """Whether the typed form is exact: no field left out, writable by the builders, and
    compiling to the input again. What is not is added to ``problems``."""
    _builder_checks(res, model, problems, known)
    compiled = _COMPILERS[res.kind](model, context)
    add_new(problems, tree_diff(expected(res), normalize(compiled)))
    return not problems


def _warnings(res: Resource, problems: list[Problem]) -> list[ImporterWarning]:
    if not res.modelled:
        what = f"{res.kind} is not modelled by the DSL" if (res.group, res.kind) != (
            "apps", "Deployment") and res.kind not in ("Namespace", "Service",
                                                      "ServiceAccount") else \
            f"{res.manifest.get('apiVersion')} {res.kind} is not modelled by the DSL"
        return [res.warning((), f"{what}; carried through unchanged (mesh.raw)")]
    if res.kind == "Service":
        tail = ("; the Service object is carried through unchanged (mesh.raw), the DSL's "
                "service keeps its name and ports")
    else:
        tail = f"; the whole {res.kind} is carried through unchanged (mesh.raw)"
    if not problems:
        reason = ("the DSL declares a ServiceAccount only with the Deployments that use it"
                  if res.kind == "ServiceAccount" else "not expressible in the DSL")
        return [res.warning((), reason + tail)]
    return [res.warning(path, reason + tail) for path, reason in most_precise(problems)]


def _note(res: Resource, problems: list[Problem]) -> str:
    if not res.modelled:
        return f"{res.ref}: not modelled by the DSL"
    paths = [dotted(p) or "(whole object)" for p, _ in most_precise(problems)] or [
        "not expressible"]
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    return f"{res.ref}: {', '.join(paths[:3])}{more}"


class _Import:
    """One import, phase by phase: read, type, derive services, verify, assemble."""

    def __init__(self, documents: Sequence[Document], namespace: str, duplicates: bool
                 ) -> None:
        self.namespace = namespace
        self.warnings: list[ImporterWarning] = []
        self.resources: list[Resource] = []
        seen: dict[tuple[str, str, str, str], Resource] = {}
        for doc in documents:
            res = resource(doc, namespace)
            first = seen.setdefault((res.group, res.kind, res.namespace, res.name), res)
            if first is not res and not duplicates:
                raise InputError(f"{res.ref} is defined twice (also at {first.where()}); "
                                 "kubectl would keep only the last one — remove the other",
                                 res.where())
            self.resources.append(res)
        self.typed: dict[int, tuple[Any, list[Problem]]] = {}
        self.exact: set[int] = set()

    def convert(self, res: Resource) -> None:
        problems: list[Problem] = []
        self.typed[id(res)] = (_CONVERTERS[res.kind](res, problems), problems)

    def services(self) -> tuple[list[ServiceSpec], dict[int, list[Problem]]]:
        """Services from Kubernetes objects and the hosts Istio objects name, with the
        versions their DestinationRules define (which label their Deployments' pods)."""
        namespaces = {r.namespace for r in self.resources if r.namespace} | {
            r.name for r in self.resources if r.kind == "Namespace"}
        referenced: dict[Key, SourceLocation] = {}
        routed = []
        for res in self.resources:
            if res.kind in ("VirtualService", "DestinationRule"):
                for host, path in referenced_hosts(res):
                    key = service_key(host, res.namespace, namespaces)
                    if key is not None:
                        referenced.setdefault(key, res.where(path))
            if res.kind == "VirtualService":
                routed += [(key, port, tcp) for host, port, tcp in destination_ports(res)
                           if (key := service_key(host, res.namespace, namespaces))]
        self.versions: dict[Key, list[Version]] = {}
        for res in self.resources:
            model, problems = self.typed.get(id(res), (None, []))
            if res.kind == "DestinationRule" and model is not None and _verify(
                    res, model, problems, {}, MeshSpec(name="import")):
                self.exact.add(id(res))
                owned = versions_from(model)
                if owned is not None:
                    self.versions.setdefault((model.namespace, model.name), owned)
        kube = kube_model([r for r in self.resources if r.modelled], referenced,
                          inferred_ports(routed), self.versions)
        self.exact |= kube.exact
        self.namespace_specs = kube.namespaces
        return kube.services, kube.problems

    def istio_objects(self, services: list[ServiceSpec], context: MeshSpec) -> None:
        """Verify every typed object but DestinationRules (done with the services)."""
        known = {(s.namespace, s.name): s for s in services}
        rehomed: dict[int, ImporterWarning] = {}
        for res in self.resources:
            if _rehome(res, known):
                self.convert(res)
                rehomed[id(res)] = res.warning(("metadata",), (
                    f"has no namespace; placed in {res.namespace}, the namespace of the "
                    "service it selects (kubectl would apply it to the current namespace)"))
        for res in self.resources:  # a workload selector {app: name} names a service too
            found = _selected_app(res)
            if found is not None and (res.namespace, found[0]) not in known:
                svc = ServiceSpec(name=found[0], namespace=res.namespace,
                                  source=res.where(found[1]))
                services.append(svc)
                known[(svc.namespace, svc.name)] = svc
        authz_names: set[Key] = set()
        for res in self.resources:
            model, problems = self.typed.get(id(res), (None, []))
            if model is None or res.kind == "DestinationRule":
                continue
            if res.kind == "AuthorizationPolicy":
                model = _principals_to_services(model, services, context.trust_domain)
                self.typed[id(res)] = (model, problems)
            if not _verify(res, model, problems, known, context):
                continue
            if res.kind == "AuthorizationPolicy":
                if (model.namespace, model.name) in authz_names:
                    problems.append(((), f"a second policy of the same name is {_BUILDERS}"))
                    continue
                authz_names.add((model.namespace, model.name))
            self.exact.add(id(res))
        for res in self.resources:  # a guess that gave no typed object is not worth making
            if id(res) in rehomed and id(res) not in self.exact:
                res.manifest["metadata"].pop("namespace")
                res.namespace = self.namespace
                problems = self.typed[id(res)][1]
                self.convert(res)
                self.typed[id(res)] = (self.typed[id(res)][0], problems)
            elif id(res) in rehomed:
                self.warnings.append(rehomed[id(res)])

    def typed_of(self, kind: str, *, only_exact: bool) -> list[Any]:
        return [self.typed[id(r)][0] for r in self.resources
                if r.kind == kind and self.typed.get(id(r), (None,))[0] is not None
                and (id(r) in self.exact or not only_exact)]


def to_model(documents: Sequence[Document], *, name: str | None = None,
             namespace: str = "default", default_name: str = "imported",
             duplicates: bool = False) -> ImportResult:
    """The mesh the documents describe; objects without a namespace go to ``namespace``.

    The mesh is called ``name``, else what meshdsl's ownership label on the input says
    (re-importing rendered output), else ``default_name``. Two objects of one kind, name
    and namespace are an error — kubectl would keep only the last — unless
    ``duplicates`` (analysis reports them as findings instead)."""
    run = _Import(documents, namespace, duplicates)
    for res in run.resources:
        if res.modelled and res.kind in _CONVERTERS:
            run.convert(res)
    services, kube_problems = run.services()
    mesh_name = name or next((r.mesh_label for r in run.resources if r.mesh_label),
                             default_name)
    run.istio_objects(services, MeshSpec(name=mesh_name, services=services))
    services = [s.model_copy(update={"versions": run.versions.get((s.namespace, s.name), [])})
                for s in services]

    raw, notes = [], []
    for res in run.resources:
        if id(res) not in run.exact:
            problems = run.typed.get(id(res), (None, kube_problems.get(id(res), [])))[1]
            run.warnings += _warnings(res, problems)
            raw.append(res.manifest)
            notes.append(_note(res, problems))
    fields: dict[str, Any] = {"name": mesh_name, "services": services}
    spec = MeshSpec(**fields, namespaces=run.namespace_specs, raw=raw,
                    **{f: run.typed_of(k, only_exact=True) for k, f in _FIELDS.items()})
    declared = {ns.name for ns in run.namespace_specs}
    scopes = [NamespaceSpec(name=ns, create=False) for ns in
              scoped_namespaces(spec, namespace) if ns not in declared]
    spec = spec.model_copy(update={"namespaces": [*run.namespace_specs, *scopes]})
    pods = [r for r in run.resources if id(r) not in run.exact
            and r.kind not in _FIELDS and raw_labels(r.manifest) is not None]
    analysis = MeshSpec(**fields, namespaces=spec.namespaces,
                        raw=[expected(r) for r in pods],  # their pods, at their lines
                        raw_sources=[r.where() for r in pods],
                        **{f: run.typed_of(k, only_exact=False) for k, f in _FIELDS.items()})
    return ImportResult(spec=spec, analysis=analysis, warnings=tuple(run.warnings),
                        manifests=tuple(r.manifest for r in run.resources),
                        notes=tuple(notes), namespace=namespace)

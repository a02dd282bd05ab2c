"""ServiceEntry and WorkloadEntry YAML -> the DSL's external hosts (``mesh.external``) and
the machines they select (``ns.workload_entry``)."""

from __future__ import annotations

from typing import Any, TypeVar

from meshdsl.importer.fields import Problem, build
from meshdsl.importer.manifests import Resource
from meshdsl.importer.pyexpr import Call, Expr, literal
from meshdsl.importer.pyvalues import Values
from meshdsl.model.external import ServiceEntry, WorkloadEntry, default_name, external_ports

_FIELDS = ("hosts", "addresses", "ports", "location", "resolution", "endpoints", "exportTo",
           "subjectAltNames", "workloadSelector")
E = TypeVar("E", ServiceEntry, WorkloadEntry)
_ENTRY_FIELDS = ("address", "ports", "labels", "network", "locality", "weight",
                 "serviceAccount")


def _typed(res: Resource, cls: type[E], fields: tuple[str, ...], problems: list[Problem]
           ) -> E | None:
    spec = res.spec
    problems += [(("spec", k), "not expressible in the DSL") for k in spec if k not in fields]
    data: dict[str, Any] = {"name": res.name, "namespace": res.namespace,
                            **{k: v for k, v in spec.items() if k in fields}}
    found = build(res, cls, data, ("spec",), problems)
    return None if found is None else found.model_copy(update={"source": res.where()})


def service_entry(res: Resource, problems: list[Problem]) -> ServiceEntry | None:
    return _typed(res, ServiceEntry, _FIELDS, problems)


def workload_entry(res: Resource, problems: list[Problem]) -> WorkloadEntry | None:
    return _typed(res, WorkloadEntry, _ENTRY_FIELDS, problems)


def call(se: ServiceEntry, scope: str, values: Values) -> Expr:
    """``scope.external(host, ..., ports=..., ...)`` for one ServiceEntry."""
    kwargs: list[tuple[str, Expr]] = []
    by_protocol = {p.number: p.protocol for p in se.ports if p.protocol}
    if se.ports and len(by_protocol) == len(se.ports) and \
            external_ports(by_protocol) == se.ports:
        kwargs.append(("ports", literal(by_protocol)))
    elif se.ports:
        kwargs.append(("ports", values.value(se.ports)))
    for key in ("resolution", "location"):
        if getattr(se, key) is not None:
            kwargs.append((key, literal(getattr(se, key))))
    if se.name != default_name(se.hosts[0]):
        kwargs.append(("name", literal(se.name)))
    for key in ("addresses", "export_to", "subject_alt_names"):
        if getattr(se, key):
            kwargs.append((key, literal(getattr(se, key))))
    if se.endpoints:
        kwargs.append(("endpoints", values.value(se.endpoints)))
    if se.workload_selector is not None:
        kwargs.append(("workload_selector", literal(se.workload_selector.labels)))
    return Call(f"{scope}.external", tuple(literal(h) for h in se.hosts), kwargs)


def entry_call(we: WorkloadEntry, scope: str) -> Expr:
    """``scope.workload_entry(name, address=..., labels=..., ...)`` for one WorkloadEntry."""
    kwargs = [(key, literal(getattr(we, key))) for key in (
        "address", "labels", "ports", "network", "locality", "weight", "service_account")
        if getattr(we, key) not in (None, {})]
    return Call(f"{scope}.workload_entry", (literal(we.name),), kwargs)

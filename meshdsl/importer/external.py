"""ServiceEntry YAML -> the DSL's external hosts (``mesh.external``)."""

from __future__ import annotations

from typing import Any

from meshdsl.importer.fields import Problem, build
from meshdsl.importer.manifests import Resource
from meshdsl.importer.pyexpr import Call, Expr, literal
from meshdsl.importer.pyvalues import Values
from meshdsl.model.external import ServiceEntry, default_name, external_ports

_FIELDS = ("hosts", "addresses", "ports", "location", "resolution", "endpoints", "exportTo",
           "subjectAltNames")


def service_entry(res: Resource, problems: list[Problem]) -> ServiceEntry | None:
    spec = res.spec
    problems += [(("spec", k), "not expressible in the DSL") for k in spec if k not in _FIELDS]
    data: dict[str, Any] = {"name": res.name, "namespace": res.namespace,
                            **{k: v for k, v in spec.items() if k in _FIELDS}}
    se = build(res, ServiceEntry, data, ("spec",), problems)
    return None if se is None else se.model_copy(update={"source": res.where()})


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
    return Call(f"{scope}.external", tuple(literal(h) for h in se.hosts), kwargs)

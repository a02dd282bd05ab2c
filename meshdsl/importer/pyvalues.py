"""Model values as DSL expressions: ``Uri(prefix="/a") & Header("x", exact="y")`` rather
than ``Match(uri=StringMatch(prefix="/a"), ...)``, ``reviews.v2`` rather than a
``Destination``, ``{reviews.v1: 90, reviews.v2: 10}`` for weights.

Every short form is checked to build exactly the value it stands for (by evaluating it,
or by mirroring the builder's rule), and falls back to the model's constructor when it
would not — readable where possible, always exact.
"""

from __future__ import annotations

import builtins
import keyword
import re
from typing import Any

from pydantic import BaseModel

import meshdsl
from meshdsl.importer.errors import NotExpressible
from meshdsl.importer.pyexpr import And, Call, Code, DictOf, Expr, ListOf, literal, string
from meshdsl.model.builder import Service
from meshdsl.model.matching import Match, StringMatch
from meshdsl.model.routing import Destination
from meshdsl.model.service import ServiceSpec

RESERVED = (set(keyword.kwlist) | set(dir(builtins)) | set(meshdsl.__all__)
            | {"mesh", "meshdsl"})
# Names a Service instance answers itself, so ``svc.<version>`` would not reach a version.
_SERVICE_ATTRS = set(dir(Service)) | {
    "mesh", "namespace", "name", "source", "ports", "versions", "explicit_port",
    "service_account", "kube_service", "workloads", "local_runs", "traffic_policy",
    "policy_source", "meta"}


class Names:
    """Unique Python identifiers for the objects of a program."""

    def __init__(self) -> None:
        self.taken: set[str] = set(RESERVED)

    def new(self, *candidates: str) -> str:
        for text in candidates:
            name = re.sub(r"[^0-9a-zA-Z_]", "_", text).strip("_").lower() or "x"
            name = f"n_{name}" if name[0].isdigit() else name
            if name not in self.taken:
                self.taken.add(name)
                return name
        base = re.sub(r"[^0-9a-zA-Z_]", "_", candidates[0]).strip("_").lower() or "x"
        number = 2
        while f"{base}_{number}" in self.taken:
            number += 1
        self.taken.add(f"{base}_{number}")
        return f"{base}_{number}"


class Values:
    """Renders values; records which names of ``meshdsl`` the program uses."""

    def __init__(self, services: dict[tuple[str, str], tuple[ServiceSpec, str, bool]]) -> None:
        self.services = services  # (namespace, name) -> (spec, variable, explicit_port)
        self.imports: set[str] = {"Mesh"}

    def use(self, name: str) -> str:
        self.imports.add(name)
        return name

    # -- plain models -----------------------------------------------------------------
    def model(self, obj: BaseModel, *, skip: tuple[str, ...] = ()) -> Expr:
        if isinstance(obj, Match):
            return self.match(obj)
        cls = type(obj).__name__
        if cls not in meshdsl.__all__:
            raise NotExpressible(f"{cls} is not part of the DSL's vocabulary")
        kwargs = []
        for name, info in type(obj).model_fields.items():
            value = getattr(obj, name)
            if name == "source" or name in skip or value == info.get_default(
                    call_default_factory=True):
                continue
            kwargs.append((name, self.value(value)))
        return Call(self.use(cls), (), kwargs)

    def value(self, value: Any) -> Expr:
        if isinstance(value, BaseModel):
            return self.model(value)
        if isinstance(value, list):
            return ListOf([self.value(v) for v in value])
        if isinstance(value, dict):
            return DictOf([(literal(k), self.value(v)) for k, v in value.items()])
        return literal(value)

    # -- matches ----------------------------------------------------------------------
    def _string_match(self, sm: StringMatch) -> list[tuple[str, Expr]]:
        return [(k, literal(v)) for k in ("exact", "prefix", "regex")
                if (v := getattr(sm, k)) is not None]

    def match(self, m: Match) -> Expr:
        """Helper calls joined with ``&`` when they rebuild ``m`` exactly."""
        parts: list[Expr] = []
        if m.uri is not None:
            extra = [] if m.ignore_uri_case is None else [("ignore_case",
                                                          literal(m.ignore_uri_case))]
            parts.append(Call("Uri", (), self._string_match(m.uri) + extra))
        for helper, entries in (("Header", m.headers), ("WithoutHeader", m.without_headers),
                                ("Query", m.query_params)):
            for name, sm in entries.items():
                parts.append(Call(helper, (literal(name),), self._string_match(sm)))
        if m.method is not None:
            parts.append(Call("Method", (literal(m.method.exact or ""),)))
        if m.authority is not None:
            parts.append(Call("Authority", (), self._string_match(m.authority)))
        if m.source_labels or m.source_namespace is not None:
            kwargs = [("labels", literal(m.source_labels))] if m.source_labels else []
            if m.source_namespace is not None:
                kwargs.append(("namespace", literal(m.source_namespace)))
            parts.append(Call("Caller", (), kwargs))
        if m.port is not None:
            parts.append(Call("Port", (literal(m.port),)))
        if parts:
            expr: Expr = parts[0] if len(parts) == 1 else And(parts)
            try:
                rebuilt = eval(expr.flat(), dict(vars(meshdsl)))  # our own generated text
            except (ValueError, TypeError):
                rebuilt = None
            if rebuilt == m:
                for part in parts:
                    assert isinstance(part, Call)
                    self.use(part.func)
                return expr
        kwargs = [(name, self.value(getattr(m, name))) for name, info in
                  Match.model_fields.items()
                  if getattr(m, name) != info.get_default(call_default_factory=True)]
        return Call(self.use("Match"), (), kwargs)

    # -- destinations -----------------------------------------------------------------
    def _service_of(self, host: str, scope: str) -> tuple[ServiceSpec, str, bool] | None:
        """The service whose reference the builder writes as ``host`` in ``scope``."""
        for svc, var, explicit in self.services.values():
            written = svc.name if svc.namespace == scope else \
                f"{svc.name}.{svc.namespace}.svc.cluster.local"
            if written == host:
                return svc, var, explicit
        return None

    def reference(self, dest: Destination, scope: str) -> Expr:
        """A destination without weight as ``svc``, ``svc.v1``, ``svc.subset("x").on(80)``,
        a host string, or a ``Destination``."""
        found = self._service_of(dest.host, scope)
        if found is not None:
            svc, var, explicit = found
            default_port = svc.ports[0].number if explicit and svc.ports else None
            if dest.port is not None or default_port is None:
                text = var
                if dest.subset is not None:
                    attr = dest.subset
                    usable = (attr in svc.version_names() and attr.isidentifier()
                              and not keyword.iskeyword(attr) and attr not in _SERVICE_ATTRS)
                    text += f".{attr}" if usable else f".subset({string(attr)})"
                if dest.port != default_port:
                    text += f".on({dest.port})"
                return Code(text)
        if dest.subset is None and dest.port is None:
            return literal(dest.host)
        return self.model(dest.model_copy(update={"weight": None}))

    def destinations(self, dests: list[Destination], scope: str) -> Expr:
        """``to=`` of a route: one target, a list, or a ``{target: weight}`` dict."""
        weights = [d.weight for d in dests]
        refs = [self.reference(d, scope) for d in dests]
        if all(w is None for w in weights):
            return refs[0] if len(refs) == 1 else ListOf(refs)
        if all(w is not None for w in weights) and len({r.flat() for r in refs}) == len(refs):
            return DictOf([(r, literal(w)) for r, w in zip(refs, weights, strict=True)])
        return ListOf([self.model(d) for d in dests])

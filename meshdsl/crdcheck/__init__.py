"""The offline CRD check: what a modern API server would refuse, found before applying.

Every compiled object of a kind some CRD defines is checked against that CRD's OpenAPI
schema (types, enums, patterns, required fields, and unknown fields, which the server
would drop silently; see ``meshdsl.compile.schema``) and its ``x-kubernetes-validations``
CEL rules (``meshdsl.crdcheck.rules``). A 1.20 test server ignores the rules and a 1.30
cluster enforces them, so this is where a program learns about them.

``Catalog`` holds the CRDs: the bundles shipped in ``meshdsl.crds`` by default, a user's
``--crds`` files, or a live cluster's CRDs read by the caller. Validators and rule trees
are built on first use per kind and kept, so one catalog serves many checks. ``check``
returns plain violations; ``check_mesh`` returns findings at the program's file:line and
is what ``meshctl validate``/``render``/``analyze`` and a plan call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from meshdsl.compile.manifest import Manifest, ResourceKey
from meshdsl.compile.schema import GVK, SchemaIndex, crd_versions, dotted, gvk_of
from meshdsl.crdcheck.rules import RuleError, RuleNode, compile_rules, evaluate
from meshdsl.crdcheck.sources import locate
from meshdsl.model.base import SourceLocation
from meshdsl.model.spec import MeshSpec
from meshdsl.validate.findings import Finding, error

__all__ = ["Catalog", "Placed", "RuleError", "Violation", "check", "check_documents",
           "check_mesh", "default_catalog"]

SCHEMA_CODE = "MD140"
RULE_CODE = "MD141"


@dataclass(frozen=True)
class Violation:
    """One object breaks its CRD: the schema (``rule`` empty) or a CEL rule."""

    key: ResourceKey
    path: tuple[str | int, ...]
    message: str
    rule: str = ""

    def __str__(self) -> str:
        return f"{self.key} {dotted(self.path)}: {self.message}"


class Catalog:
    """CRDs by (group, version, kind), with their validators and rule trees cached."""

    def __init__(self, crds: Iterable[dict[str, Any]]) -> None:
        documents = list(crds)
        self.schemas = SchemaIndex(documents)
        self._sources = dict(crd_versions(documents))
        self._rules: dict[GVK, RuleNode | None] = {}

    def knows(self, manifest: Manifest) -> bool:
        return self.schemas.knows(manifest)

    def rules(self, key: GVK) -> RuleNode | None:
        """The compiled rule tree of a kind (RuleError for a rule that does not compile)."""
        if key not in self._rules:
            self._rules[key] = compile_rules(self._sources[key])
        return self._rules[key]

    def check(self, manifest: Manifest) -> list[Violation]:
        """Violations of one object; empty when valid or when no CRD defines its kind."""
        if not self.knows(manifest):
            return []
        key = ResourceKey.of(manifest)
        out = [Violation(key, e.path, e.message)
               for e in self.schemas.violations(manifest)]
        tree = self.rules(gvk_of(manifest))
        if tree is not None:
            out += [Violation(key, f.path, f.message, f.rule)
                    for f in evaluate(tree, manifest)]
        return out


_DEFAULT: list[Catalog] = []


def default_catalog() -> Catalog:
    """The catalog of the bundled CRDs (Istio, Gateway API experimental), built once."""
    if not _DEFAULT:
        from meshdsl.crds import bundled

        _DEFAULT.append(Catalog(bundled()))
    return _DEFAULT[0]


def check(manifests: Iterable[Manifest], catalog: Catalog | None = None) -> list[Violation]:
    """Every violation of every object, in the objects' order."""
    chosen = catalog or default_catalog()
    return [v for manifest in manifests for v in chosen.check(manifest)]


class Placed(Protocol):
    """An object and where its parts were written (an imported YAML document)."""

    @property
    def manifest(self) -> dict[str, Any]: ...

    def where(self, path: Sequence[str | int] = ()) -> SourceLocation: ...


def _finding(violation: Violation, source: SourceLocation | None) -> Finding:
    key = violation.key
    path = f"{key.kind} {key.namespace}/{key.name} {dotted(violation.path)}".rstrip()
    if violation.rule:
        message = f"{violation.message} (CEL rule: {violation.rule})"
        return error(RULE_CODE, path, message, source)
    return error(SCHEMA_CODE, path, violation.message, source)


def _sorted(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(set(findings), key=Finding.sort_key)


def check_mesh(spec: MeshSpec, manifests: Iterable[Manifest],
               catalog: Catalog | None = None) -> list[Finding]:
    """The violations of a program's compiled objects as findings at its file:line
    (``manifests`` is read once, so it may be a stream)."""
    violations = check(manifests, catalog)
    if not violations:
        return []
    located = locate(spec)

    def source(v: Violation) -> SourceLocation | None:
        where = located.get((v.key.kind, v.key.namespace, v.key.name))
        return where.at(v.path) if where else None

    return _sorted(_finding(v, source(v)) for v in violations)


def check_documents(documents: Iterable[Placed], catalog: Catalog | None = None
                    ) -> list[Finding]:
    """The violations of YAML objects as findings at the YAML's file:line."""
    chosen = catalog or default_catalog()
    return _sorted(_finding(v, doc.where(v.path)) for doc in documents
                   for v in chosen.check(doc.manifest))

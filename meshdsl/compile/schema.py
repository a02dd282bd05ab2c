"""Offline checks of objects against their CRDs' OpenAPI (structural) schemas.

The API server silently prunes fields its schema does not know, so this check is stricter
than the server: every object schema that lists properties is closed
(``additionalProperties: false``) unless it preserves unknown fields — a typo that the
server would drop without a word is reported here. Kubernetes' own keywords become JSON
Schema (``nullable``, ``x-kubernetes-int-or-string``); formats are not asserted, as the
server asserts only a few. Validation runs in ``jsonschema-rs``: Istio's schemas are large
``oneOf`` trees, and a pure-Python validator needs seconds for a thousand services.
Callers pass the CRD documents; this module only reads data.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

from meshdsl.compile.manifest import Manifest

GVK = tuple[str, str, str]


def _structural(schema: Any) -> Any:
    """A Kubernetes structural schema as closed Draft 7 JSON Schema."""
    if isinstance(schema, list):
        return [_structural(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _structural(v) for k, v in schema.items()
           if k != "x-kubernetes-validations"}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    if out.get("x-kubernetes-int-or-string") and "type" not in out and "anyOf" not in out:
        out["type"] = ["integer", "string"]
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def gvk_of(manifest: Manifest) -> GVK:
    group, _, version = str(manifest.get("apiVersion", "")).rpartition("/")
    return (group, version, str(manifest.get("kind", "")))


def crd_versions(crds: Iterable[dict[str, Any]]) -> Iterable[tuple[GVK, dict[str, Any]]]:
    """(group, version, kind) and the ``openAPIV3Schema`` of every version of every CRD;
    the first CRD to define a kind wins (so ``--crds`` can shadow the bundles)."""
    seen: set[GVK] = set()
    for crd in crds:
        if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd.get("spec") or {}
        for version in spec.get("versions") or []:
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            key = (str(spec.get("group", "")), str(version.get("name", "")),
                   str((spec.get("names") or {}).get("kind", "")))
            if isinstance(schema, dict) and key not in seen:
                seen.add(key)
                yield key, schema


@dataclass(frozen=True)
class SchemaError:
    """One violation: where in the object (path segments) and what is wrong."""

    path: tuple[str | int, ...]
    message: str


def dotted(path: Iterable[str | int]) -> str:
    """``spec.http[0].route`` for ``("spec", "http", 0, "route")``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


class SchemaIndex:
    """Validators by (group, version, kind), built lazily from CustomResourceDefinitions."""

    def __init__(self, crds: Iterable[dict[str, Any]]) -> None:
        self._schemas: dict[GVK, dict[str, Any]] = dict(crd_versions(crds))
        self._validators: dict[GVK, Any] = {}

    def knows(self, manifest: Manifest) -> bool:
        return gvk_of(manifest) in self._schemas

    def kinds(self) -> set[GVK]:
        return set(self._schemas)

    def _validator(self, key: GVK) -> Any:
        validator = self._validators.get(key)
        if validator is None:
            closed = _structural(copy.deepcopy(self._schemas[key]))
            closed.setdefault("properties", {}).update(
                {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                 "metadata": {"type": "object"}})
            closed.pop("additionalProperties", None)
            validator = jsonschema_rs.Draft7Validator(closed, validate_formats=False)
            self._validators[key] = validator
        return validator

    def violations(self, manifest: Manifest) -> list[SchemaError]:
        """Schema violations of an object of a known kind; empty when valid."""
        validator = self._validator(gvk_of(manifest))
        if validator.is_valid(manifest):
            return []
        out = {SchemaError(tuple(e.instance_path), _message(e))
               for e in validator.iter_errors(manifest)}
        return sorted(out, key=lambda e: (dotted(e.path), e.message))

    def errors(self, manifest: Manifest) -> list[str]:
        """Schema violations as ``path: message`` lines; empty when valid."""
        if not self.knows(manifest):
            return [f"no schema for {manifest.get('apiVersion')} {manifest.get('kind')}"]
        return [f"{dotted(e.path)}: {e.message}" for e in self.violations(manifest)]


def _message(error: Any) -> str:
    kind = error.kind
    if type(kind).__name__ == "AdditionalProperties":
        names = ", ".join(repr(n) for n in kind.unexpected)
        return (f"unknown field(s) {names}: the API server would drop them without a "
                "word")
    return str(error.message)

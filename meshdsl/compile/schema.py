"""Offline checks of compiled objects against Istio's CRD schemas.

The API server silently prunes fields its schema does not know, so this check is stricter
than the server: every object schema that lists properties is closed
(``additionalProperties: false``) unless it preserves unknown fields. Callers load the
CRD documents (``crd-all.gen.yaml``); this module only reads data.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from jsonschema import Draft7Validator

from meshdsl.compile.manifest import Manifest


def _close(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _close(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_close(v) for v in schema]
    return schema


class SchemaIndex:
    """Validators by (group, version, kind), built from CustomResourceDefinitions."""

    def __init__(self, crds: Iterable[dict[str, Any]]) -> None:
        self._validators: dict[tuple[str, str, str], Draft7Validator] = {}
        for crd in crds:
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec.get("versions", []):
                schema = version.get("schema", {}).get("openAPIV3Schema")
                if schema is None:
                    continue
                closed = _close(copy.deepcopy(schema))
                closed.setdefault("properties", {}).update(
                    {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                     "metadata": {"type": "object"}})
                closed.pop("additionalProperties", None)
                key = (spec["group"], version["name"], spec["names"]["kind"])
                self._validators[key] = Draft7Validator(closed)

    def knows(self, manifest: Manifest) -> bool:
        return self._key(manifest) in self._validators

    @staticmethod
    def _key(manifest: Manifest) -> tuple[str, str, str]:
        group, _, version = str(manifest.get("apiVersion", "")).rpartition("/")
        return (group, version, str(manifest.get("kind", "")))

    def errors(self, manifest: Manifest) -> list[str]:
        """Schema violations as ``path: message`` lines; empty when valid."""
        validator = self._validators.get(self._key(manifest))
        if validator is None:
            return [f"no schema for {manifest.get('apiVersion')} {manifest.get('kind')}"]
        return [f"{'.'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
                for err in sorted(validator.iter_errors(manifest), key=str)]

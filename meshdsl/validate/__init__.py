"""Validation before anything is applied: every finding, never just the first.

Each rule family is a module with ``check(mesh) -> Iterator[Finding]``; ``validate``
runs them all and returns the findings sorted by the user's file and line.
"""

from __future__ import annotations

from meshdsl.model.spec import MeshSpec
from meshdsl.validate import (
    ambient,
    external,
    gateways,
    names,
    references,
    routing,
    security,
    tenancy,
)
from meshdsl.validate.findings import CODES, Finding, Severity, has_errors

__all__ = ["CODES", "Finding", "Severity", "has_errors", "validate"]

_RULES = (names, references, external, routing, gateways, security, tenancy, ambient)


def validate(mesh: MeshSpec) -> list[Finding]:
    findings = {f for rule in _RULES for f in rule.check(mesh)}
    return sorted(findings, key=Finding.sort_key)

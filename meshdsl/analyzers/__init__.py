"""``istioctl analyze``'s checks on input YAML, with Istio's semantics.

``meshctl analyze`` first imports the YAML into the model and runs meshdsl's validator;
that sees the mesh as meshdsl does (every host resolved to a service of the mesh). For the
codes that claim an istioctl counterpart, the answer must be istioctl's: the same objects
flagged and no others. So those checks run here on the objects as written, with Istio's
registry (Services and ServiceEntries, their ``exportTo`` and ports; see ``registry``),
and replace the model's findings of those codes. Each analyzer mirrors one of istioctl's
(``pkg/config/analysis/analyzers``); findings keep meshdsl's codes, whose ``istio_code``
names istioctl's message.
"""

from __future__ import annotations

from collections.abc import Iterable

from meshdsl.analyzers import destinationrules, gateways, matches, services, virtualservices
from meshdsl.analyzers.registry import build
from meshdsl.crdcheck import Placed
from meshdsl.validate.findings import Finding

__all__ = ["REPLACED", "Placed", "analyze"]

# The model validator's codes these analyzers answer for on input YAML.
REPLACED = frozenset({"MD101", "MD102", "MD104", "MD105", "MD106", "MD107", "MD108"})


def analyze(documents: Iterable[Placed], *, namespace: str = "default") -> list[Finding]:
    """istioctl's findings (as meshdsl codes) for the input objects, at their lines."""
    registry = build(documents, namespace)
    found = {finding for module in (virtualservices, matches, gateways, destinationrules,
                                    services) for finding in module.check(registry)}
    return sorted(found, key=Finding.sort_key)

"""Object names and namespaces Kubernetes would accept — and that are safe as file names.

Kubernetes rejects a namespace that is not a DNS-1123 label and most object names that
are not DNS-1123 subdomains; a name like ``../../x`` would also steer ``meshctl render
-o DIR`` out of ``DIR``. So every name and namespace the mesh declares (its own objects
and the ``raw`` ones it carries) is checked here, before anything is compiled or applied.
Service names are labels too (they become DNS names).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from meshdsl.model.base import SourceLocation
from meshdsl.model.spec import MeshSpec
from meshdsl.validate.findings import Finding, error

__all__ = ["check", "is_label", "is_subdomain"]

_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")  # at most 63 characters
_SUBDOMAIN = re.compile(rf"{_LABEL.pattern}(?:\.{_LABEL.pattern})*")
_SHOWN = 80


def is_label(value: str) -> bool:
    """A DNS-1123 label: lowercase letters, digits and '-', at most 63, alphanumeric ends."""
    return _LABEL.fullmatch(value) is not None


def is_subdomain(value: str) -> bool:
    """A DNS-1123 subdomain: dot-separated labels, at most 253 characters."""
    return len(value) <= 253 and _SUBDOMAIN.fullmatch(value) is not None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def _finding(path: str, what: str, value: object, rule: str,
             source: SourceLocation | None) -> Finding:
    return error("MD116", path, f"{what} {_shown(value)} is not a valid Kubernetes name: "
                 f"{rule}", source)


_LABEL_RULE = "use at most 63 lowercase letters, digits and '-', starting and ending " \
              "with a letter or digit"
_SUBDOMAIN_RULE = "use lowercase letters, digits, '-' and '.', at most 253, each part " \
                  "starting and ending with a letter or digit"


def _check(path: str, name: object, namespace: object, *, label_name: bool,
           source: SourceLocation | None) -> Iterator[Finding]:
    if namespace is not None and not (isinstance(namespace, str) and is_label(namespace)):
        yield _finding(path, "namespace", namespace, _LABEL_RULE, source)
    valid = isinstance(name, str) and (is_label(name) if label_name else is_subdomain(name))
    if not valid:
        yield _finding(path, "name", name, _LABEL_RULE if label_name else _SUBDOMAIN_RULE,
                       source)


def check(mesh: MeshSpec) -> Iterator[Finding]:
    for ns in mesh.namespaces:
        yield from _check(f"Namespace {ns.name}", ns.name, None, label_name=True,
                          source=ns.source)
    if not is_label(mesh.root_namespace):
        yield _finding("Mesh root_namespace", "namespace", mesh.root_namespace,
                       _LABEL_RULE, None)
    groups: list[tuple[str, list[Any], bool]] = [
        ("Service", list(mesh.services), True),
        ("VirtualService", list(mesh.virtual_services), False),
        ("DestinationRule", list(mesh.destination_rules), False),
        ("Gateway", list(mesh.gateways), False),
        ("PeerAuthentication", list(mesh.peer_authentications), False),
        ("AuthorizationPolicy", list(mesh.authorization_policies), False),
        ("LocalRateLimit", list(mesh.rate_limits), False),
        ("ServiceEntry", list(mesh.service_entries), False),
        ("WorkloadEntry", list(mesh.workload_entries), False),
    ]
    good_namespaces: set[str] = set()  # a mesh has many objects in few namespaces
    for kind, items, label_name in groups:
        longest, pattern = (63, _LABEL) if label_name else (253, _SUBDOMAIN)
        for item in items:
            name = getattr(item, "name", None)
            namespace = getattr(item, "namespace", None)
            if (isinstance(name, str) and len(name) <= longest
                    and pattern.fullmatch(name) is not None and isinstance(namespace, str)
                    and (namespace in good_namespaces or is_label(namespace))):
                good_namespaces.add(namespace)
                continue  # the common case: no path to format
            yield from _check(f"{kind} {namespace}/{name}", name, namespace,
                              label_name=label_name, source=getattr(item, "source", None))
    for i, raw in enumerate(mesh.raw):
        metadata = raw.get("metadata")
        meta = metadata if isinstance(metadata, dict) else {}
        yield from _check(f"raw[{i}] {raw.get('kind')}", meta.get("name"),
                          meta.get("namespace"), label_name=False, source=None)

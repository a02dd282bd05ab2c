"""``meshctl analyze``: the validator's findings on existing YAML.

The validator runs on the import's ``analysis`` spec — every object as far as the model
understands it, with its YAML file:line — so the findings are those ``meshctl validate``
reports for the imported program, located in the YAML. One difference is deliberate:
hosts that a ServiceEntry declares are in Istio's registry although they are not
services of the mesh, so "unknown host" (MD102) is not reported for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from meshdsl.compile.manifest import Manifest
from meshdsl.importer.to_model import to_model
from meshdsl.importer.yamlsource import Document, load_files
from meshdsl.model.spec import MeshSpec
from meshdsl.validate import Finding, raw_routes, validate
from meshdsl.validate.hosts import matches


def _entry_hosts(manifests: Sequence[Manifest]) -> list[str]:
    out: list[str] = []
    for m in manifests:
        spec = m.get("spec")
        if m.get("kind") == "ServiceEntry" and isinstance(spec, dict):
            out += [h for h in spec.get("hosts") or [] if isinstance(h, str)]
    return out


def _registered(spec: MeshSpec, hosts: list[str]) -> set[str]:
    """Paths of MD102 findings whose host a ServiceEntry declares."""
    paths: set[str] = set()

    def known(host: str) -> bool:
        return any(matches(pattern, host) for pattern in hosts)

    for vs in spec.virtual_services:
        base = f"VirtualService {vs.namespace}/{vs.name}"
        for i, route in enumerate(vs.http):
            paths |= {f"{base} http[{i}].route[{j}]" for j, d in enumerate(route.to)
                      if known(d.host)}
            if route.mirror is not None and known(route.mirror.host):
                paths.add(f"{base} http[{i}].mirror")
        for i, tcp in enumerate(vs.tcp):
            paths |= {f"{base} tcp[{i}].route[{j}]" for j, d in enumerate(tcp.to)
                      if known(d.host)}
    paths |= {f"DestinationRule {dr.namespace}/{dr.name} host"
              for dr in spec.destination_rules if known(dr.host)}
    return paths


def analyze_documents(documents: Sequence[Document], *, namespace: str = "default"
                      ) -> list[Finding]:
    result = to_model(documents, namespace=namespace, duplicates=True)
    findings = validate(result.analysis)
    hosts = _entry_hosts(result.manifests)
    if hosts:
        skip = _registered(result.analysis, hosts)
        findings = [f for f in findings if not (f.code == "MD102" and f.path in skip)]
    return sorted({*findings, *_gateway_api_findings(documents, result.analysis)},
                  key=Finding.sort_key)


def _gateway_api_findings(documents: Sequence[Document], analysis: MeshSpec) -> list[Finding]:
    """Gateway API routes travel as raw manifests: check them (MD131, MD132) at their line."""
    docs = [d for d in documents
            if str(d.manifest.get("apiVersion", "")).startswith("gateway.networking.k8s.io/")]
    if not docs:
        return []
    where = {id(d.manifest): d.where() for d in docs}
    spec = analysis.model_copy(update={"raw": [d.manifest for d in docs]})
    return list(raw_routes.check(spec, where=lambda m: where.get(id(m))))


def analyze(paths: Iterable[str | Path], *, namespace: str = "default") -> list[Finding]:
    """The findings for YAML files, at their file:line."""
    return analyze_documents(load_files(paths), namespace=namespace)

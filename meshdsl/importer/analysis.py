"""``meshctl analyze``: the validator's findings on existing YAML.

The validator runs on the import's ``analysis`` spec — every object as far as the model
understands it, with its YAML file:line — so the findings are those ``meshctl validate``
reports for the imported program, located in the YAML. For the codes that name an
istioctl counterpart (unknown hosts and subsets, gateways, host conflicts) the answer must
be istioctl's, which knows ServiceEntries, ``exportTo`` and ports: those come from
``meshdsl.analyzers`` on the objects as written, in place of the model's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from meshdsl.analyzers import REPLACED
from meshdsl.analyzers import analyze as istio_analyze
from meshdsl.importer.gateway_api import read_ambient
from meshdsl.importer.manifests import applied
from meshdsl.importer.to_model import to_model
from meshdsl.importer.yamlsource import Document, load_files
from meshdsl.model.spec import MeshSpec
from meshdsl.validate import Finding, raw_routes, validate


def analyze_documents(documents: Sequence[Document], *, namespace: str = "default"
                      ) -> list[Finding]:
    documents = [applied(d) for d in documents]  # a live object's defaults are no findings
    ambient = read_ambient(documents, namespace)  # routes of ambient namespaces, typed
    result = to_model(ambient.documents, namespace=namespace, duplicates=True)
    analysis = result.analysis.model_copy(update={"data_plane": ambient.data_plane})
    findings = [f for f in validate(analysis) if f.code not in REPLACED]
    findings += istio_analyze(documents, namespace=namespace)
    findings += _gateway_api_findings(ambient.documents, analysis)
    return sorted(set(findings), key=Finding.sort_key)


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

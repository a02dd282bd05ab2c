"""The options of the offline CRD check, shared by ``validate``, ``render`` and ``analyze``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated

import typer

from meshdsl.compile.manifest import Manifest
from meshdsl.crdcheck import Catalog, Placed, RuleError, check_documents, check_mesh
from meshdsl.model.spec import MeshSpec
from meshdsl.validate import Finding
from reconciler.cli.app import fail
from reconciler.runtime.crds import CrdSourceError, catalog

CrdsOpt = Annotated[list[str] | None, typer.Option(
    "--crds", help="CRD file or directory to check objects against (repeatable; default: "
    "the cluster's CRDs with --kubeconfig/--context, else the bundled Istio and Gateway "
    "API CRDs).", show_default=False)]
CrdKubeconfigOpt = Annotated[str | None, typer.Option(
    "--kubeconfig", help="Check objects against this cluster's CRDs.")]
CrdContextOpt = Annotated[str | None, typer.Option("--context", help="Kubeconfig context.")]
NoCrdCheckOpt = Annotated[bool, typer.Option(
    "--no-crd-check", help="Skip the offline CRD schema and CEL rule check.")]


@dataclass(frozen=True)
class CrdCheck:
    """The CRDs the options chose; read only when a check runs."""

    crds: tuple[str, ...]
    kubeconfig: str | None
    context: str | None

    def catalog(self) -> Catalog:
        """The catalog for the options; unreadable CRDs exit 2 with one line."""
        try:
            return catalog(self.crds, kubeconfig=self.kubeconfig, context=self.context)
        except CrdSourceError as exc:
            fail(str(exc), 2)


def crd_check(crds: CrdsOpt = None, kubeconfig: CrdKubeconfigOpt = None,
              context: CrdContextOpt = None, no_crd_check: NoCrdCheckOpt = False
              ) -> CrdCheck | None:
    """The option group ``--crds/--kubeconfig/--context/--no-crd-check``
    (:func:`~reconciler.cli.options.option_groups`); ``None``: no check."""
    return None if no_crd_check else CrdCheck(tuple(crds or ()), kubeconfig, context)


def mesh_findings(spec: MeshSpec, manifests: Iterable[Manifest], chosen: Catalog
                  ) -> list[Finding]:
    try:
        return check_mesh(spec, manifests, chosen)
    except RuleError as exc:
        fail(str(exc), 2)


def document_findings(documents: Sequence[Placed], chosen: Catalog) -> list[Finding]:
    try:
        return check_documents(documents, chosen)
    except RuleError as exc:
        fail(str(exc), 2)

"""Fixtures that run real components for the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.targets.kube import KubeTarget
from reconciler.testing.apiserver import ComponentsMissingError, LocalApiServer


@pytest.fixture(scope="session")
def apiserver() -> Iterator[LocalApiServer]:
    """A real kube-apiserver 1.20.2 + etcd with Istio's CRDs installed, shared by the session.

    There is no namespace controller: tests should use their own names (or namespaces) and
    never rely on deleting a namespace.
    """
    server = LocalApiServer()
    try:
        server.start()
    except ComponentsMissingError as err:
        pytest.fail(f"{err}\n(deselect with -m 'not integration')", pytrace=False)
    try:
        server.install_crds()
        yield server
    finally:
        server.stop()


@pytest.fixture
def target(apiserver: LocalApiServer) -> Iterator[KubeTarget]:
    """A kube target on :func:`apiserver`, as its administrator."""
    with KubeTarget.from_kubeconfig(str(apiserver.kubeconfig)) as opened:
        yield opened

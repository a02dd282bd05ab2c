"""Fixtures that run real components for the integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from reconciler.demo.apps import DemoApp
from reconciler.processes.ports import free_port
from reconciler.targets.envoy import EnvoyProcess
from reconciler.targets.kube import KubeTarget
from reconciler.testing.apiserver import ComponentsMissingError, LocalApiServer
from reconciler.testing.envoy_config import http_listener


def unique(prefix: str) -> str:
    """A name no other test uses (they share the session's API server)."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


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
def unreachable_kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig whose only cluster is https://127.0.0.1:1, where nothing listens."""
    path = tmp_path / "unreachable.kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "x"}}]}))
    return path


@pytest.fixture
def target(apiserver: LocalApiServer) -> Iterator[KubeTarget]:
    """A connection to the session's API server, closed after the test."""
    with KubeTarget.from_kubeconfig(str(apiserver.kubeconfig)) as opened:
        yield opened


# --- one Envoy in front of reviews v1 and v2 (the Envoy, Prometheus and metrics tests) -----

ROUTES = "reviews:9080"


@pytest.fixture(scope="module")
def reviews() -> Iterator[tuple[DemoApp, DemoApp]]:
    with DemoApp("reviews", "v1") as v1, DemoApp("reviews", "v2") as v2:
        yield v1, v2


@pytest.fixture
def envoy(tmp_path: Path) -> Iterator[EnvoyProcess]:
    with EnvoyProcess(tmp_path / "envoy", node_id="reviews-gateway", drain_time_s=2) as proc:
        yield proc


@dataclass(frozen=True)
class Ingress:
    """A listener on a free port routing by the RDS table ``ROUTES``."""

    port: int

    @property
    def listeners(self) -> list[dict[str, object]]:
        return [http_listener("ingress", self.port, route_config_name=ROUTES)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/reviews/1"


@pytest.fixture
def ingress() -> Ingress:
    return Ingress(free_port())

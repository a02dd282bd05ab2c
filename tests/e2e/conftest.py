"""Fixtures for the end-to-end canary tests: a small mesh with a canaried ``reviews``,
every process real (Envoy, Prometheus, demo apps) and on 127.0.0.1."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from meshdsl.model import Mesh
from meshdsl.model.canary import LatencyP99, SuccessRate, Webhook
from meshdsl.model.spec import MeshSpec
from reconciler.demo.apps import demo_command as demo
from reconciler.demo.prometheus import PrometheusError, find_prometheus
from reconciler.targets.envoy.binary import find_envoy
from reconciler.targets.envoy.errors import EnvoyNotFoundError
from tests.e2e.test_reconcile_canary import Reconciler

NS, SERVICE = "shop", "reviews"
INTERVAL = 2.0




def canary_mesh(*, v2: Sequence[str] = (), v3: Sequence[str] = (), target: str = "v2",
                stable: str = "v1", steps: Sequence[int] = (20, 50, 100),
                webhooks: Sequence[Webhook] = (), no_data_limit: int = 5,
                max_failed_checks: int = 2, analysis: str = "interval",
                mode: str = "sidecar") -> MeshSpec:
    """``reviews`` v1 (healthy), v2 and v3 (demo apps with these flags) behind sidecars, a
    ``client`` sidecar to send traffic through, and a canary plan with 2 s intervals.
    The checks read 10 s windows: Envoy flushes histograms every 5 s. ``mode="ambient"``
    runs the namespace on L4 proxies and a waypoint instead, judged on the waypoint."""
    mesh = Mesh("canary-e2e", namespace=NS, mode=mode)
    reviews = mesh.service(SERVICE, port=9080, versions=["v1", "v2", "v3"])
    reviews.route(to={reviews.v1: 100})
    reviews.run_locally("v1", command=demo())
    reviews.run_locally("v2", command=demo(*v2))
    reviews.run_locally("v3", command=demo(*v3))
    mesh.service("client", port=8080).deploy("v1", image="none")
    reviews.canary(target=target, stable=stable, steps=list(steps), interval=f"{INTERVAL:g}s",
                   checks=[SuccessRate(99, interval="10s"), LatencyP99(400, interval="10s")],
                   min_requests=5, no_data_limit=no_data_limit,
                   max_failed_checks=max_failed_checks, webhooks=list(webhooks),
                   analysis=analysis)  # type: ignore[arg-type]
    return mesh.build()


@pytest.fixture(scope="session", autouse=True)
def _components() -> None:
    try:
        find_envoy()
        find_prometheus()
    except (PrometheusError, EnvoyNotFoundError) as err:
        pytest.fail(f"{err}\n(deselect with -m 'not integration')", pytrace=False)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "state"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def reconciler(tmp_path: Path) -> Iterator[Reconciler]:
    """``meshctl reconcile --target local`` tracking a Git server of its own (start it with
    the flags the test needs); stopped after the test."""
    rec = Reconciler(tmp_path)
    try:
        yield rec
    finally:
        rec.stop()

"""The dashboard in a real headless Chromium, on the real local mesh with traffic flowing:
bookinfo's graph shows its edges with non-zero RPS, and a faulty reviews v3 turns its edge
red within seconds. Screenshots go to the test's output directory."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.dashboard import serve_local
from reconciler.demo.apps import DEMO_APP
from reconciler.demo.traffic import TrafficGenerator
from reconciler.runtime.loader import load
from reconciler.targets.envoy.binary import find_envoy
from reconciler.targets.envoy.errors import EnvoyNotFoundError
from reconciler.targets.envoy.mesh import LocalMesh
from reconciler.testing.browser import BrowserMissing, chromium
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.integration

_DEMO_EXPR = 'str(Path(__file__).resolve().parent.parent / "apps" / "demo_app.py")'
_ROUTE = "reviews.route(to={reviews.v1: 100})"
_V3 = 'reviews.run_locally("v3", command=demo_app("ratings/ratings/0"))'


def program(tmp: Path, *, v3_errors: float) -> Path:
    """Bookinfo with reviews split over v1/v2/v3 (so every version gets traffic) and v3
    answering 5xx at ``v3_errors``."""
    text = (EXAMPLES / "bookinfo" / "mesh.py").read_text()
    assert _DEMO_EXPR in text and _ROUTE in text and _V3 in text
    text = text.replace(_DEMO_EXPR, repr(str(DEMO_APP)))
    text = text.replace(_ROUTE, "reviews.route(to={reviews.v1: 34, reviews.v2: 33, "
                        "reviews.v3: 33})")
    text = text.replace(_V3, 'reviews.run_locally("v3", command=demo_app("ratings/ratings/0")'
                        f' + ["--error-rate", "{v3_errors}", "--fail-first", "0"])')
    path = tmp / f"mesh-{v3_errors}.py"
    path.write_text(text)
    return path


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        with chromium() as driver:
            yield driver
    except BrowserMissing as exc:
        pytest.skip(str(exc))


def edges(driver: Any) -> dict[str, dict[str, Any]]:
    """The page's edge table, as rendered in the DOM."""
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('#edges tbody tr')).map(r => "
        "({id: r.dataset.edge, health: r.dataset.health, rps: parseFloat(r.dataset.rps)}))")
    return {r["id"]: r for r in rows}


def wait_page(driver: Any, check: Any, timeout: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    seen: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        seen = edges(driver)
        if check(seen):
            return seen
        time.sleep(0.5)
    raise AssertionError(f"the page never showed it; last edges: {seen}")


def colour(driver: Any, edge_id: str) -> str:
    return str(driver.execute_script(
        "return window.cy.getElementById(arguments[0]).style('line-color')", edge_id))


EXPECTED = ("wl:bookinfo/productpage/v1->svc:bookinfo/reviews",
            "svc:bookinfo/reviews->wl:bookinfo/reviews/v1",
            "svc:bookinfo/reviews->wl:bookinfo/reviews/v2",
            "svc:bookinfo/reviews->wl:bookinfo/reviews/v3",
            "wl:bookinfo/reviews/v2->svc:bookinfo/ratings",
            "wl:bookinfo/reviews/v3->svc:bookinfo/ratings")
GATEWAY_EDGE = "gw:bookinfo/bookinfo-gateway->svc:bookinfo/productpage"
V3_EDGE = "svc:bookinfo/reviews->wl:bookinfo/reviews/v3"


def test_bookinfo_graph_live_and_a_faulty_v3_turns_red(browser: Any, tmp_path: Path,
                                                       request: pytest.FixtureRequest
                                                       ) -> None:
    try:
        find_envoy()
    except EnvoyNotFoundError as exc:
        pytest.skip(str(exc))
    out = tmp_path / "screenshots"
    out.mkdir()
    healthy = load(str(program(tmp_path, v3_errors=0))).spec
    mesh = LocalMesh(healthy, workdir=tmp_path / "mesh")
    with ExitStack() as running:   # stopped in reverse: traffic, board, mesh
        running.callback(mesh.stop)
        mesh.start()
        board = serve_local(mesh, title="meshdsl bookinfo")
        assert board is not None
        running.callback(board.stop)
        running.enter_context(TrafficGenerator(f"{mesh.gateway_url()}/productpage", rate=20,
                                               max_seconds=240))
        browser.get(board.url)

        def all_flowing(seen: dict[str, dict[str, Any]]) -> bool:
            live = {k for k, v in seen.items() if v["rps"] > 0}
            return GATEWAY_EDGE in live and all(e in live for e in EXPECTED)
        seen = wait_page(browser, all_flowing, 60)
        flowing = [k for k, v in seen.items() if v["rps"] > 0]
        assert all(seen[e]["health"] == "healthy" for e in flowing), seen
        # every node that takes part in the flow is on the page
        nodes = set(browser.execute_script("return window.cy.nodes().map(n => n.id())"))
        for edge in flowing:
            src, dst = edge.split("->")
            assert src in nodes and dst in nodes
        assert colour(browser, V3_EDGE) == "rgb(22,163,74)"   # healthy green
        browser.save_screenshot(str(out / "graph-healthy.png"))

        faulty = load(str(program(tmp_path, v3_errors=0.6))).spec
        mesh.apply(faulty)
        changed = time.monotonic()
        seen = wait_page(browser, lambda s: s.get(V3_EDGE, {}).get("health") == "failure",
                         30)
        took = time.monotonic() - changed
        assert colour(browser, V3_EDGE) == "rgb(220,38,38)"    # failure red
        assert seen["svc:bookinfo/reviews->wl:bookinfo/reviews/v1"]["health"] == "healthy"
        browser.save_screenshot(str(out / "graph-faulty-v3.png"))
        print(f"v3 edge red {took:.1f}s after the faulty version was applied; "
              f"screenshots in {out}")
        keep = Path(request.config.rootpath) / "out" / "dashboard"
        keep.mkdir(parents=True, exist_ok=True)
        for shot in out.iterdir():
            shutil.copy(shot, keep / shot.name)


def page_canary(driver: Any) -> dict[str, Any] | None:
    return driver.execute_script(  # type: ignore[no-any-return]
        "const c = document.querySelector('.canary'); if (!c) return null; return {"
        "phase: c.dataset.phase, stage: c.dataset.stage, weights: JSON.parse(c.dataset.weights),"
        " why: c.querySelector('.why').textContent,"
        " checks: c.querySelectorAll('table tr').length}")


def test_canary_stage_and_weights_follow_the_rollout(browser: Any, tmp_path: Path) -> None:
    from reconciler.demo.traffic import CanaryRig
    from tests.e2e.conftest import NS, SERVICE, canary_mesh

    rig = CanaryRig(tmp_path / "state")
    seen: list[tuple[str, str, tuple[tuple[str, int], ...]]] = []
    with ExitStack() as running:   # stopped in reverse: traffic, board, rig
        running.callback(rig.stop)
        rig.start(canary_mesh(), drive=False)
        assert rig.mesh is not None
        board = serve_local(rig.mesh, store=rig.store, title="canary")
        assert board is not None
        running.callback(board.stop)
        browser.get(board.url)
        running.enter_context(TrafficGenerator(rig.mesh.outbound_url("client", SERVICE),
                                               rate=30, max_seconds=120))
        rig.drive()
        deadline = time.monotonic() + 90
        shot = False
        while time.monotonic() < deadline:
            canary = page_canary(browser)
            if canary is not None:
                entry = (canary["phase"], canary["stage"],
                         tuple(sorted(canary["weights"].items())))
                if not seen or seen[-1] != entry:
                    seen.append(entry)
                if not shot and canary["phase"] == "progressing" and canary["checks"] > 1:
                    browser.save_screenshot(str(tmp_path / "canary-progressing.png"))
                    shot = True
                if canary["phase"] == "succeeded":
                    break
            time.sleep(0.3)
        stored = rig.store.load(NS, SERVICE)
        assert stored is not None
    print("page showed:", seen)
    weights = [dict(w) for _, _, w in seen]
    assert seen and seen[-1][0] == "succeeded", seen
    assert weights[-1] == {"v1": 0, "v2": 100}
    # the page went through the steps in order, each one a split the rollout pushed
    pushed = [dict(w.get((NS, SERVICE), {})) for _, w in rig.pushes]
    steps = [w for w in weights if w in ({"v1": 80, "v2": 20}, {"v1": 50, "v2": 50})]
    assert steps and steps == sorted(steps, key=lambda w: w["v2"]), weights
    assert all(w in pushed for w in weights if w != {"v1": 100, "v2": 0}), (weights, pushed)
    assert shot, "the page never showed the checks of a progressing rollout"


def test_trace_of_a_productpage_request_shows_spans_of_each_hop(browser: Any, tmp_path: Path
                                                                ) -> None:
    """``mesh.telemetry(tracing=...)`` makes the local Envoys send Zipkin spans to the
    dashboard; the demo apps pass the B3 headers on, so one request is one trace."""
    from selenium.webdriver.common.by import By

    path = program(tmp_path, v3_errors=0)
    path.write_text(path.read_text() + "\nfrom meshdsl import Tracing\n"
                    "mesh.telemetry(tracing=Tracing(sampling=100))\n")
    spec = load(str(path)).spec
    assert spec.telemetry and spec.telemetry[0].tracing is not None
    mesh = LocalMesh(spec, workdir=tmp_path / "mesh")
    board = serve_local(mesh, title="traces")
    assert board is not None
    traffic = None
    try:
        mesh.start()
        traffic = TrafficGenerator(f"{mesh.gateway_url()}/productpage", rate=10,
                                   max_seconds=120).start()
        browser.get(board.url)
        deadline = time.monotonic() + 45
        link = None
        while time.monotonic() < deadline and link is None:
            links = browser.find_elements(By.CSS_SELECTOR, "a.trace-service")
            page = next((a for a in links if a.get_attribute("data-service") == "productpage"),
                        None)
            if page is not None:
                page.click()
                time.sleep(0.5)
                rows = browser.find_elements(By.CSS_SELECTOR, "#trace-list div")
                link = next((r.find_element(By.CSS_SELECTOR, "a.trace") for r in rows
                             if "ratings" in r.text), None)
            if link is None:
                time.sleep(1.0)
        assert link is not None, "no trace through productpage, reviews and ratings arrived"
        link.click()
        deadline = time.monotonic() + 10
        services: list[str] = []
        while time.monotonic() < deadline:
            services = [r.get_attribute("data-service") for r in
                        browser.find_elements(By.CSS_SELECTOR, "#waterfall .span-row")]
            if services:
                break
            time.sleep(0.3)
        assert {"productpage", "reviews", "ratings"} <= set(services), services
        browser.save_screenshot(str(tmp_path / "trace-waterfall.png"))
    finally:
        if traffic is not None:
            traffic.stop()
        board.stop()
        mesh.stop()

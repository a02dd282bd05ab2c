"""``meshctl reconcile --target local --dashboard``: the page a running reconciler serves.

A real bare repository, the reconciler as a subprocess with its local mesh (real Envoys,
demo apps), traffic through its gateway. The page's JSON must follow Git: the applied
program's services, the traffic seen on its edges, the canary a push starts, and the
revisions in the history — and the page stays read-only.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from reconciler.demo.traffic import TrafficGenerator
from reconciler.processes.ports import free_port
from reconciler.testing.wait import wait_for
from tests.e2e.test_reconcile_canary import NS, SERVICE, V1, V2, Reconciler

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def graph(base: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/api/graph", timeout=10, trust_env=False)
    response.raise_for_status()
    snapshot: dict[str, Any] = response.json()
    return snapshot


def node(snapshot: dict[str, Any], node_id: str) -> dict[str, Any] | None:
    return next((n for n in snapshot["graph"]["nodes"] if n["id"] == node_id), None)


def flowing(snapshot: dict[str, Any], target: str) -> list[dict[str, Any]]:
    return [e for e in snapshot["graph"]["edges"]
            if e["target"] == target and (e.get("rps") or 0) > 0]


def test_the_reconciler_serves_the_live_page_of_what_git_says(reconciler: Reconciler) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    reconciler.start("--dashboard", "--dashboard-listen", f"127.0.0.1:{port}")
    wait_for(lambda: f"dashboard: http://127.0.0.1:{port}/".encode()
             in reconciler.log.read_bytes(), 30, "the dashboard's URL printed")
    page = httpx.get(f"{base}/", timeout=10, trust_env=False)
    assert page.status_code == 200 and "<html" in page.text.lower()
    # nothing applied yet: an empty page, not an error
    assert graph(base)["mesh"] is None

    first = reconciler.git.push({"mesh.py": V1}, "reviews v1")
    wait_for(lambda: reconciler.applied(first), 90, "the first revision applied")
    snap = wait_for(lambda: (s := graph(base))["mesh"] == "rollouts" and s, 15,
                    "the page showing the applied program")
    assert node(snap, f"svc:{NS}/{SERVICE}") is not None
    assert node(snap, f"wl:{NS}/{SERVICE}/v1") is not None
    assert [h["revision"] for h in snap["history"]][:1] == [first]

    with TrafficGenerator(reconciler.url(), rate=20, max_seconds=150) as traffic:
        # the traffic through the gateway shows on the edge into reviews' v1, from Envoy stats
        edges = wait_for(lambda: flowing(graph(base), f"wl:{NS}/{SERVICE}/v1"), 30,
                         "traffic on the edge into reviews v1")
        assert all(e["health"] == "healthy" for e in edges), edges

        second = reconciler.git.push({"mesh.py": V2}, "canary reviews v2")
        wait_for(lambda: reconciler.applied(second), 60, "the canary revision applied")
        canary = wait_for(lambda: next((c for c in graph(base)["canaries"]
                                        if c.get("target") == "v2"), None), 30,
                          "the canary on the page")
        assert canary["stable"] == "v1", canary
        on_node = node(graph(base), f"svc:{NS}/{SERVICE}")
        assert on_node is not None and on_node.get("canary", {}).get("target") == "v2"
        wait_for(lambda: reconciler.finished("v2"), 90, "the v2 rollout finishing")
        done = wait_for(lambda: next((c for c in graph(base)["canaries"]
                                      if c.get("phase") == "succeeded"), None), 15,
                        "the page showing the canary succeeded")
        assert done["target"] == "v2"
        history = [h["revision"] for h in graph(base)["history"]]
        assert history[:2] == [second, first], history
        assert traffic.samples and time.time() - traffic.samples[-1].at < 5

    # read-only: no writes through the page
    assert httpx.post(f"{base}/api/graph", timeout=10, trust_env=False).status_code == 405

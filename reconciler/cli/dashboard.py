"""``meshctl dashboard``: the web page on its own — a program's graph, with traffic from
Prometheus or a local mesh's Envoys, and the rollouts and revisions of a state directory."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reconciler.cli.app import app, console, err_console, fail
from reconciler.cli.mesh import load_or_exit
from reconciler.dashboard import (
    DEFAULT_LISTEN,
    Dashboard,
    DashboardError,
    EnvoyTraffic,
    Feeds,
    PrometheusTraffic,
    TrafficSource,
    history_of,
    local_proxies,
    rollouts_of,
    start,
)

if TYPE_CHECKING:
    from reconciler.ports import StateStore
    from reconciler.targets.envoy import LocalMesh

__all__ = ["DashboardListenOpt", "dashboard_cmd", "serve_local", "serve_reconciler"]

# The dashboard beside a running mesh (`local up`, `reconcile`, `demo bookinfo`).
DashboardListenOpt = Annotated[str, typer.Option(
    "--dashboard-listen", help="HOST:PORT of the dashboard (port 0: a free one).")]


@app.command("dashboard")
def dashboard_cmd(
    program: str = typer.Argument(None, help="The mesh program whose declared routes to "
                                  "draw (mesh.py, file.py:attr or module:attr)."),
    listen: str = typer.Option(DEFAULT_LISTEN, "--listen",
                               help="HOST:PORT to serve on (port 0: a free one). Not "
                               "loopback: a token is required (printed in the URL)."),
    token: str = typer.Option(None, "--token", envvar="MESHCTL_DASHBOARD_TOKEN",
                              help="The token (default: generated when not on loopback)."),
    prometheus: str = typer.Option(None, "--prometheus",
                                   help="Prometheus URL with Istio's metrics."),
    envoy_admin: list[str] = typer.Option([], "--envoy-admin",
                                          help="NODE=URL of an Envoy admin endpoint "
                                          "(e.g. wl:default/reviews/v2=http://127.0.0.1:15000"
                                          "); repeatable."),
    tracing_url: str = typer.Option(None, "--tracing-url",
                                    help="The mesh's Jaeger or Zipkin UI, linked from the "
                                    "page (in a cluster, spans go there)."),
    state_dir: Path = typer.Option(None, "--state-dir",
                                   help="A reconciler's state directory: rollouts and "
                                   "revisions."),
) -> None:
    """Serve the mesh's live graph, canaries and traces until Ctrl-C."""
    spec = load_or_exit(program).spec if program else None
    traffic: TrafficSource | None = None
    if prometheus:
        traffic = PrometheusTraffic(prometheus, lambda: spec)
    elif envoy_admin:
        pairs = []
        for item in envoy_admin:
            node, sep, url = item.partition("=")
            if not sep or not url.startswith("http"):
                fail(f"--envoy-admin {item!r}: expected NODE=http://HOST:PORT")
            pairs.append((node, url))
        traffic = EnvoyTraffic(lambda: pairs)
    feeds = Feeds(spec=lambda: spec, traffic=traffic, tracing_url=tracing_url,
                  title=f"meshdsl {spec.name}" if spec else "meshdsl")
    if state_dir is not None:
        from reconciler.runtime.rollout_store import DiskRolloutStore
        from reconciler.runtime.status import DiskStore
        feeds.rollouts = rollouts_of(DiskRolloutStore.in_state_dir(state_dir))
        feeds.history = history_of(DiskStore(state_dir))
    try:
        dashboard = start(feeds, listen=listen, token=token)
    except DashboardError as exc:
        fail(str(exc))
    console.print(f"dashboard: [bold]{dashboard.url}[/] — Ctrl-C to stop", highlight=False,
                  soft_wrap=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        dashboard.stop()


def serve_local(mesh: LocalMesh, *, listen: str = DEFAULT_LISTEN, store: Any = None,
                status: Any = None, title: str = "meshdsl") -> Dashboard | None:
    """The page for a local mesh (traffic from its Envoys; rollouts and revisions from
    ``store``/``status`` when given), its URL printed; ``None`` (with a warning) when it
    cannot start — the mesh runs on without it. Call it before the mesh starts, so the
    Envoys' first configs already send their spans to the page's collector."""
    feeds = Feeds(spec=lambda: mesh.spec if mesh.generation else None,
                  traffic=EnvoyTraffic(local_proxies(mesh)), title=title)
    if store is not None:
        feeds.rollouts = rollouts_of(store)
    if status is not None:
        feeds.history = history_of(status)
    try:
        board = start(feeds, listen=listen)
    except DashboardError as exc:
        err_console.print(f"[yellow]warning:[/] dashboard not started: {exc}", soft_wrap=True,
                          highlight=False)
        return None
    # the mesh's Envoys send their spans here (read at the mesh's next apply)
    mesh.trace_collector = board.collector
    err_console.print(f"dashboard: [bold]{board.url}[/]", soft_wrap=True, highlight=False)
    return board


def serve_reconciler(store: StateStore, *, name: str, mesh: LocalMesh | None,
                     prometheus: str | None, listen: str, token: str | None = None
                     ) -> Dashboard | None:
    """The page for ``meshctl reconcile``: the applied revision's program, its rollouts and
    revisions from the status store, traffic from Prometheus (or ``mesh``, the local target's
    Envoys, when it has one)."""
    from meshdsl.model.spec import MeshSpec
    from reconciler.runtime.rollout_store import beside

    def applied() -> MeshSpec | None:
        if mesh is not None:
            return mesh.spec if mesh.generation else None
        status = store.load_status()
        revision = status.applied_revision if status is not None else None
        output = store.load_output(revision) if revision else None
        raw = (output or {}).get("spec")
        return MeshSpec.model_validate(raw) if raw else None

    traffic: TrafficSource | None = None
    if prometheus:
        traffic = PrometheusTraffic(prometheus, applied)
    elif mesh is not None:
        traffic = EnvoyTraffic(local_proxies(mesh))
    feeds = Feeds(spec=applied, traffic=traffic, history=history_of(store),
                  title=f"meshdsl reconcile {name}")
    rollouts = beside(store, name)
    if rollouts is not None:
        feeds.rollouts = rollouts_of(rollouts)
    try:
        board = start(feeds, listen=listen, token=token)
    except DashboardError as exc:
        err_console.print(f"[yellow]warning:[/] dashboard not started: {exc}", soft_wrap=True,
                          highlight=False)
        return None
    if mesh is not None:
        mesh.trace_collector = board.collector
    err_console.print(f"dashboard: [bold]{board.url}[/]", soft_wrap=True, highlight=False)
    return board

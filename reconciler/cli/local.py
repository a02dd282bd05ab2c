"""``meshctl up``: run the mesh on this machine — apps, sidecars and a gateway on real Envoy.

Prints where everything runs, then serves until Ctrl-C or SIGTERM and shuts everything
down (exit 0). With ``--watch`` every save of the program is reloaded, validated and
applied live; a program that fails to load or validate is reported with the user's
``file:line`` and the last good config keeps running.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from meshdsl.model.spec import MeshSpec
from meshdsl.validate import Severity, validate
from reconciler.cli.app import (
    Output,
    add_row,
    app,
    console,
    emit,
    err_console,
    fail,
    print_table,
    table,
)
from reconciler.cli.dashboard import DashboardListenOpt, serve_local
from reconciler.cli.mesh import ProgramArg, load_or_exit, print_findings
from reconciler.cli.options import GatewayPortOpt
from reconciler.runtime.loader import load
from reconciler.runtime.records import ProgramError
from reconciler.sources.program import ProgramWatcher
from reconciler.targets.envoy.errors import EnvoyError, EnvoyNotFoundError
from reconciler.targets.envoy.mesh import Applied, LocalMesh, Row

_INTERRUPTED = 130


class _Signals:
    """SIGINT/SIGTERM: before serving they interrupt startup (cleanup runs in ``finally``);
    while serving they ask the main loop to stop; during shutdown they are ignored."""

    def __init__(self, wake: threading.Event) -> None:
        self.wake = wake
        self.stop = False
        self.serving = False
        self.stopping = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *_: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            return
        self.stop = True
        self.wake.set()
        if not self.serving:
            raise KeyboardInterrupt


def _spec_or_none(program: str, *, json_out: bool) -> MeshSpec | None:
    """Reload the program; report (and return None) when it fails to load or validate."""
    _forget_sibling_modules(program)
    try:
        loaded = load(program)
    except ProgramError as exc:
        _event(json_out, "error", f"{exc.report()}\nkeeping the last good config")
        return None
    errors = [f for f in validate(loaded.spec) if f.severity is Severity.ERROR]
    if errors:
        if json_out:
            _event(True, "invalid", f"{len(errors)} validation error(s)",
                   findings=[f.as_dict() for f in errors])
        else:
            print_findings(errors)
            err_console.print(f"{loaded.source}: {len(errors)} validation error(s); keeping the "
                              "last good config", style="red", markup=False)
        return None
    return loaded.spec


def _forget_sibling_modules(program: str) -> None:
    """Drop cached imports of the program's own helper modules, so edits to them count.

    Plain string checks: resolving the path of each of ~1,000 loaded modules costs ~100 ms
    per reload, which ``--watch`` would add to every change."""
    directory = os.path.dirname(os.path.abspath(program.partition(":")[0]))
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and os.path.dirname(os.path.abspath(file)) == directory:
            del sys.modules[name]


def _event(json_out: bool, kind: str, message: str, **extra: Any) -> None:
    if json_out:
        sys.stdout.write(json.dumps({"event": kind, "message": message, **extra},
                                    sort_keys=True, default=str) + "\n")
        sys.stdout.flush()
    elif kind in ("error", "invalid"):
        err_console.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    else:
        console.print(message, soft_wrap=True, highlight=False, markup=False)


def _print_table(mesh: LocalMesh, rows: list[Row]) -> None:
    proxies = table("service", "version", "app", "sidecar / listens", "admin", "stats",
                    "config", title=f"mesh {mesh.spec.name} — local")
    for row in rows:
        if row.kind in ("gateway", "waypoint"):
            add_row(proxies, Text.assemble((row.service, "bold"), f" ({row.kind})"), "-", "-",
                    "\n".join(row.listen), row.admin, row.stats, row.config)
        else:
            app_text = Text(row.app) if row.app_state.startswith("pid") else (
                Text.assemble(row.app, " ", (f"({row.app_state})", "yellow")))
            add_row(proxies, f"{row.service}.{row.namespace}", row.version, app_text,
                    row.listen[0], row.admin, row.stats, row.config)
    print_table(proxies)


def _print_applied(applied: Applied, reloaded: float, *, json_out: bool) -> None:
    counts = ", ".join(f"{n} {what}" for what, n in applied.summary().items() if n)
    _event(json_out, "applied", f"applied generation {applied.generation} in "
           f"{applied.seconds * 1000:.0f} ms (program reloaded in {reloaded * 1000:.0f} ms): "
           f"{counts or 'nothing changed'}",
           generation=applied.generation, summary=applied.summary(),
           reload_ms=round(reloaded * 1000, 1), apply_ms=round(applied.seconds * 1000, 1),
           updated=list(applied.updated), started=list(applied.started),
           stopped=list(applied.stopped))


def _print_notes(applied: Applied, rows: list[Row], *, json_out: bool) -> None:
    if json_out:
        return
    for proxy, notes in applied.notes.items():
        for note in notes:
            err_console.print(f"[yellow]note:[/] {escape(proxy)}: {escape(note)}", soft_wrap=True,
                              highlight=False)
    for row in rows:
        if row.app_state == "no local run":
            err_console.print(f"[yellow]note:[/] {escape(row.proxy)}: no run_locally() command or "
                              f"address; requests to it fail until something listens on "
                              f"{escape(row.app)}", soft_wrap=True, highlight=False)


def _summary(mesh: LocalMesh, rows: list[Row]) -> dict[str, Any]:
    gateway = mesh.gateway_url() if mesh.placement.gateways else None
    return {"mesh": mesh.spec.name, "gateway": gateway, "workdir": str(mesh.workdir),
            "generation": mesh.generation, "proxies": [r.as_dict() for r in rows],
            "routeDelivery": mesh.route_delivery(),
            "outbound": {key.proxy_id: {f"{ns}/{svc}:{port}": f"127.0.0.1:{local}"
                                        for (ns, svc, port), local in where.outbound.items()}
                         for key, where in mesh.placement.sidecars.items()}}


@app.command("up")
def up_cmd(
    program: ProgramArg,
    watch: Annotated[bool, typer.Option(
        "--watch", help="Reload and apply the program whenever a .py file next to it "
        "changes (debounced 200 ms).")] = False,
    gateway_port: GatewayPortOpt = None,
    workdir: Annotated[Path | None, typer.Option(
        "--workdir", help="Keep Envoy configs, logs and certificates here (default: a "
        "temporary directory, removed on exit).")] = None,
    log_level: Annotated[str, typer.Option(
        "--log-level", help="Envoy log level (trace, debug, info, warn, error).")] = "warn",
    output: Annotated[Output, typer.Option(
        "-o", "--output", help="text (a table) or json (one document, then one JSON line "
        "per event).")] = Output.text,
    dashboard: Annotated[bool, typer.Option(
        "--dashboard/--no-dashboard", help="Serve the live graph (its URL is printed).")]
        = True,
    dashboard_listen: DashboardListenOpt = "127.0.0.1:0",
) -> None:
    """Run the mesh locally: every app with a local run, a sidecar Envoy per workload and
    a gateway Envoy. Serves until Ctrl-C; exit 0 after a clean shutdown."""
    json_out = output is not Output.text
    path = Path(program.partition(":")[0])
    if watch and not path.is_file():
        fail(f"--watch needs a program file; {program!r} is not one", 2)
    wake, changed = threading.Event(), threading.Event()

    def on_change() -> None:
        changed.set()
        wake.set()

    # Watch before the first load: an edit made while the mesh starts is applied after.
    watcher = ProgramWatcher(path, on_change).start() if watch else None
    try:
        loaded = load_or_exit(program)
        errors = [f for f in validate(loaded.spec) if f.severity is Severity.ERROR]
        if errors:
            print_findings(errors)
            fail(f"{loaded.source} has validation errors; nothing started", 1)
    except BaseException:
        if watcher is not None:
            watcher.stop()
        raise
    mesh = LocalMesh(loaded.spec, workdir=workdir, gateway_port=gateway_port,
                     log_level=log_level)
    board = None
    with _Signals(wake) as signals:
        try:
            if not json_out:
                err_console.print(f"starting mesh {loaded.spec.name} ...", highlight=False,
                                  markup=False)
            began = time.perf_counter()
            board = serve_local(mesh, listen=dashboard_listen, title=f"meshdsl "
                                f"{loaded.spec.name}") if dashboard else None
            mesh.start()
            signals.serving = True
            rows = mesh.table()
            if json_out:
                emit({**_summary(mesh, rows), "seconds": round(time.perf_counter() - began, 3)},
                     Output.json)
                sys.stdout.flush()
            else:
                _print_table(mesh, rows)
                first = Applied(generation=mesh.generation,
                                notes={p: mesh.config(p).notes for p in mesh.proxies()
                                       if mesh.config(p).notes})
                _print_notes(first, rows, json_out=False)
                inline = sorted(p for p, how in mesh.route_delivery().items() if how == "inline")
                if inline:
                    err_console.print(f"[dim]note: {len(inline)} proxies carry their routes "
                                      "inline (the mesh's RDS files would exceed half of "
                                      "fs.inotify.max_user_instances); a route change closes "
                                      "their open connections after the current request[/]",
                                      soft_wrap=True, highlight=False)
                if mesh.placement.gateways:
                    console.print(f"gateway: [bold]{mesh.gateway_url()}[/]", highlight=False)
                console.print(f"ready in {time.perf_counter() - began:.1f}s"
                              f"{'; watching ' + str(path) if watch else ''} — Ctrl-C to stop",
                              highlight=False)
            _serve(mesh, program, signals, wake, changed, json_out=json_out)
        except KeyboardInterrupt:
            code, error = _INTERRUPTED, None
        except EnvoyNotFoundError as exc:
            code, error = 2, str(exc)
        except EnvoyError as exc:
            code, error = 1, str(exc)
        else:
            code, error = 0, None
        finally:  # whatever happened, nothing we started outlives us
            signals.stopping = True
            if board is not None:
                board.stop()
            _shutdown(mesh, watcher, json_out)
    if error is not None:
        fail(error, code)
    raise typer.Exit(code)


def _serve(mesh: LocalMesh, program: str, signals: _Signals, wake: threading.Event,
           changed: threading.Event, *, json_out: bool) -> None:
    """Wait for a signal; on each program change, reload and apply."""
    while not signals.stop:
        wake.wait(timeout=1.0)
        wake.clear()
        if signals.stop:
            return
        if not changed.is_set():
            continue
        changed.clear()
        began = time.perf_counter()
        spec = _spec_or_none(program, json_out=json_out)
        if spec is None:
            continue
        reloaded = time.perf_counter() - began
        try:
            applied = mesh.apply(spec)
        except EnvoyError as exc:
            _event(json_out, "error", f"{exc}\nkeeping the last good config")
            continue
        _print_applied(applied, reloaded, json_out=json_out)
        if not json_out and (applied.started or applied.stopped):
            rows = mesh.table()
            _print_table(mesh, rows)
            _print_notes(applied, rows, json_out=False)


def _shutdown(mesh: LocalMesh, watcher: ProgramWatcher | None, json_out: bool) -> None:
    if watcher is not None:
        watcher.stop()
    if not json_out:
        err_console.print("stopping ...", highlight=False)
    mesh.stop()
    _event(json_out, "stopped", "stopped every app and proxy")

"""The dashboard's HTTP server: one page, a JSON snapshot, server-sent events, a span sink.

aiohttp runs in its own thread with its own event loop, so the synchronous commands
(``meshctl up``, ``reconcile``, ``demo``) start it with one call and go on. A refresher
thread builds the snapshot every ``refresh`` seconds — once, however many pages are open
— and every open page receives it as a server-sent event (``/api/events``).

Read-only: every route is a GET except the Zipkin span sink (``POST /api/v2/spans``),
which only stores spans in memory. On a loopback address nothing is asked; on any other
address a token is required (``Authorization: Bearer``, ``?token=`` or the cookie the
page sets), generated when none is given and printed in the URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from meshdsl.compile.envoy.placement import Address
from meshdsl.model.spec import MeshSpec
from reconciler.core.graph import build_graph, service_id
from reconciler.dashboard.traces import TraceStore
from reconciler.dashboard.traffic import TrafficSource
from reconciler.delivery.phases import RolloutState
from reconciler.delivery.view import canary_view
from reconciler.processes.lifecycle import Component

__all__ = ["Dashboard", "DashboardError", "Feeds", "is_loopback"]

STATIC = Path(__file__).resolve().parent / "static"
_COOKIE = "meshdsl_dashboard"


class DashboardError(Exception):
    """The dashboard cannot start (assets missing, address in use)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Feeds:
    """What the page shows, each read at every refresh (all optional)."""

    spec: Callable[[], MeshSpec | None] = lambda: None
    traffic: TrafficSource | None = None
    rollouts: Callable[[], list[RolloutState]] = list
    history: Callable[[], list[dict[str, Any]]] = list
    traces: TraceStore = field(default_factory=TraceStore)
    title: str = "meshdsl"
    tracing_url: str | None = None   # the user's Jaeger/Zipkin UI, linked from the page


class Dashboard(Component):
    def __init__(self, feeds: Feeds, *, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, refresh: float = 2.0) -> None:
        if not (STATIC / "vendor" / "cytoscape.min.js").is_file():
            raise DashboardError("the dashboard's web assets are not installed; run "
                                 "scripts/fetch-web-assets (scripts/setup does)")
        self.feeds, self.host, self.refresh = feeds, host, refresh
        self.token = token if token or is_loopback(host) else secrets.token_urlsafe(18)
        self._port = port
        self._snapshot: dict[str, Any] = {"seq": 0}
        self._text = "{}"
        self._seq = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._threads: list[threading.Thread] = []
        self.refresh_seconds: list[float] = []   # time to build each snapshot (bench)

    # -- snapshot ---------------------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        """One snapshot: graph (declared + seen), canaries, history, errors."""
        errors: list[str] = []
        spec = self.feeds.spec()
        traffic = []
        if self.feeds.traffic is not None:
            try:
                traffic = self.feeds.traffic.edges()
            except Exception as exc:   # a metrics outage is shown, not fatal
                errors.append(f"{self.feeds.traffic.describe()}: {exc}")
        now = time.time()
        try:
            states = self.feeds.rollouts()
        except Exception as exc:
            states, errors = [], [*errors, f"rollouts: {exc}"]
        canaries = {service_id(s.namespace, s.service): canary_view(s, now) for s in states}
        graph = build_graph(spec, traffic, canaries=canaries)
        try:
            history = self.feeds.history()
        except Exception as exc:
            history, errors = [], [*errors, f"history: {exc}"]
        return {"title": self.feeds.title, "mesh": spec.name if spec else None, "at": now,
                "graph": graph, "canaries": list(canaries.values()), "history": history,
                "traces": self.feeds.traces.services(), "tracing_url": self.feeds.tracing_url,
                "errors": errors,
                "source": self.feeds.traffic.describe() if self.feeds.traffic else None}

    def _refresh_once(self) -> None:
        started = time.perf_counter()
        snapshot = self.build()
        self.refresh_seconds = [*self.refresh_seconds, time.perf_counter() - started][-500:]
        with self._cond:
            self._seq += 1
            snapshot["seq"] = self._seq
            self._snapshot, self._text = snapshot, json.dumps(snapshot, default=str)
            self._cond.notify_all()

    def _refresher(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self._refresh_once()
            self._stop.wait(self.refresh)

    # -- HTTP -------------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.token is None or request.path.startswith("/api/v2/spans"):
            passed: web.StreamResponse = await handler(request)
            return passed
        given = (request.query.get("token") or request.cookies.get(_COOKIE)
                 or request.headers.get("Authorization", "").removeprefix("Bearer "))
        if not given or not hmac.compare_digest(given, self.token):
            return web.Response(status=401, text="a token is required: open the URL "
                                "meshctl printed (it carries ?token=...)\n")
        response: web.StreamResponse = await handler(request)
        if request.query.get("token"):
            response.set_cookie(_COOKIE, self.token, httponly=True, samesite="Strict")
        return response

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _graph(self, request: web.Request) -> web.Response:
        with self._cond:
            text = self._text
        return web.Response(text=text, content_type="application/json")

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        seen = -1
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionError):   # the page went away
            while not self._stop.is_set():
                seq, text = await loop.run_in_executor(None, self._next, seen)
                if seq != seen:
                    seen = seq
                    await response.write(f"data: {text}\n\n".encode())
                else:
                    await response.write(b": keep-alive\n\n")
        return response

    def _next(self, seen: int) -> tuple[int, str]:
        with self._cond:
            self._cond.wait_for(lambda: self._seq != seen or self._stop.is_set(), timeout=15)
            return self._seq, self._text

    async def _traces(self, request: web.Request) -> web.Response:
        service = request.query.get("service", "")
        return web.json_response(self.feeds.traces.traces(service))

    async def _trace(self, request: web.Request) -> web.Response:
        spans = self.feeds.traces.trace(request.match_info["trace_id"])
        if not spans:
            return web.json_response({"error": "no such trace"}, status=404)
        return web.json_response(spans)

    async def _spans(self, request: web.Request) -> web.Response:
        try:
            spans = json.loads(await request.read())
        except ValueError:
            return web.Response(status=400, text="not Zipkin v2 JSON\n")
        if not isinstance(spans, list):
            return web.Response(status=400, text="expected a list of spans\n")
        self.feeds.traces.add(spans)
        return web.Response(status=202)

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth], client_max_size=4 << 20)
        app.router.add_get("/", self._index)
        app.router.add_get("/api/graph", self._graph)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/api/traces", self._traces)
        app.router.add_get("/api/traces/{trace_id}", self._trace)
        app.router.add_post("/api/v2/spans", self._spans)
        app.router.add_static("/static", STATIC, follow_symlinks=False)
        return app

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"/?token={self.token}" if self.token else "/"
        return f"http://{host}:{self._port}{query}"

    @property
    def spans_url(self) -> str:
        return f"http://{self.host}:{self._port}/api/v2/spans"

    @property
    def collector(self) -> Address:
        """Where a local Envoy sends Zipkin spans (loopback when serving on all
        addresses)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return Address(self._port, host)

    def start(self) -> Self:
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                runner = web.AppRunner(self._app(), handle_signals=False, access_log=None)
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, self.host, self._port)
                loop.run_until_complete(site.start())
                self._runner = runner
                server = site._server
                sockets = getattr(server, "sockets", None) or []
                if sockets:
                    self._port = int(sockets[0].getsockname()[1])
            except BaseException as exc:
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        thread = threading.Thread(target=serve, name="dashboard-http", daemon=True)
        thread.start()
        started.wait(30)
        if failure:
            raise DashboardError(f"cannot serve on {self.host}:{self._port}: {failure[0]}")
        self._refresh_once()
        refresher = threading.Thread(target=self._refresher, name="dashboard-refresh",
                                     daemon=True)
        refresher.start()
        self._threads = [thread, refresher]
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        for thread in self._threads:
            thread.join(timeout=5)

"""One tiny HTTP service that stands in for every service and version of the examples.

The local mesh needs real upstreams to route to (productpage, details, reviews v1/v2/v3,
ratings, ...), and tests need to see *which* one answered and to make it misbehave on
purpose. So every instance echoes who it is and what it received, and can be told to be slow,
to fail a fraction of requests, or to fail the first attempts of a request (for retries).

    python demo_app.py --name reviews --version v2 --port 9080 [--error-rate 0.2]
        [--latency-ms 50] [--seed 1] [--fail-first 2] [--call ratings/ratings/0 ...]

Every flag can also come from the environment: DEMO_NAME, DEMO_VERSION, DEMO_PORT,
DEMO_ERROR_RATE, DEMO_LATENCY_MS, DEMO_SEED, DEMO_FAIL_FIRST.

Behaviour, on every path and method:
- ``/healthz`` always answers 200 (no latency, no errors): readiness must not flap.
- ``/status/<code>`` answers with that status code (e.g. for outlier-detection tests).
- ``/flaky...`` fails with 503 the first ``--fail-first`` attempts (default 1) of each request,
  keyed by ``x-request-id`` (Envoy keeps it across retries), so a retry policy makes it pass.
- anything else fails with 503 with probability ``--error-rate``, after ``--latency-ms``.
Every response is JSON ``{"service", "version", "path", "method", "headers"}`` with the header
``x-served-by: <name>-<version>``. Stdlib only; binds 127.0.0.1 only.

``--call SERVICE[/PATH]`` (repeatable) makes it a bookinfo-style frontend: every request
except ``/healthz`` first GETs ``http://$<SERVICE>_SERVICE_HOST:$<SERVICE>_SERVICE_PORT/PATH``
(the variables ``meshctl up`` sets to this workload's sidecar), forwarding ``x-request-id``,
``end-user``, ``cookie`` and trace headers as bookinfo does, and adds ``"calls": [{"service",
"status", "served_by"}]`` to its answer. A failed call is reported there, not as an error
(productpage without reviews still renders).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_MAX_TRACKED_REQUESTS = 10_000
_FORWARDED = ("x-request-id", "end-user", "cookie", "traceparent", "tracestate",
              "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled",
              "x-b3-flags", "b3", "x-ot-span-context")


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default=env("DEMO_NAME", "demo"))
    parser.add_argument("--version", default=env("DEMO_VERSION", "v1"))
    parser.add_argument("--port", type=int, default=int(env("DEMO_PORT", "8080")))
    parser.add_argument("--error-rate", type=float, default=float(env("DEMO_ERROR_RATE", "0")))
    parser.add_argument("--latency-ms", type=float, default=float(env("DEMO_LATENCY_MS", "0")))
    seed = env("DEMO_SEED")
    parser.add_argument("--seed", type=int, default=int(seed) if seed else None)
    parser.add_argument("--fail-first", type=int, default=int(env("DEMO_FAIL_FIRST", "1")))
    parser.add_argument("--call", action="append", default=[], metavar="SERVICE[/PATH]",
                        help="call this service through the mesh on every request")
    return parser.parse_args(argv)


def call_upstreams(targets: list[str], headers: dict[str, str]) -> list[dict[str, Any]]:
    """GET each ``SERVICE[/PATH]`` through the address the mesh gave this app."""
    out: list[dict[str, Any]] = []
    for target in targets:
        service, _, path = target.partition("/")
        prefix = re.sub(r"[^A-Za-z0-9]", "_", service).upper()
        host = os.environ.get(f"{prefix}_SERVICE_HOST")
        port = os.environ.get(f"{prefix}_SERVICE_PORT")
        entry: dict[str, Any] = {"service": service, "status": None, "served_by": None}
        if not host or not port:
            entry["error"] = f"{prefix}_SERVICE_HOST/PORT not set"
            out.append(entry)
            continue
        forwarded = {k: v for k, v in headers.items() if k in _FORWARDED}
        request = urllib.request.Request(f"http://{host}:{port}/{path}", headers=forwarded)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                entry["status"], entry["served_by"] = response.status, response.headers.get(
                    "x-served-by")
        except urllib.error.HTTPError as err:
            entry["status"], entry["served_by"] = err.code, err.headers.get("x-served-by")
        except OSError as err:
            entry["error"] = str(err)
        out.append(entry)
    return out


def make_handler(args: argparse.Namespace) -> type[BaseHTTPRequestHandler]:
    """A handler class closed over this instance's identity and misbehaviour settings."""
    rng = random.Random(args.seed)
    lock = threading.Lock()
    attempts: dict[str, int] = {}
    served_by = f"{args.name}-{args.version}"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like real services behind Envoy
        disable_nagle_algorithm = True  # headers and body are two writes: avoid 40 ms stalls

        def _status(self) -> int:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                return 200
            if path.startswith("/status/") and path[8:].isdigit():
                return int(path[8:])
            if path.startswith("/flaky"):
                key = self.headers.get("x-request-id") or self.path
                with lock:
                    if len(attempts) > _MAX_TRACKED_REQUESTS:
                        attempts.clear()
                    attempts[key] = attempts.get(key, 0) + 1
                    if attempts[key] <= args.fail_first:
                        return 503
            if args.latency_ms > 0:
                time.sleep(args.latency_ms / 1000.0)
            with lock:
                failed = args.error_rate > 0 and rng.random() < args.error_rate
            return 503 if failed else 200

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            status = self._status()
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer: dict[str, Any] = {
                "service": args.name,
                "version": args.version,
                "path": self.path,
                "method": self.command,
                "headers": headers,
            }
            if args.call and self.path.split("?", 1)[0] != "/healthz":
                answer["calls"] = call_upstreams(args.call, headers)
            body = json.dumps(answer, sort_keys=True).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.send_header("x-served-by", served_by)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer

        def log_message(self, format: str, *log_args: object) -> None:
            pass  # thousands of requests per test; the JSON body is the record

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default of 5 drops bursts of new connections


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    server = _Server(("127.0.0.1", args.port), make_handler(args))
    print(f"{args.name}-{args.version} listening on 127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

"""Free loopback ports and waiting for an HTTP endpoint — the one place for both.

Every real component started on this machine (Envoy listeners, apps, Prometheus, etcd,
the API server) binds 127.0.0.1 on a port nobody else uses, and is only usable once it
answers. Keeping these helpers here means every caller picks ports and waits the same way,
with bounded loops and errors that say what was being waited for.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable

import httpx

__all__ = ["LOOPBACK", "NoFreePortError", "free_port", "free_ports", "wait_http"]

LOOPBACK = "127.0.0.1"


class NoFreePortError(OSError):
    """Fewer free ports than asked for among the candidates."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now.

    The port is released before returning, so another process could take it in between;
    on a test machine that race is rare and shows up as a clear "address in use" error.
    """
    return free_ports(1)[0]


def free_ports(count: int, *, host: str = LOOPBACK,
               candidates: Iterable[int] | None = None) -> list[int]:
    """``count`` distinct TCP ports free on ``host``: chosen by the kernel, or the first
    free ones among ``candidates``.

    All sockets are held open until every port is chosen, so no port repeats — calling
    :func:`free_port` several times in a row can return the same port twice.
    """
    held: list[socket.socket] = []
    try:
        for port in ([0] * count if candidates is None else candidates):
            if len(held) == count:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        if len(held) < count:
            raise NoFreePortError(f"only {len(held)} of {count} ports are free on {host}")
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for sock in held:
            sock.close()


def wait_http(
    url: str,
    timeout: float = 10.0,
    *,
    expect_status: int | None = 200,
    interval: float = 0.05,
) -> httpx.Response:
    """Poll ``url`` with GET until it answers (with ``expect_status`` unless that is None).

    Returns the first matching response; raises :class:`TimeoutError` naming the URL and the
    last status or connection error when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    last = "no attempt"
    # trust_env=False: everything is on 127.0.0.1, whatever HTTP(S)_PROXY says.
    with httpx.Client(timeout=min(2.0, max(timeout, 0.1)), trust_env=False) as client:
        while True:
            try:
                response = client.get(url)
            except httpx.HTTPError as err:
                last = f"{type(err).__name__}: {err}"
            else:
                if expect_status is None or response.status_code == expect_status:
                    return response
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{url} not ready after {timeout:.1f}s (last: {last})")
            time.sleep(interval)

"""A small client for Envoy's admin API: the only way to see what a running Envoy believes.

Envoy applies file-based xDS asynchronously and rejects bad updates only in its log and
stats, so everything the target needs to know after writing files — did this version land,
was it rejected, are listeners still warming — is read here. The Prometheus exposition
(``/stats/prometheus``) is also what metrics and Prometheus scrape.
"""

from __future__ import annotations

from typing import Any

import httpx

from reconciler.processes.lifecycle import Closeable
from reconciler.targets.envoy.errors import EnvoyError

__all__ = ["EnvoyAdmin"]


class EnvoyAdmin(Closeable):
    """Synchronous admin API client bound to one Envoy (``http://127.0.0.1:PORT``)."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        # trust_env=False: the admin port is on loopback whatever HTTP(S)_PROXY says.
        self._client = httpx.Client(base_url=self.url, timeout=timeout, trust_env=False)

    def get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        """GET an admin path; connection errors become :class:`EnvoyError`."""
        try:
            return self._client.get(path, params=params)
        except httpx.HTTPError as err:
            raise EnvoyError(f"Envoy admin {self.url}{path} unreachable: {err}") from err

    def ready(self) -> bool:
        """True once Envoy finished initialising (``/ready`` answers 200 ``LIVE``)."""
        try:
            return self.get("/ready").status_code == 200
        except EnvoyError:
            return False

    def stats(self, filter_regex: str) -> dict[str, int | str]:
        """Counters, gauges and text readouts whose names match ``filter_regex``.

        Text readouts such as ``listener_manager.lds.version_text`` come back as strings.
        """
        response = self.get("/stats", {"filter": filter_regex, "format": "json"})
        _raise_for_status(response)
        out: dict[str, int | str] = {}
        for entry in response.json().get("stats", []):
            if "name" in entry and "value" in entry:
                value = entry["value"]
                out[str(entry["name"])] = value if isinstance(value, str) else int(value)
        return out

    def stats_prometheus(self) -> str:
        """All stats in Prometheus text exposition format (what Prometheus scrapes)."""
        response = self.get("/stats/prometheus")
        _raise_for_status(response)
        return response.text

    def config_dump(self, resource: str | None = None) -> dict[str, Any]:
        """``/config_dump``, optionally only one resource kind (e.g. ``dynamic_listeners``).

        Envoy answers 404 for a resource kind it holds none of; that is ``{"configs": []}``.
        """
        response = self.get("/config_dump", {"resource": resource} if resource else None)
        if resource and response.status_code == 404 and "not found" in response.text:
            return {"configs": []}
        _raise_for_status(response)
        result: dict[str, Any] = response.json()
        return result

    def server_info(self) -> dict[str, Any]:
        """``/server_info``: version, state, uptime and command line options."""
        response = self.get("/server_info")
        _raise_for_status(response)
        result: dict[str, Any] = response.json()
        return result

    def close(self) -> None:
        self._client.close()


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise EnvoyError(
            f"Envoy admin {response.request.url} answered {response.status_code}: "
            f"{response.text[:500]}"
        )

"""Leader election with a ``coordination.k8s.io/v1`` Lease, as client-go does it.

Several replicas of ``meshctl reconcile`` may run (a Deployment with 2 replicas, or a
rolling update); only the holder of the Lease reconciles. The algorithm is client-go's:

- a Lease names its holder and is renewed every ``retry_period``; updates carry the
  ``resourceVersion`` read, so of two replicas racing, the API server lets exactly one win;
- a Lease held by someone else is taken over only after its ``renewTime`` has not changed
  for ``lease_duration`` seconds *as observed locally* — clocks of different machines are
  never compared;
- a leader that cannot renew for ``renew_deadline`` (< ``lease_duration``) stops acting as
  leader before anyone else may take over;
- stopping releases the Lease (empty holder), so a restart or the next replica takes over
  at once instead of waiting for expiry.

Requests are raw JSON through the official client's ``ApiClient`` (kubeconfig, tokens,
in-cluster config), like :mod:`reconciler.targets.kube`.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s_client

from reconciler.targets.kube_http import KubeConfigError
from reconciler.targets.kubeconfig import api_client as kube_api_client

__all__ = ["LeaderElector", "LeaseError", "api_client", "default_identity"]


class LeaseError(Exception):
    """The Lease could not be read or written (other than losing a race)."""


def default_identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def api_client(kubeconfig: str | None = None, *, context: str | None = None,
               impersonate: str | None = None) -> Any:
    """An ``ApiClient`` the way kubectl finds its config (file, then in-cluster)."""
    try:
        return kube_api_client(kubeconfig, context=context, impersonate=impersonate)
    except KubeConfigError as exc:
        raise LeaseError(str(exc)) from exc


def _micro_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Try to hold Lease ``namespace/name`` as ``identity``; :attr:`is_leader` says whether
    this replica may act now. Run :meth:`start` (a background thread) or call
    :meth:`try_acquire_or_renew` yourself."""

    def __init__(self, client: Any, *, namespace: str, name: str, identity: str | None = None,
                 lease_duration: float = 15.0, renew_deadline: float | None = None,
                 retry_period: float | None = None, timeout: float = 5.0,
                 on_change: Callable[[bool], None] | None = None) -> None:
        self._client = client
        self.namespace, self.name = namespace, name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline or lease_duration * 2 / 3
        self.retry_period = retry_period or max(0.1, lease_duration / 7.5)
        self._timeout = timeout
        self._on_change = on_change
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._leader_until = 0.0
        self._was_leader = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def on_change(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(leading)`` whenever leadership is gained or lost."""
        self._on_change = callback

    # -- HTTP --

    @property
    def _path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{quote(self.namespace)}/leases"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None
              ) -> tuple[int, dict[str, Any]]:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        method_, url, header_params, _, _ = self._client.param_serialize(
            method, path, header_params=headers, auth_settings=["BearerToken"])
        try:
            response = self._client.call_api(
                method_, url, header_params=header_params,
                body=body,
                _request_timeout=(self._timeout, self._timeout))
            data = response.read()
        except (urllib3.exceptions.HTTPError, k8s_client.ApiException, OSError) as exc:
            raise LeaseError(f"Lease {self.namespace}/{self.name}: {exc}") from exc
        try:
            decoded = json.loads(data) if data else {}
        except ValueError:
            decoded = {}
        return int(response.status), decoded if isinstance(decoded, dict) else {}

    # -- one round --

    @property
    def is_leader(self) -> bool:
        return time.monotonic() < self._leader_until

    def _spec(self, *, acquire: bool, previous: dict[str, Any]) -> dict[str, Any]:
        now = _micro_time(datetime.datetime.now(datetime.UTC))
        transitions = int(previous.get("leaseTransitions") or 0)
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration)),
            "acquireTime": now if acquire else previous.get("acquireTime") or now,
            "renewTime": now,
            "leaseTransitions": transitions + 1 if acquire and previous else transitions,
        }

    def try_acquire_or_renew(self) -> bool:
        """One attempt; returns whether this replica holds the Lease now."""
        started = time.monotonic()
        status, lease = self._call("GET", f"{self._path}/{quote(self.name)}")
        if status == 404:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(acquire=True, previous={})}
            status, _ = self._call("POST", self._path, body)
            return self._settle(status in (200, 201), started, status)
        if status != 200:
            raise LeaseError(f"reading Lease {self.namespace}/{self.name}: HTTP {status} "
                             f"{lease.get('message', '')}")
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        observed = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        if observed != self._observed:
            self._observed, self._observed_at = observed, started
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and started - self._observed_at < duration:
            return self._settle(False, started, 200)
        lease["spec"] = self._spec(acquire=holder != self.identity, previous=spec)
        status, _ = self._call("PUT", f"{self._path}/{quote(self.name)}", lease)
        return self._settle(status == 200, started, status)

    def _settle(self, won: bool, started: float, status: int) -> bool:
        if won:
            self._leader_until = started + self.renew_deadline
        elif status not in (200, 409):
            self.last_error = f"HTTP {status} writing Lease {self.namespace}/{self.name}"
        else:
            self._leader_until = 0.0
        self._notify()
        return won

    def _notify(self) -> None:
        leading = self.is_leader
        if leading != self._was_leader:
            self._was_leader = leading
            if self._on_change is not None:
                self._on_change(leading)

    # -- background --

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.try_acquire_or_renew()
                self.last_error = None
            except Exception as exc:  # never let the thread die: leadership just lapses
                self.last_error = str(exc)
                self._notify()
            self._stop.wait(self.retry_period)
        self._notify()

    def start(self) -> LeaderElector:
        self._thread = threading.Thread(target=self._run, name="meshdsl-leader", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds to become leader."""
        deadline = time.monotonic() + timeout
        while not self.is_leader and time.monotonic() < deadline:
            time.sleep(min(0.05, self.retry_period))
        return self.is_leader

    def stop(self, *, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._timeout + 1)
            self._thread = None
        if release and self.is_leader:
            with contextlib.suppress(LeaseError):
                self._release()
        self._leader_until = 0.0
        self._notify()

    def _release(self) -> None:
        status, lease = self._call("GET", f"{self._path}/{quote(self.name)}")
        spec = lease.get("spec") or {}
        if status != 200 or spec.get("holderIdentity") != self.identity:
            return
        lease["spec"] = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1,
                         "renewTime": _micro_time(datetime.datetime.now(datetime.UTC))}
        self._call("PUT", f"{self._path}/{quote(self.name)}", lease)

"""A real, local Kubernetes API server: kube-apiserver 1.20.2 + etcd 3.4 on 127.0.0.1.

Library use (tests, local tooling)::

    with LocalApiServer() as api:
        api.install_crds()                 # Istio's CRD bundle, see istio_crds_file()
        client = api.api_client()          # kubernetes.client.ApiClient, admin token
        subprocess.run([api.kubectl, "--kubeconfig", api.kubeconfig, "get", "crd"])

Command line (``scripts/local-apiserver``, :mod:`reconciler.testing.local_apiserver`)::

    local-apiserver up        # start detached, install the Istio CRDs, print the kubeconfig
    local-apiserver status    # exit 0 when running
    local-apiserver down

The binaries come from ``scripts/install-components``: kube-apiserver and kubectl 1.20.2 are
built once per machine and cached under ``~/.cache/meshdsl/k8s-1.20.2/bin``; etcd is the
Debian package. There are no controllers, scheduler or kubelet: objects are stored and
validated, never run (and a deleted namespace stays ``Terminating`` forever). The admin token
is in ``system:masters``, so RBAC can be exercised with ``Impersonate-User`` /
``Impersonate-Group`` headers.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import httpx
import yaml

from reconciler.processes.lifecycle import (
    ChildExited,
    Component,
    NotReady,
    log_tail,
    terminate,
    wait_ready,
)
from reconciler.processes.ports import free_ports
from reconciler.processes.spawn import spawn
from reconciler.processes.workfiles import WorkFile
from reconciler.targets.envoy.pki import CertPair, LocalCA
from reconciler.testing.components import (
    K8S_VERSION,
    Binaries,
    ComponentsMissingError,
    LocalApiServerError,
    PortInUseError,
    default_crd_files,
    find_binaries,
    istio_crds_file,
    write_private,
)
from reconciler.testing.crds import CRD_TIMEOUT, FIELD_MANAGER, install_crds

ADMIN_USER = "admin"
READY_TIMEOUT = 180.0  # a shared, loaded machine can take minutes
STOP_TIMEOUT = 10.0
_LOG_TAIL_LINES = 40
_PORT_ATTEMPTS = 3

__all__ = [
    "ADMIN_USER",
    "FIELD_MANAGER",
    "K8S_VERSION",
    "ComponentsMissingError",
    "LocalApiServer",
    "LocalApiServerError",
    "default_crd_files",
    "istio_crds_file",
]

# --- small helpers -----------------------------------------------------------------------------


def _http_get(client: httpx.Client, url: str, *, timeout: float) -> tuple[int, bytes]:
    """GET ``url``; returns (status, body); status 0 when the connection failed."""
    try:
        response = client.get(url, timeout=timeout)
    except httpx.HTTPError:
        return 0, b""
    return response.status_code, response.content


def _write_pki(directory: Path) -> CertPair:
    """The serving certificate for 127.0.0.1 from the local CA (the same one the local mesh
    uses, :class:`~reconciler.targets.envoy.pki.LocalCA`, with its own root here), and the
    service-account RSA key pair; returns the serving pair (its ``ca_path`` is the CA)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    ca = LocalCA.create(directory, common_name="meshdsl-local-apiserver-ca")
    serving = ca.issue_server(["127.0.0.1", "localhost"])
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_private(directory / "sa.key",
                   sa_key.private_bytes(pem, pkcs8, serialization.NoEncryption()))
    (directory / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return serving


# --- the server --------------------------------------------------------------------------------


class LocalApiServer(Component):
    """etcd + kube-apiserver 1.20.2 on free 127.0.0.1 ports, in a private directory.

    ``start()`` (or ``with``) launches both and waits for ``/readyz``; ``stop()`` terminates
    them (SIGTERM, then SIGKILL) and removes the directory. ``detached=True`` starts them in
    their own session so they outlive this process (used by ``local-apiserver up``).
    """

    def __init__(
        self,
        *,
        workdir: str | os.PathLike[str] | None = None,
        keep_workdir: bool = False,
        detached: bool = False,
        ready_timeout: float = READY_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
        extra_apiserver_args: Sequence[str] = (),
    ) -> None:
        self._requested_workdir = Path(workdir) if workdir is not None else None
        self._keep_workdir = keep_workdir
        self._detached = detached
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._extra_args = list(extra_apiserver_args)
        self._binaries: Binaries | None = None
        self._workdir: Path | None = None
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._client: httpx.Client | None = None
        self.token: str = secrets.token_hex(24)
        self.port: int = 0
        self.etcd_port: int = 0

    # -- properties --

    @property
    def running(self) -> bool:
        return self._apiserver is not None and self._apiserver.poll() is None

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise LocalApiServerError("the local API server is not started")
        return self._workdir

    # A kubeconfig (admin token, generated CA) for kubectl and clients.
    kubeconfig = WorkFile("kubeconfig")
    ca_file = WorkFile("pki", "ca.crt")

    @property
    def url(self) -> str:
        if not self.port:
            raise LocalApiServerError("the local API server is not started")
        return f"https://127.0.0.1:{self.port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def binaries(self) -> Binaries:
        if self._binaries is None:
            self._binaries = find_binaries()
        return self._binaries

    @property
    def kubectl(self) -> Path:
        """The cached kubectl 1.20.2 (matches the server; /usr/bin/kubectl may be far newer)."""
        return self.binaries.kubectl

    @property
    def pids(self) -> dict[str, int]:
        return {
            name: proc.pid
            for name, proc in (("etcd", self._etcd), ("kube-apiserver", self._apiserver))
            if proc is not None
        }

    apiserver_log = WorkFile("kube-apiserver.log")
    etcd_log = WorkFile("etcd.log")

    # -- lifecycle --


    def start(self) -> Self:
        """Start etcd and kube-apiserver and wait until the API answers (idempotent)."""
        if self.running:
            return self
        binaries = self.binaries
        if self._requested_workdir is not None:
            self._workdir = self._requested_workdir
            self._workdir.mkdir(parents=True, exist_ok=True)
        else:
            self._workdir = Path(tempfile.mkdtemp(prefix="meshdsl-apiserver-"))
        with self.stopping_on_error():
            self._workdir.chmod(0o700)
            pki = self._workdir / "pki"
            pki.mkdir(exist_ok=True)
            self._serving = _write_pki(pki)
            write_private(
                self._workdir / "tokens.csv",
                f"{self.token},{ADMIN_USER},{ADMIN_USER},system:masters\n",
            )
            self._ssl_context = ssl.create_default_context(cafile=str(self.ca_file))
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                try:
                    self._start_pair(binaries)
                    break
                except PortInUseError:
                    self._stop_processes()
                    if attempt == _PORT_ATTEMPTS:
                        raise
            self._write_kubeconfig()
        return self

    def stop(self) -> None:
        """Terminate kube-apiserver and etcd, then remove the work directory (idempotent)."""
        self._stop_processes()
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._workdir is not None and not self._keep_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None
        self.port = 0

    def _stop_processes(self) -> None:
        # API server first, so it does not spend its shutdown retrying a vanished etcd.
        if self._apiserver is not None:
            terminate(self._apiserver, self._stop_timeout)
            self._apiserver = None
        if self._etcd is not None:
            terminate(self._etcd, self._stop_timeout)
            self._etcd = None

    def _spawn(
        self, argv: list[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("wb") as handle:
            # detached (``scripts/local-apiserver up``): outlive this process on purpose
            start = subprocess.Popen if self._detached else spawn
            return start(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
                close_fds=True,
                start_new_session=self._detached,
            )

    def _start_pair(self, binaries: Binaries) -> None:
        workdir = self.workdir
        self.etcd_port, peer_port, self.port = free_ports(3)
        data_dir = workdir / "etcd-data"
        shutil.rmtree(data_dir, ignore_errors=True)
        peer_url = f"http://127.0.0.1:{peer_port}"
        env = dict(os.environ)
        machine = os.uname().machine
        if machine in ("aarch64", "arm64"):
            env.setdefault("ETCD_UNSUPPORTED_ARCH", "arm64")
        self._etcd = self._spawn(
            [
                str(binaries.etcd),
                "--name=meshdsl",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=meshdsl={peer_url}",
                "--initial-cluster-state=new",
                "--log-level=warn",
            ],
            self.etcd_log,
            env,
        )
        deadline = time.monotonic() + self._ready_timeout
        self._wait(
            "etcd",
            self._etcd,
            self.etcd_log,
            deadline,
            lambda: _http_get(self._http(), f"{self.etcd_url}/health", timeout=2.0)[0] == 200,
        )

        pki = workdir / "pki"
        self._apiserver = self._spawn(
            [
                str(binaries.kube_apiserver),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.port}",
                "--insecure-port=0",
                f"--cert-dir={pki}",
                f"--tls-cert-file={self._serving.cert_path}",
                f"--tls-private-key-file={self._serving.key_path}",
                f"--token-auth-file={workdir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--disable-admission-plugins=ServiceAccount",
                # Nothing outside 127.0.0.1: no host IP in the "kubernetes" Endpoints, and no
                # dependence on the machine having a default route.
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                *self._extra_args,
            ],
            self.apiserver_log,
        )

        def ready() -> bool:
            status, body = self.get("/readyz")
            if status != 200 or body.strip() != b"ok":
                return False
            # The bootstrap controller creates "default" just after /readyz turns ok.
            return self.get("/api/v1/namespaces/default")[0] == 200

        self._wait("kube-apiserver", self._apiserver, self.apiserver_log, deadline, ready)

    def _wait(
        self,
        name: str,
        process: subprocess.Popen[bytes],
        log: Path,
        deadline: float,
        probe: Callable[[], bool],
    ) -> None:
        try:
            wait_ready(probe, timeout=max(0.0, deadline - time.monotonic()), what=name,
                       process=process, interval=0.2)
        except ChildExited as exc:
            tail = log_tail(log, _LOG_TAIL_LINES)
            if "address already in use" in tail:
                raise PortInUseError(f"{name}: port taken\n{tail}") from exc
            raise LocalApiServerError(f"{name} exited with status {exc.code} during "
                                      f"startup\n{tail}") from exc
        except NotReady as exc:
            raise LocalApiServerError(
                f"{name} was not ready within {self._ready_timeout:.0f} s\n"
                f"{log_tail(log, _LOG_TAIL_LINES)}") from exc

    def _write_kubeconfig(self) -> None:
        ca_data = base64.b64encode(self.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "meshdsl-local",
                    "cluster": {"server": self.url, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": ADMIN_USER, "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "meshdsl-local",
                    "context": {
                        "cluster": "meshdsl-local",
                        "user": ADMIN_USER,
                        "namespace": "default",
                    },
                }
            ],
            "current-context": "meshdsl-local",
            "preferences": {},
        }
        write_private(self.kubeconfig, yaml.safe_dump(config, sort_keys=False))

    # -- talking to it --

    def _http(self) -> httpx.Client:
        """One client (and its connections) for every request to etcd and the API server;
        trust_env=False: everything here is on 127.0.0.1, whatever HTTP(S)_PROXY says."""
        if self._client is None:
            self._client = httpx.Client(
                headers={"Authorization": f"Bearer {self.token}"}, trust_env=False,
                verify=self._ssl_context if self._ssl_context is not None else True)
        return self._client

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """GET an API path as admin: (status, body); status 0 when unreachable."""
        return _http_get(self._http(), f"{self.url}{path}", timeout=timeout)

    def get_json(self, path: str, timeout: float = 5.0) -> Any:
        """GET an API path (e.g. ``/apis``) as admin and decode the JSON; raises on non-200."""
        status, body = self.get(path, timeout=timeout)
        if status != 200:
            raise LocalApiServerError(f"GET {path}: HTTP {status}: {body[:500]!r}")
        return json.loads(body)

    def api_client(self) -> Any:
        """A new ``kubernetes.client.ApiClient`` for this server (admin token, verified TLS)."""
        from kubernetes import config

        # Called through Any: the client's functions are unannotated (mypy --strict).
        new_client: Any = config.new_client_from_config
        return new_client(config_file=str(self.kubeconfig), persist_config=False)

    def dynamic_client(self) -> Any:
        """A ``kubernetes.dynamic.DynamicClient`` whose discovery cache lives in the workdir.

        (The default cache file is keyed by URL in /tmp, so a reused port could read another
        server's stale discovery.)
        """
        from kubernetes.dynamic import DynamicClient

        cache = self.workdir / f"discovery-{secrets.token_hex(4)}.json"
        dynamic_client: Any = DynamicClient
        return dynamic_client(self.api_client(), cache_file=str(cache))

    def install_crds(
        self,
        path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        *,
        timeout: float = CRD_TIMEOUT,
    ) -> list[str]:
        """Create (or replace) every CRD in ``path`` (one file or several; by default
        Istio's and Gateway API's) and wait until all are served; the CRD names."""
        return install_crds(self, path, timeout=timeout)

    def kubectl_argv(self, *args: str) -> list[str]:
        """argv for the matching kubectl against this server, e.g. ``kubectl_argv("get", "crd")``."""
        return [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args]

    def state(self) -> dict[str, Any]:
        """What ``local-apiserver`` records to find and stop a detached server."""
        return {
            "version": K8S_VERSION,
            "url": self.url,
            "kubeconfig": str(self.kubeconfig),
            "workdir": str(self.workdir),
            "etcd_url": self.etcd_url,
            "kubectl": str(self.kubectl),
            "processes": {
                "etcd": {"pid": self.pids["etcd"], "exe": str(self.binaries.etcd)},
                "kube-apiserver": {
                    "pid": self.pids["kube-apiserver"],
                    "exe": str(self.binaries.kube_apiserver),
                },
            },
            "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }

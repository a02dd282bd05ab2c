"""A real, local Kubernetes API server: kube-apiserver 1.20.2 + etcd 3.4 on 127.0.0.1.

Library use (tests, local tooling)::

    with LocalApiServer() as api:
        api.install_crds()                 # Istio's CRD bundle, see istio_crds_file()
        client = api.api_client()          # kubernetes.client.ApiClient, admin token
        subprocess.run([api.kubectl, "--kubeconfig", api.kubeconfig, "get", "crd"])

Command line (``scripts/local-apiserver``, or ``python -m reconciler.testing.apiserver``)::

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

import argparse
import base64
import contextlib
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

from reconciler.runtime.children import spawn

K8S_VERSION = "1.20.2"
ADMIN_USER = "admin"
FIELD_MANAGER = "meshdsl-local-apiserver"
READY_TIMEOUT = 180.0  # a shared, loaded machine can take minutes
CRD_TIMEOUT = 240.0  # generous: the machine running the tests is often shared and loaded
STOP_TIMEOUT = 10.0
_LOG_TAIL_LINES = 40
_PORT_ATTEMPTS = 3

__all__ = [
    "ADMIN_USER",
    "K8S_VERSION",
    "Binaries",
    "ComponentsMissingError",
    "LocalApiServer",
    "LocalApiServerError",
    "cache_root",
    "default_crd_files",
    "find_binaries",
    "gateway_api_crds_file",
    "istio_crds_file",
    "k8s_bin_dir",
    "main",
    "repo_root",
    "shared_dir",
    "state_dir",
]


class LocalApiServerError(RuntimeError):
    """The local etcd/kube-apiserver pair could not be started, used or stopped."""


class ComponentsMissingError(LocalApiServerError):
    """A required binary is not installed; run ``scripts/install-components``."""


class _PortInUseError(LocalApiServerError):
    """A picked port was taken between choosing it and the process binding it."""


# --- locations ---------------------------------------------------------------------------------


def cache_root() -> Path:
    """``$MESHDSL_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/meshdsl`` (as install-components)."""
    env = os.environ.get("MESHDSL_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "meshdsl"


def k8s_bin_dir() -> Path:
    """Where install-components caches kube-apiserver and kubectl."""
    return cache_root() / f"k8s-{K8S_VERSION}" / "bin"


def repo_root() -> Path:
    """The meshdsl repository (this file is ``<repo>/reconciler/testing/apiserver.py``)."""
    return Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """The shared test-data directory: ``$MESHDSL_SHARED_DIR``, else ``<repo>/../shared``."""
    env = os.environ.get("MESHDSL_SHARED_DIR")
    return Path(env) if env else repo_root().parent / "shared"


def istio_crds_file() -> Path:
    """Istio's CRD bundle (``crd-all.gen.yaml``, 15 CRDs) in the shared directory."""
    return shared_dir() / "istio" / "crd-all.gen.yaml"


def gateway_api_crds_file(channel: str = "standard") -> Path:
    """Gateway API v1.6.1 CRDs (``standard`` or ``experimental`` channel) in the shared directory."""
    return shared_dir() / "gateway-api" / f"{channel}-install.yaml"


def default_crd_files() -> list[Path]:
    """What a test cluster serves by default: Istio's CRDs and Gateway API's standard channel."""
    return [istio_crds_file(), gateway_api_crds_file()]


def state_dir() -> Path:
    """State of the detached server managed by ``local-apiserver up/down``."""
    return cache_root() / "local-apiserver"


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kubectl: Path
    etcd: Path


def find_binaries() -> Binaries:
    """Locate kube-apiserver/kubectl (cache) and etcd (PATH) or raise a clear error."""
    bin_dir = k8s_bin_dir()
    apiserver, kubectl = bin_dir / "kube-apiserver", bin_dir / "kubectl"
    missing = [str(p) for p in (apiserver, kubectl) if not os.access(p, os.X_OK)]
    etcd = shutil.which("etcd")
    if etcd is None:
        missing.append("etcd (Debian package etcd-server)")
    if missing:
        raise ComponentsMissingError(
            f"missing {', '.join(missing)}; run scripts/install-components once on this "
            f"machine (it installs etcd and builds kube-apiserver/kubectl {K8S_VERSION}, "
            "about 6 minutes the first time)"
        )
    assert etcd is not None
    return Binaries(kube_apiserver=apiserver, kubectl=kubectl, etcd=Path(etcd))


# --- small helpers -----------------------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (all held open at once so none repeats)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _http_get(
    url: str,
    *,
    token: str | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """GET ``url``; returns (status, body); status 0 when the connection failed."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    # No proxies: everything here is on 127.0.0.1, whatever HTTP(S)_PROXY says.
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as err:
        return int(err.code), bytes(err.read())
    except (urllib.error.URLError, OSError):
        return 0, b""


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])




def _pid_running(pid: int, executable: str | None = None) -> bool:
    """True when ``pid`` is alive (not a zombie) and, if given, runs ``executable``."""
    proc = Path("/proc") / str(pid)
    if proc.parent.is_dir():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
            return False
        return executable is None or os.fsdecode(cmdline[0]) == executable
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate_pid(pid: int, executable: str | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout``, a process that is not our child."""
    if not _pid_running(pid, executable):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_running(pid, executable):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and _pid_running(pid, executable):
        time.sleep(0.1)


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout``, one of our children; always reaps it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()


def _write_private(path: Path, data: bytes | str) -> None:
    """Write a file readable by the owner only (keys, tokens, kubeconfig)."""
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(raw)


def _write_pki(directory: Path) -> None:
    """A CA + 127.0.0.1 serving certificate, and the service-account RSA key pair."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=365)
    pem = serialization.Encoding.PEM

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meshdsl-local-apiserver-ca")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    no_encryption = serialization.NoEncryption()
    pkcs8 = serialization.PrivateFormat.PKCS8
    (directory / "ca.crt").write_bytes(ca_cert.public_bytes(pem))
    (directory / "apiserver.crt").write_bytes(cert.public_bytes(pem))
    _write_private(directory / "apiserver.key", key.private_bytes(pem, pkcs8, no_encryption))

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(directory / "sa.key", sa_key.private_bytes(pem, pkcs8, no_encryption))
    (directory / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _load_crd_documents(path: Path) -> list[dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as handle:
        docs = [d for d in yaml.load_all(handle, Loader=loader) if isinstance(d, dict)]
    crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    if not crds:
        raise LocalApiServerError(f"no CustomResourceDefinition in {path}")
    return crds


# --- the server --------------------------------------------------------------------------------


class LocalApiServer:
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

    @property
    def kubeconfig(self) -> Path:
        """Path of a kubeconfig (admin token, generated CA) for kubectl and clients."""
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

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

    @property
    def apiserver_log(self) -> Path:
        return self.workdir / "kube-apiserver.log"

    @property
    def etcd_log(self) -> Path:
        return self.workdir / "etcd.log"

    # -- lifecycle --

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

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
        try:
            self._workdir.chmod(0o700)
            pki = self._workdir / "pki"
            pki.mkdir(exist_ok=True)
            _write_pki(pki)
            _write_private(
                self._workdir / "tokens.csv",
                f"{self.token},{ADMIN_USER},{ADMIN_USER},system:masters\n",
            )
            self._ssl_context = ssl.create_default_context(cafile=str(self.ca_file))
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                try:
                    self._start_pair(binaries)
                    break
                except _PortInUseError:
                    self._stop_processes()
                    if attempt == _PORT_ATTEMPTS:
                        raise
            self._write_kubeconfig()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate kube-apiserver and etcd, then remove the work directory (idempotent)."""
        self._stop_processes()
        if self._workdir is not None and not self._keep_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None
        self.port = 0

    def _stop_processes(self) -> None:
        # API server first, so it does not spend its shutdown retrying a vanished etcd.
        if self._apiserver is not None:
            _terminate(self._apiserver, self._stop_timeout)
            self._apiserver = None
        if self._etcd is not None:
            _terminate(self._etcd, self._stop_timeout)
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
        self.etcd_port, peer_port, self.port = _free_ports(3)
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
            lambda: _http_get(f"{self.etcd_url}/health", timeout=2.0)[0] == 200,
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
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
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
            status, body = self._get("/readyz")
            if status != 200 or body.strip() != b"ok":
                return False
            # The bootstrap controller creates "default" just after /readyz turns ok.
            return self._get("/api/v1/namespaces/default")[0] == 200

        self._wait("kube-apiserver", self._apiserver, self.apiserver_log, deadline, ready)

    def _wait(
        self,
        name: str,
        process: subprocess.Popen[bytes],
        log: Path,
        deadline: float,
        probe: Callable[[], bool],
    ) -> None:
        while True:
            if process.poll() is not None:
                tail = _tail(log)
                if "address already in use" in tail:
                    raise _PortInUseError(f"{name}: port taken\n{tail}")
                raise LocalApiServerError(
                    f"{name} exited with status {process.returncode} during startup; "
                    f"last lines of its log ({log.name}):\n{tail}"
                )
            if probe():
                return
            if time.monotonic() > deadline:
                raise LocalApiServerError(
                    f"{name} was not ready within {self._ready_timeout:.0f} s; "
                    f"last lines of its log ({log.name}):\n{_tail(log)}"
                )
            time.sleep(0.2)

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
        _write_private(self.kubeconfig, yaml.safe_dump(config, sort_keys=False))

    # -- talking to it --

    def _get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        return _http_get(
            f"{self.url}{path}", token=self.token, context=self._ssl_context, timeout=timeout
        )

    def get_json(self, path: str) -> Any:
        """GET an API path (e.g. ``/apis``) as admin and decode the JSON; raises on non-200.
        (The CRD list is megabytes: on a loaded machine it takes longer than a probe.)"""
        status, body = self._get(path, timeout=60.0)
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
        self, path: str | os.PathLike[str] | None = None, *, timeout: float = CRD_TIMEOUT
    ) -> list[str]:
        """Create (or replace) every CRD in ``path`` and wait until all are served.

        Defaults to :func:`default_crd_files` (Istio's bundle and Gateway API's standard
        channel). Nothing is validated locally: the documents go to the server as JSON, which
        (1.20) drops the ``x-kubernetes-validations`` CEL rules and keeps the structural
        schemas. Returns the CRD names.
        """
        from kubernetes.dynamic.exceptions import ConflictError

        paths = [Path(path)] if path is not None else default_crd_files()
        documents = []
        for crd_path in paths:
            if not crd_path.is_file():
                raise LocalApiServerError(f"CRD file not found: {crd_path}")
            documents.extend(_load_crd_documents(crd_path))
        dyn = self.dynamic_client()
        try:
            resource = dyn.resources.get(
                api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
            )
            for doc in documents:
                try:
                    dyn.create(resource, body=doc, field_manager=FIELD_MANAGER)
                except ConflictError:
                    current = dyn.get(resource, name=doc["metadata"]["name"])
                    replacement = dict(doc)
                    replacement["metadata"] = {
                        **doc["metadata"],
                        "resourceVersion": current.metadata.resourceVersion,
                    }
                    dyn.replace(resource, body=replacement, field_manager=FIELD_MANAGER)
        finally:
            dyn.client.close()
        self.wait_for_crds(documents, timeout=timeout)
        return [str(doc["metadata"]["name"]) for doc in documents]

    def wait_for_crds(self, documents: Sequence[dict[str, Any]], *, timeout: float) -> None:
        """Wait until each CRD is Established and every served version answers a LIST."""
        deadline = time.monotonic() + timeout
        pending = {str(doc["metadata"]["name"]): doc for doc in documents}
        while pending:
            listing = self.get_json("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            for item in listing.get("items", []):
                name = item["metadata"]["name"]
                doc = pending.get(name)
                conditions = item.get("status", {}).get("conditions") or []
                established = any(
                    c.get("type") == "Established" and c.get("status") == "True" for c in conditions
                )
                if doc is None or not established:
                    continue
                spec = doc["spec"]
                plural = spec["names"]["plural"]
                served = [v["name"] for v in spec["versions"] if v.get("served", True)]
                if all(
                    self._get(f"/apis/{spec['group']}/{version}/{plural}?limit=1")[0] == 200
                    for version in served
                ):
                    del pending[name]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise LocalApiServerError(
                    f"CRDs not established/served within {timeout:.0f} s: "
                    f"{', '.join(sorted(pending))}"
                )
            time.sleep(0.2)

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


# --- command line: local-apiserver up | down | status -------------------------------------------


def _state_file() -> Path:
    return state_dir() / "state.json"


def _read_state() -> dict[str, Any] | None:
    try:
        data = json.loads(_state_file().read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        print(f"local-apiserver: ignoring unreadable {_state_file()}: {err}", file=sys.stderr)
        return None
    return data if isinstance(data, dict) else None


def _processes(state: dict[str, Any]) -> Iterator[tuple[str, int, str | None]]:
    processes = state.get("processes", {})
    if not isinstance(processes, dict):
        return
    for name in ("kube-apiserver", "etcd"):  # stop order
        entry = processes.get(name)
        if isinstance(entry, dict) and isinstance(entry.get("pid"), int):
            exe = entry.get("exe")
            yield name, int(entry["pid"]), str(exe) if exe else None


def _state_running(state: dict[str, Any]) -> bool:
    procs = list(_processes(state))
    return bool(procs) and all(_pid_running(pid, exe) for _, pid, exe in procs)


def _stop_state(state: dict[str, Any], timeout: float = STOP_TIMEOUT) -> None:
    for _, pid, exe in _processes(state):
        _terminate_pid(pid, exe, timeout)
    workdir = state.get("workdir")
    if isinstance(workdir, str) and workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        _state_file().unlink()


def _cmd_up(args: argparse.Namespace) -> int:
    state = _read_state()
    if state is not None:
        if _state_running(state):
            print(f"local-apiserver: already running at {state.get('url')}", file=sys.stderr)
            print(state["kubeconfig"])
            return 0
        print("local-apiserver: cleaning up a stale previous run", file=sys.stderr)
        _stop_state(state)
    if not args.no_crds:
        for crds in [args.crds] if args.crds is not None else default_crd_files():
            if not crds.is_file():
                raise LocalApiServerError(f"CRD file not found: {crds} (or use --no-crds)")
    run_dir = state_dir() / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    state_dir().mkdir(parents=True, exist_ok=True)
    server = LocalApiServer(
        workdir=run_dir, keep_workdir=True, detached=True, ready_timeout=args.timeout
    )
    started = time.monotonic()
    try:
        server.start()
        print(f"local-apiserver: API server ready at {server.url}", file=sys.stderr)
        if not args.no_crds:
            names = server.install_crds(args.crds, timeout=args.timeout)
            print(f"local-apiserver: {len(names)} CRDs established", file=sys.stderr)
        tmp = _state_file().with_suffix(".tmp")
        _write_private(tmp, json.dumps(server.state(), indent=2) + "\n")
        tmp.replace(_state_file())
    except BaseException:
        server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    print(
        f"local-apiserver: up in {time.monotonic() - started:.1f} s (pids {server.pids}); "
        f"kubectl {K8S_VERSION}: {server.kubectl}",
        file=sys.stderr,
    )
    print(server.kubeconfig)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    state = _read_state()
    if state is None:
        print("local-apiserver: not running", file=sys.stderr)
        return 0
    _stop_state(state, timeout=args.timeout)
    print("local-apiserver: stopped", file=sys.stderr)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    state = _read_state()
    running = state is not None and _state_running(state)
    if args.json:
        print(json.dumps({"running": running, **(state or {})}, indent=2))
    elif state is None:
        print("not running")
    elif running:
        procs = ", ".join(f"{name}={pid}" for name, pid, _ in _processes(state))
        print(f"running: {state.get('url')} ({procs})")
        print(f"kubeconfig: {state.get('kubeconfig')}")
        print(f"kubectl: {state.get('kubectl')}")
    else:
        print("not running (stale state; `down` cleans it up)")
    return 0 if running else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="local-apiserver",
        description=f"A real local kube-apiserver {K8S_VERSION} + etcd on 127.0.0.1.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start detached, install Istio CRDs, print kubeconfig path")
    up.add_argument(
        "--crds", type=Path, default=None,
        help="CRD YAML (default: Istio's bundle and Gateway API's standard channel)")
    up.add_argument("--no-crds", action="store_true", help="do not install any CRDs")
    up.add_argument("--timeout", type=float, default=READY_TIMEOUT, help="readiness timeout, s")
    up.set_defaults(func=_cmd_up)
    down = sub.add_parser("down", help="stop the server started by `up`")
    down.add_argument("--timeout", type=float, default=STOP_TIMEOUT, help="SIGKILL after, s")
    down.set_defaults(func=_cmd_down)
    status = sub.add_parser("status", help="exit 0 when running, 1 otherwise")
    status.add_argument("--json", action="store_true", help="print the state as JSON")
    status.set_defaults(func=_cmd_status)
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except LocalApiServerError as err:
        print(f"local-apiserver: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
